"""Photos and masks sent to `dmfn app`, sized from their headers and refused before they are decoded.

- `plain_filename(header)`: the `X-Filename` an upload is shown under, percent-decoded; refused
  (400) unless it is a plain file name (no `/`, `\\`, NUL or control character, not `.` or `..`,
  at most 255 characters). It only ever names the photo in messages, never a path.
- `read_photo(path, name, ...)`: the upload (spooled to a private temporary file) is sized with
  `dmfn_tf.input_limits.image_header` (more than `MAX_IMAGE_PIXELS` pixels, or several frames: 413)
  and checked against the pixel budget of the chosen strategy *before* `dmfn_tf.inference.read_image`
  decodes it (EXIF orientation, 16-bit, CMYK, ...); messages name `name`, not the temporary file.
- `preview_photo(path, name, ...)`: the same checks, then the picture the page paints on, at most
  `PREVIEW_SIDE` pixels a side, with the upright photo's full size. A larger photo is never decoded
  at full size as RGB arrays: a JPEG is decoded at 1/2 to 1/8 of its size (Pillow's `draft`), other
  formats once by Pillow and resized at once; the small picture is then read by `read_image`, so it
  follows the same rules (16-bit, alpha, CMYK) as the photo the model gets.
- `read_mask(data, height, width)`: the mask's bytes are sized the same way and refused unless they
  declare exactly the photo's size and one frame; then `dmfn_tf.data.masks.decode_mask_bytes`
  applies the package's one mask rule.

Example:

```python
preview, height, width = preview_photo(spooled_path, "cat.png", HDOptions(strategy="crop"), max_pixels=1024 * 1024)
photo = read_photo(spooled_path, "cat.png", HDOptions(strategy="crop"), max_pixels=1024 * 1024)
mask = read_mask(mask_png_bytes, *photo.shape[:2])  # float32 [H, W, 1], 1 = hole
```
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import urllib.parse
import warnings

import numpy as np

from dmfn_tf.app.refusal import Refusal
from dmfn_tf.errors import UserError
from dmfn_tf.input_limits import InputTooLarge, UnreadableImage, image_header

MAX_FILENAME_CHARS = 255
# Formats the page accepts (Pillow's names): the usual photo formats. Others (EPS, which would run
# Ghostscript, PSD, ICNS, ...) are refused from the header; masks are what TensorFlow decodes.
PHOTO_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")
MASK_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
# Longest side of the picture the page paints on (`preview_photo`); the mask it sends is the photo's size.
PREVIEW_SIDE = 2048
_ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the photo a quarter


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
    from dmfn_tf.high_resolution import check_budget

    _checked_header(path, name, options, max_pixels)
    image = _read(path, name)
    check_budget(*image.shape[:2], options, max_pixels, source=name)  # EXIF may have turned it
    return image


def preview_photo(path: str, name: str, options, max_pixels: int, side: int = PREVIEW_SIDE):
    """`(preview, height, width)`: the photo at `path` at most `side` pixels a side, and its full upright size.

    The checks of `read_photo` apply; a photo of at most `side` pixels a side is its own preview.
    The work runs on one thread kept for it: the decoded photos of the server's many request threads
    would otherwise each leave freed memory in that thread's own allocator arena (+347 MB
    instead of +324 MB measured for four parallel 8192² PNG uploads).
    """
    return _decoding_thread().submit(_preview, path, name, options, max_pixels, side).result()


@functools.cache
def _decoding_thread() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmfn-app-decoding")


def _preview(path: str, name: str, options, max_pixels: int, side: int):
    from dmfn_tf.high_resolution import check_budget

    header = _checked_header(path, name, options, max_pixels)
    if max(header.width, header.height) <= side:
        preview = _read(path, name)
        height, width = preview.shape[:2]
    else:
        preview, (height, width) = _reduced(path, name, (header.height, header.width), side)
    check_budget(height, width, options, max_pixels, source=name)  # EXIF may have turned it
    return preview, height, width


def _checked_header(path: str, name: str, options, max_pixels: int):
    from dmfn_tf.high_resolution import check_budget

    header = _header(path, name, PHOTO_FORMATS)
    check_budget(header.height, header.width, options, max_pixels, source=name)
    return header


def _read(path: str, name: str) -> np.ndarray:
    from dmfn_tf.inference import read_image

    try:
        return read_image(path)[0]
    except UserError as err:
        raise Refusal(400, str(err).replace(path, name)) from None


def _reduced(path: str, name: str, size: tuple[int, int], side: int):
    """`(preview, (height, width))` of a photo larger than `side`, through a small TIFF read by `read_image`."""
    from PIL import Image

    small_path = path + ".preview.tiff"
    try:
        small, orientation = _small_upright(path, side)  # the decoded photo is freed on return
        if small.mode not in ("1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "F") and not small.mode.startswith("I"):
            small = small.convert("RGBA")  # modes a TIFF cannot hold; `read_image` drops the alpha
        small.save(small_path, format="TIFF")
        del small
        preview = _read(small_path, name)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise Refusal(400, f"{name}: not a readable image file (truncated or corrupt)") from None
    finally:
        if os.path.exists(small_path):
            os.remove(small_path)
    return preview, (size[::-1] if orientation in (5, 6, 7, 8) else size)


def _small_upright(path: str, side: int):
    """`(image, EXIF orientation)`: the photo at `path` decoded and shrunk to at most `side` pixels a side, then turned upright."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header was checked
        image = Image.open(path)
    with image:
        image.draft("RGB", (side, side))  # a JPEG is decoded at 1/2 .. 1/8 of its size
        exif = image.getexif()
        small = image
        if small.mode in ("1", "P") or small.mode.startswith("I;16"):  # modes Pillow cannot `reduce`
            small = small.resize(_fitting(small.size, 2 * side), Image.Resampling.NEAREST)
            small = small.convert("L" if small.mode == "1" else "RGB") if small.mode in ("1", "P") else small
        # Whole factors first (box averages): a resize of the full photo would hold an intermediate of a
        # quarter of its size beside it.
        factor = max(small.size) // side
        small = small.reduce(factor) if factor > 1 and not small.mode.startswith("I;16") else small
        if max(small.size) > side:
            small = small.resize(_fitting(small.size, side), Image.Resampling.BICUBIC)
        small = small.copy() if small is image else small  # `image` is closed below
    small.info["exif"] = exif.tobytes()
    ImageOps.exif_transpose(small, in_place=True)
    return small, exif.get(_ORIENTATION)


def _fitting(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` (width, height) scaled down to at most `side` pixels a side (unchanged when it fits)."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def read_mask(data: bytes, height: int, width: int) -> np.ndarray:
    """The mask of a `height` x `width` photo from its encoded bytes: float32 `[H, W, 1]`, 1 = hole."""
    import tensorflow as tf

    from dmfn_tf.data.image_files import error_summary
    from dmfn_tf.data.masks import decode_mask_bytes

    header = _header(data, "mask", MASK_FORMATS)
    if (header.width, header.height) != (width, height):
        raise Refusal(400, f"the mask is {header.width}x{header.height} but the photo is {width}x{height}")
    try:
        return decode_mask_bytes(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
        raise Refusal(400, f"mask: not a readable mask image ({error_summary(err)})") from None
