"""Photos and masks sent to `dmfn app`, sized from their headers and refused before they are decoded.

- `plain_filename(header)`: the `X-Filename` an upload is shown under, percent-decoded; refused
  (400) unless it is a plain file name (no `/`, `\\`, NUL or control character, not `.` or `..`,
  at most 255 characters). It only ever names the photo in messages, never a path.
- `check_photo(path, name, ...)`: the upload (spooled to a private temporary file) is sized with
  `dmfn_tf.input_limits.image_header`, its header read once (more than `MAX_IMAGE_PIXELS` pixels,
  or several frames: 413), and its upright size (EXIF orientation applied, as the header says)
  checked against the pixel budget of the chosen strategy (`dmfn_tf.inpaint.planner.check_size`)
  *before* anything is decoded; messages name `name`, not the temporary file.
- `preview_photo(path, name, ...)`: the same checks, then the picture the page paints on, at most
  `PREVIEW_SIDE` pixels a side, with the upright photo's full size (its header read once, for both).
  A larger photo is never decoded at full size as RGB arrays: a JPEG is decoded at 1/2 to 1/8 of
  its size (Pillow's `draft`), an upright 8-bit PNG strip by strip (`dmfn_tf.inpaint.png_strips`),
  each strip reduced as it comes, other formats once by Pillow and resized at once; the small
  picture's pixels are then converted in memory by `dmfn_tf.inpaint.files.pixels_of`, the same
  rules (16-bit, alpha, CMYK) as the photo the model gets.
- `decode_upload(path, name)`: a kept upload, checked when it arrived, decoded (the server checks the
  request's strategy against the budget itself, with `dmfn_tf.inpaint.planner.check_size`).
- `read_holes(data, height, width)`: the mask's bytes are sized the same way and refused unless they
  declare exactly the photo's size and one frame; then `dmfn_tf.inpaint.files.holes_from_mask_bytes`
  applies the package's one mask rule, once.

Example:

```python
preview, height, width = preview_photo(spooled_path, "cat.png", HDOptions(strategy="crop"), max_pixels=1024 * 1024)
photo = decode_upload(spooled_path, "cat.png")  # later, when the model runs for it
hole = read_holes(mask_png_bytes, height, width)  # bool [H, W], True = hole
```
"""

from __future__ import annotations

import concurrent.futures
import functools
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
# Rows of a PNG decoded at a time for its picture (about as many, a multiple of the reduction factor).
PREVIEW_STRIP_ROWS = 256


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


def check_photo(path: str, name: str, options, max_pixels: int):
    """The `CheckedSize` of the uploaded photo at `path`, from its header (read once), before anything is decoded.

    Refuses other formats (415), more than `MAX_IMAGE_PIXELS` pixels or several frames (413), and an
    upright size (EXIF orientation applied) over the pixel budget of the chosen strategy
    (`dmfn_tf.inpaint.planner.check_size`, the one budget check).

    Args:
        path: the spooled upload (a private temporary file; never named in messages).
        name: the photo's name for messages (`plain_filename`).
        options: the `HDOptions` of the strategy chosen on the page (its pixel budget applies).
        max_pixels: the model's pixel budget.
    """
    return _checked_header(path, name, options, max_pixels)[1]


def _checked_header(path: str, name: str, options, max_pixels: int):
    """`(header, CheckedSize)` of the uploaded photo: `check_photo`, with the header it read."""
    from dmfn_tf.inpaint.planner import check_size

    header = _header(path, name, PHOTO_FORMATS)
    return header, check_size(*header.upright, options, max_pixels, source=name)


def decode_upload(path: str, name: str, orientation: int | None = None) -> np.ndarray:
    """The photo at `path` decoded once (`dmfn_tf.inpaint.files.decode_photo`): writable uint8 RGB `[H, W, 3]`.

    `orientation`: the EXIF orientation its header declared, when it was just read (else read again).
    """
    from dmfn_tf.inpaint.files import decode_photo

    try:
        return decode_photo(path, orientation)[0]
    except UserError as err:
        raise Refusal(400, str(err).replace(path, name)) from None


def preview_photo(path: str, name: str, options, max_pixels: int, side: int = PREVIEW_SIDE):
    """`(preview, height, width)`: the photo at `path` at most `side` pixels a side, and its full upright size.

    The checks of `check_photo` apply; a photo of at most `side` pixels a side is its own preview.
    The work runs on one thread kept for it: the decoded photos of the server's many request threads
    would otherwise each leave freed memory in that thread's own allocator arena (+347 MB
    instead of +324 MB measured for four parallel 8192² PNG uploads).
    """
    return _decoding_thread().submit(_preview, path, name, options, max_pixels, side).result()


@functools.cache
def _decoding_thread() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dmfn-app-decoding")


def _preview(path: str, name: str, options, max_pixels: int, side: int):
    header, checked = _checked_header(path, name, options, max_pixels)
    if max(checked.height, checked.width) <= side:
        preview = decode_upload(path, name, header.orientation)
    else:
        preview = _reduced(path, name, side, header.orientation)
    return preview, checked.height, checked.width


def _reduced(path: str, name: str, side: int, orientation: int) -> np.ndarray:
    """The upright picture of a photo larger than `side`, its pixels converted in memory as the model's are."""
    from PIL import Image

    from dmfn_tf.inpaint.files import pixels_of

    try:
        with _small_upright(path, side, orientation) as small:  # the decoded photo is freed on return
            return pixels_of(small, name)[0]
    except UserError as err:  # a floating-point photo
        raise Refusal(400, str(err)) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise Refusal(400, f"{name}: not a readable image file (truncated or corrupt)") from None


def _small_upright(path: str, side: int, orientation: int):
    """The photo at `path` decoded and shrunk to at most `side` pixels a side, then turned upright (EXIF).

    `orientation` is the EXIF orientation its header declared (`check_photo`'s header read).
    """
    from PIL import Image, ImageOps

    from dmfn_tf.inpaint import png_strips
    from dmfn_tf.input_limits import exif_orientation

    layout = png_strips.read_layout(path)
    # Palettes are sampled, below; a turned PNG's strips would need turning: Pillow does it, below.
    if png_strips.streamable(layout) and layout.colour_type != 3 and orientation == 1:
        return _small_png(path, layout, side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header was checked
        image = Image.open(path)
    with image:
        image.draft("RGB", (side, side))  # a JPEG is decoded at 1/2 .. 1/8 of its size
        exif_orientation(image)  # the orientation the header declared (`check_photo`), read before decoding
        exif = Image.Image.getexif(image)  # as cached by `exif_orientation` (a PNG's own method would decode)
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
    return small


def _small_png(path: str, layout, side: int):
    """`_small_upright` of an upright 8-bit PNG, decoded and reduced strip by strip (`png_strips`): the same
    pixels as reducing the whole photo, in the memory of one strip and the small picture."""
    from PIL import Image

    from dmfn_tf.inpaint.png_strips import png_strips

    factor = max(1, max(layout.width, layout.height) // side)
    rows = factor * max(1, PREVIEW_STRIP_ROWS // factor)  # whole boxes of the reduction in each strip
    small = None
    for top, strip in png_strips(path, layout, rows):
        part = strip.reduce(factor) if factor > 1 else strip
        if small is None:
            small = Image.new(part.mode, (-(-layout.width // factor), -(-layout.height // factor)))
            small.info.update(strip.info)
        small.paste(part, (0, top // factor))
    if max(small.size) > side:
        small = small.resize(_fitting(small.size, side), Image.Resampling.BICUBIC)
    return small


def _fitting(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` (width, height, as Pillow gives it) scaled down to at most `side` pixels a side."""
    from dmfn_tf.inpaint.windows import scaled_size

    return scaled_size(size[1], size[0], side)[::-1]


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
