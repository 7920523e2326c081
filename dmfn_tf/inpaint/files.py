"""Reading a user's photos and masks, in memory bounded by a strip of rows where the format allows.

- photos (`read_image`, `decode_photo`, `rgb_strips`): RGB, RGBA (alpha dropped, or used as the
  mask on request), grayscale, palette, 16-bit (scaled to 8 bits) and CMYK files all become RGB
  uint8; the EXIF orientation is applied, so that the result looks like the image in viewers.
  `rgb_strips` gives the photo in strips of rows: an 8-bit PNG is decoded `PNG_DECODE_ROWS` rows at
  a time (`dmfn_tf.inpaint.png_strips`, Pillow's own pixels), other files are decoded whole by
  Pillow and cut into strips. `decode_photo` converts the strips into one writable array (no
  whole-photo copies beside it), so the runner can composite into it in place.
- masks (`read_holes`, `holes_from_mask_bytes`, `holes_from_strips`): the package's one mask rule,
  `dmfn_tf.data.masks.mask_from_image` (1 = hole; luma of colour masks; 0/255 and 0/1 files;
  anti-aliased edges split at `> 0.5` after scaling to [0, 1]; `invert` for MAT-style files;
  `from_alpha`: opaque pixels of the alpha channel, a brush layer, are holes), applied in strips of
  rows and returned as bool `[H, W]`. The file's own pixel grid is used (no EXIF rotation). An
  8-bit grayscale or RGB(A) PNG mask is decoded strip by strip; other masks by TensorFlow, whole.
- an image's own transparency as the mask (`holes_from_alpha`): transparent pixels (alpha < 0.5)
  are the missing ones, i.e. holes.
- headers: `dmfn_tf.input_limits.image_header` reads an image's size, transparency and EXIF
  orientation once, before decoding; the photos decoded here are turned as it says (`upright`).
  The strip readers take that orientation (`orientation=`) so as not to read it again: an 8-bit
  PNG is streamed only when it is upright (its strips are the stored grid).
- `write_png(path, rgb)`, `write_png_strips(path, strips, height, width)`: RGB uint8 as a PNG,
  encoded strip by strip (Pillow would first copy the photo into its own 4-byte pixels).

Example:

```python
rgb, alpha = read_image("photo.png")
hole = read_holes("mask.png")  # bool [H, W], white = hole
```
"""

from __future__ import annotations

import os
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dmfn_tf.errors import UserError
from dmfn_tf.inpaint import png_strips
from dmfn_tf.input_limits import exif_orientation, has_alpha

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Rows converted at a time: a strip of an 8000-pixel-wide photo is a few MB in any mode.
STRIP_ROWS = 256
# Rows of a mask decided at a time by the mask rule (TensorFlow, several float32 planes of the rows).
MASK_RULE_ROWS = 64
# Rows of an 8-bit PNG decoded at a time (`png_strips`: several copies of the strip's bytes while it is decoded).
PNG_DECODE_ROWS = 64


class ImageReadError(UserError):
    """An image or mask file is missing, unreadable or in an unsupported form."""


def _open(path: str, what: str) -> Image.Image:
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: no such {what} file")
    if os.path.isdir(path):
        raise ImageReadError(f"{path}: is a directory, expected an {what} file")
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: not a readable {what} file ({err})") from None


class PhotoSize(NamedTuple):
    """The upright photo's size and transparency, as its strips come (`photo_strips`, `rgb_strips`)."""

    height: int
    width: int
    has_alpha: bool


def _decode(path: str, what: str) -> Image.Image:
    img = _open(path, what)
    try:
        exif_orientation(img)  # the orientation the header declares (what `image_header` said), kept for below
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # no copy of the pixels when already upright
        return img
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated {what} file ({err})") from None


def _strip_pixels(strip: Image.Image, transparent: bool) -> np.ndarray:
    """A strip of rows as RGB uint8 `[rows, W, 3]`, or RGBA `[rows, W, 4]` for images with transparency."""
    if strip.mode in _SIXTEEN_BIT_MODES:
        # Pillow opens 16-bit grayscale PNGs as "I" or "I;16"; Pillow's own conversion would clip.
        gray = np.round(np.asarray(strip).astype(np.float64) * (255.0 / 65535.0))
        return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    if transparent:
        return np.asarray(strip.convert("RGBA"))
    return np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))


def _whole_strips(img: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    for top in range(0, img.height, STRIP_ROWS):
        yield top, img.crop((0, top, img.width, min(top + STRIP_ROWS, img.height)))


def _closing(img: Image.Image, strips: Iterator) -> Iterator:
    with img:
        yield from strips


def _image_strips(img: Image.Image, name: str) -> tuple[PhotoSize, Iterator[tuple[int, Image.Image]]]:
    """A decoded Pillow image's size and strips; a floating-point image is refused, naming `name`."""
    if img.mode == "F":
        raise ImageReadError(f"{name}: floating-point image files are not supported; save it as 8- or 16-bit")
    return PhotoSize(img.height, img.width, has_alpha(img)), _whole_strips(img)


def _upright_orientation(path: str, orientation: int | None) -> int:
    """`orientation` when the caller read the header (`image_header`), else the file's, by the same reader."""
    if orientation is not None:
        return orientation
    with _open(path, "image") as img:
        return exif_orientation(img)


def photo_strips(path: str, orientation: int | None = None) -> tuple[PhotoSize, Iterator[tuple[int, Image.Image]]]:
    """The upright photo's size and its strips of rows, `(top, Pillow image)`, top to bottom.

    An upright 8-bit PNG is decoded strip by strip (`dmfn_tf.inpaint.png_strips`: memory of one
    strip); other files are decoded whole by Pillow (EXIF orientation applied) and cut into strips.
    `orientation` is the EXIF orientation its header declared (`dmfn_tf.input_limits.image_header`),
    read here when not given. Iterating may raise `OSError`, `ValueError` or `SyntaxError` for a
    corrupt file (`decode_photo` turns them into `ImageReadError`).
    """
    layout = png_strips.read_layout(path) if os.path.isfile(path) else None
    # Above twice Pillow's limit Pillow refuses the file as a decompression bomb: so does the stream.
    if (png_strips.streamable(layout) and layout.width * layout.height <= 2 * (Image.MAX_IMAGE_PIXELS or 2**62)
            and _upright_orientation(path, orientation) == 1):
        transparent = layout.colour_type in (4, 6) or b"tRNS" in layout.colour_chunks
        return PhotoSize(layout.height, layout.width, transparent), png_strips.png_strips(path, layout, PNG_DECODE_ROWS)
    img = _decode(path, "image")
    try:
        size, strips = _image_strips(img, path)
    except ImageReadError:
        img.close()
        raise
    return size, _closing(img, strips)


def _rgb(size: PhotoSize, strips: Iterator, name: str) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """`(top, rgb, alpha)` of each strip (Pillow images); a corrupt file raises `ImageReadError` naming `name`."""
    try:
        for top, strip in strips:
            pixels = _strip_pixels(strip, size.has_alpha)
            yield top, pixels[..., :3], pixels[..., 3] if size.has_alpha else None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"{name}: corrupt or truncated image file ({err})") from None


def rgb_strips(path: str, orientation: int | None = None) -> tuple[PhotoSize, Iterator[tuple[int, np.ndarray, np.ndarray | None]]]:
    """The upright photo's size and `(top, rgb, alpha)` for each strip of rows (`photo_strips`), top to bottom.

    `rgb` is uint8 `[rows, W, 3]`, `alpha` uint8 `[rows, W]` or None (no transparency); the rules of
    `decode_photo`. A corrupt file raises `ImageReadError` while the strips are read.
    """
    size, strips = photo_strips(path, orientation)
    return size, _rgb(size, strips, path)


def _assembled(size: PhotoSize, strips: Iterator) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = np.empty((size.height, size.width, 3), np.uint8)
    alpha = np.empty((size.height, size.width), np.uint8) if size.has_alpha else None
    for top, pixels, strip_alpha in strips:
        rgb[top:top + len(pixels)] = pixels
        if alpha is not None:
            alpha[top:top + len(pixels)] = strip_alpha
    return rgb, alpha


def decode_photo(path: str, orientation: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Decodes a photo once: writable RGB uint8 `[H, W, 3]`, and its alpha uint8 `[H, W]` or None.

    Converted strip by strip into the result (`rgb_strips`; `orientation` as there), so that memory
    holds the one array of the photo, never a float or a second full-size copy (and, for files
    other than 8-bit PNGs, Pillow's decoded image while it is converted).
    """
    return _assembled(*rgb_strips(path, orientation))


def pixels_of(img: Image.Image, name: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Pillow image's pixels as `decode_photo` gives them: writable RGB uint8 `[H, W, 3]`, alpha or None.

    Any mode a photo comes in (16-bit, palette, CMYK, with transparency) follows the rules of the
    module docstring, converted strip by strip; `name` names the image in the errors.
    """
    size, strips = _image_strips(img, name)
    return _assembled(size, _rgb(size, strips, name))


def read_image(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads an image file as RGB uint8, and its alpha channel if it has one.

    Args:
        path: an image file Pillow can read (PNG, JPEG, BMP, TIFF, WebP, ...).

    Returns:
        `(rgb, alpha)`: uint8 `[H, W, 3]`, and float32 `[H, W]` in [0, 1] or None. Grayscale and
        16-bit images become 8-bit RGB.

    Example:

    ```python
    rgb, alpha = read_image("photo.png")
    ```
    """
    rgb, alpha = decode_photo(path)
    return rgb, None if alpha is None else alpha.astype(np.float32) / 255.0


def holes_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Transparent pixels (alpha < 0.5) are holes: alpha `[H, W]` (uint8, or float in [0, 1]) -> bool `[H, W]`."""
    alpha = np.asarray(alpha)
    return alpha < 128 if alpha.dtype == np.uint8 else alpha < 0.5


def holes_from_mask_bytes(contents: bytes, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """The holes of an encoded mask file (PNG, JPEG, BMP, GIF, WebP): bool `[H, W]`, True = hole.

    Decoded by TensorFlow, then decided strip by strip (`holes_from_strips`).

    Raises:
        tf.errors.InvalidArgumentError, tf.errors.UnimplementedError: not a mask TensorFlow decodes.
    """
    import tensorflow as tf

    pixels = tf.io.decode_image(tf.constant(contents), channels=0, expand_animations=False).numpy()
    strips = ((top, pixels[top:top + STRIP_ROWS]) for top in range(0, pixels.shape[0], STRIP_ROWS))
    return holes_from_strips(pixels.shape[:2], strips, invert=invert, from_alpha=from_alpha)


def holes_from_strips(shape: tuple[int, int], strips, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """The holes of a mask given as `(top, uint8 [rows, W, C])` strips, top to bottom: bool `[H, W]`.

    `dmfn_tf.data.masks.mask_from_image` decides `MASK_RULE_ROWS` rows at a time; one row of ones appended
    to them says whether the strip's own values stay within [0, 1] (then the row is a hole). The rule
    scales by 255 when any value of the whole mask exceeds 1, so strips within [0, 1] of such a mask
    hold no hole (their values are at most 1/255).
    """
    from dmfn_tf.data.masks import mask_from_image

    holes = np.empty(shape, bool)
    unit_strips, count = [], 0  # strips whose values are all within [0, 1]
    for strip_top, strip in strips:
        for start in range(0, len(strip), MASK_RULE_ROWS):  # the rule's float planes stay small
            pixels, top = strip[start:start + MASK_RULE_ROWS], strip_top + start
            bottom, count = top + len(pixels), count + 1
            ones = np.ones((1,) + pixels.shape[1:], np.uint8)
            decided = mask_from_image(np.concatenate([pixels, ones]), from_alpha=from_alpha).numpy()[..., 0]
            holes[top:bottom] = decided[:-1] > 0.5
            if decided[-1, 0] > 0.5:
                unit_strips.append((top, bottom))
    if len(unit_strips) < count:  # some value above 1: a 0/255 mask
        for top, bottom in unit_strips:
            holes[top:bottom] = False
    if invert:
        np.logical_not(holes, out=holes)
    return holes


def _png_mask_strips(path: str):
    """`(shape, strips)` of a mask PNG decoded strip by strip, with TensorFlow's channels; None for other files.

    Streamed: 8-bit grayscale, RGB and their alpha forms without a `tRNS` chunk (TensorFlow expands
    palettes and `tRNS` into other channels; those files go through TensorFlow).
    """
    layout = png_strips.read_layout(path)
    if not (png_strips.streamable(layout) and layout.colour_type != 3 and b"tRNS" not in layout.colour_chunks):
        return None
    strips = ((top, np.asarray(strip).reshape(strip.height, strip.width, -1))
              for top, strip in png_strips.png_strips(path, layout, PNG_DECODE_ROWS))
    return (layout.height, layout.width), strips


def read_holes(path: str, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """Reads a mask file's holes: bool `[H, W]`, True = hole (`holes_from_mask_bytes`); errors name the file.

    Args:
        path: a PNG, JPEG, BMP, GIF or WebP mask.
        invert: the file marks holes with 0 (MAT-style masks).
        from_alpha: the holes are the opaque pixels of the file's alpha channel.
    """
    import tensorflow as tf

    from dmfn_tf.data.image_files import error_summary

    from dmfn_tf.input_limits import check_file_bytes, read_file_bytes

    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"mask file not found: {path}")
    try:
        if check_file_bytes(path) == 0:  # a FIFO or a device is refused, never opened
            raise UserError(f"mask file is empty (0 bytes): {path}")
        streamed = _png_mask_strips(path)  # an 8-bit PNG: decoded strip by strip
        if streamed is not None:
            return holes_from_strips(*streamed, invert=invert, from_alpha=from_alpha)
        contents = read_file_bytes(path)
    except OSError as err:
        raise UserError(f"cannot read mask file {path}: {err.strerror or err}") from None
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
        raise UserError(f"cannot read mask file {path}: {error_summary(err)}") from None
    try:
        return holes_from_mask_bytes(contents, invert=invert, from_alpha=from_alpha)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
        raise UserError(f"cannot read mask file {path}: {error_summary(err)}") from None


def read_mask(path: str, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """`read_holes` as a float32 {0, 1} mask `[H, W, 1]`, 1 = hole.

    Example:

    ```python
    mask = read_mask("mask.png")  # white = hole
    ```
    """
    return read_holes(path, invert=invert, from_alpha=from_alpha).astype(np.float32)[..., None]


def write_png_strips(path, strips, height: int, width: int, level: int = 6) -> None:
    """Writes uint8 RGB strips `[rows, W, 3]` (top to bottom, `height` rows in all) as an 8-bit RGB PNG.

    Encoded as they come (`png_strips.PngStripWriter`, zlib fed `STRIP_ROWS` rows at a time): the
    same bytes as `write_png` of the whole array, however the rows are cut into strips.
    """
    with open(path, "wb") as file:
        writer = png_strips.PngStripWriter(file, width, height, level, rows_per_call=STRIP_ROWS)
        for strip in strips:
            writer.write(strip)
        writer.close()


def write_png(path, rgb: np.ndarray, level: int = 6) -> None:
    """Writes uint8 RGB `[H, W, 3]` as an 8-bit RGB PNG, `STRIP_ROWS` rows at a time (filter "Up", zlib `level`).

    Memory beyond the array is one strip; any PNG reader gives back `rgb` exactly.
    """
    height, width = rgb.shape[:2]
    write_png_strips(path, (rgb[top:top + STRIP_ROWS] for top in range(0, height, STRIP_ROWS)), height, width, level)
