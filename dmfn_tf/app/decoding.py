"""Photos and masks sent to `dmfn app`, sized from their headers and refused before they are decoded.

- `plain_filename(header)`: the `X-Filename` an upload is shown under, percent-decoded; refused
  (400) unless it is a plain file name (no `/`, `\\`, NUL or control character, not `.` or `..`,
  at most 255 characters). It only ever names the photo in messages, never a path.
- `read_photo(path, name, ...)`: the upload (spooled to a private temporary file) is sized with
  `dmfn_tf.input_limits.image_header` (more than `MAX_IMAGE_PIXELS` pixels, or several frames: 413)
  and checked against the pixel budget of the chosen strategy *before* `dmfn_tf.inpaint.files`
  decodes it (EXIF orientation, 16-bit, CMYK, ...); messages name `name`, not the temporary file.
- `read_holes(data, height, width)`: the mask's bytes are sized the same way and refused unless they
  declare exactly the photo's size and one frame; then `dmfn_tf.inpaint.files.holes_from_mask_bytes`
  applies the package's one mask rule, once.

Example:

```python
photo = read_photo(spooled_path, "cat.png", HDOptions(strategy="crop"), max_pixels=1024 * 1024)
hole = read_holes(mask_png_bytes, *photo.shape[:2])  # bool [H, W], True = hole
```
"""

from __future__ import annotations

import urllib.parse

import numpy as np

from dmfn_tf.app.refusal import Refusal
from dmfn_tf.errors import UserError
from dmfn_tf.input_limits import InputTooLarge, UnreadableImage, image_header

MAX_FILENAME_CHARS = 255
# Formats the page accepts (Pillow's names): the usual photo formats. Others (EPS, which would run
# Ghostscript, PSD, ICNS, ...) are refused from the header; masks are what TensorFlow decodes.
PHOTO_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")
MASK_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


def plain_filename(header: str | None, default: str = "photo") -> str:
    """The file name an upload's `X-Filename` header gives (percent-encoded by the page), checked to be plain."""
    if header is None or header == "":
        return default
    try:
        name = urllib.parse.unquote(header, errors="strict") if header.isascii() else None
    except UnicodeDecodeError:
        name = None
    if (name is None or name in (".", "..") or len(name) > MAX_FILENAME_CHARS
            or any(char in "/\\" or not char.isprintable() for char in name)):
        raise Refusal(400, "X-Filename must be a plain file name (no folders, control characters or '..', "
                           f"at most {MAX_FILENAME_CHARS} characters)")
    return name


def _header(source, name: str, formats: tuple[str, ...]):
    try:
        header = image_header(source, name=name)
    except InputTooLarge as err:
        raise Refusal(413, str(err)) from None
    except UnreadableImage:
        raise Refusal(400, f"{name}: not a readable image file") from None
    if header.format not in formats:
        raise Refusal(415, f"{name}: {header.format} files are not accepted; use {', '.join(formats)}")
    return header


def read_photo(path: str, name: str, options, max_pixels: int) -> np.ndarray:
    """The uploaded photo at `path` as uint8 RGB `[H, W, 3]`, sized and budget-checked before decoding.

    Args:
        path: the spooled upload (a private temporary file; never named in messages).
        name: the photo's name for messages (`plain_filename`).
        options: the `HDOptions` of the strategy chosen on the page (its pixel budget applies).
        max_pixels: the model's pixel budget.
    """
    from dmfn_tf.inpaint.files import decode_photo, read_header
    from dmfn_tf.inpaint.planner import check_size

    _header(path, name, PHOTO_FORMATS)
    try:
        oriented = read_header(path, "image")  # as decoded: EXIF orientation applied
    except UserError as err:
        raise Refusal(400, str(err).replace(path, name)) from None
    check_size(oriented.height, oriented.width, options, max_pixels, source=name)
    try:
        return decode_photo(path)[0]
    except UserError as err:
        raise Refusal(400, str(err).replace(path, name)) from None


def read_holes(data: bytes, height: int, width: int) -> np.ndarray:
    """The holes of a `height` x `width` photo from its mask's encoded bytes: bool `[H, W]`, True = hole."""
    import tensorflow as tf

    from dmfn_tf.data.image_files import error_summary
    from dmfn_tf.inpaint.files import holes_from_mask_bytes

    header = _header(data, "mask", MASK_FORMATS)
    if (header.width, header.height) != (width, height):
        raise Refusal(400, f"the mask is {header.width}x{header.height} but the photo is {width}x{height}")
    try:
        return holes_from_mask_bytes(data)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
        raise Refusal(400, f"mask: not a readable mask image ({error_summary(err)})") from None
