"""Reading a user's photos and masks, in memory bounded by the photo's own pixels.

- photos (`read_image`, `decode_photo`): RGB, RGBA (alpha dropped, or used as the mask on request),
  grayscale, palette, 16-bit (scaled to 8 bits) and CMYK files all become RGB uint8; the EXIF
  orientation is applied, so that the result looks like the image in viewers. The pixels are
  converted in strips of rows into one writable array (no whole-photo copies beside Pillow's own),
  so the runner can composite into it in place.
- masks (`read_holes`, `holes_from_mask_bytes`): the package's one mask rule,
  `dmfn_tf.data.masks.mask_from_image` (1 = hole; luma of colour masks; 0/255 and 0/1 files;
  anti-aliased edges split at `> 0.5` after scaling to [0, 1]; `invert` for MAT-style files;
  `from_alpha`: opaque pixels of the alpha channel, a brush layer, are holes), applied in strips of
  rows and returned as bool `[H, W]`. The file's own pixel grid is used (no EXIF rotation).
- an image's own transparency as the mask (`holes_from_alpha`): transparent pixels (alpha < 0.5)
  are the missing ones, i.e. holes.
- headers: `dmfn_tf.input_limits.image_header` reads an image's size, transparency and EXIF
  orientation once, before decoding; the photos decoded here are turned as it says (`upright`).
- `write_png(path, rgb)`: an RGB uint8 array as a PNG, encoded strip by strip from the array itself
  (Pillow would first copy the photo into its own 4-byte pixels: 256 MB more for 8000²).

Example:

```python
rgb, alpha = read_image("photo.png")
hole = read_holes("mask.png")  # bool [H, W], white = hole
```
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dmfn_tf.errors import UserError
from dmfn_tf.input_limits import exif_orientation, has_alpha

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Rows converted at a time: a strip of an 8000-pixel-wide photo is a few MB in any mode.
STRIP_ROWS = 256


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


def _decode(path: str, what: str) -> Image.Image:
    img = _open(path, what)
    try:
        exif_orientation(img)  # the orientation the header declares (what `image_header` said), kept for below
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # no copy of the pixels when already upright
        return img
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated {what} file ({err})") from None


def _strip_pixels(img: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Rows `[top, bottom)` as RGB uint8 `[rows, W, 3]`, or RGBA `[rows, W, 4]` for images with transparency."""
    strip = img.crop((0, top, img.width, bottom))
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow opens 16-bit grayscale PNGs as "I" or "I;16"; Pillow's own conversion would clip.
        gray = np.round(np.asarray(strip).astype(np.float64) * (255.0 / 65535.0))
        return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    if has_alpha(img):
        return np.asarray(strip.convert("RGBA"))
    return np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))


def decode_photo(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Decodes a photo once: writable RGB uint8 `[H, W, 3]`, and its alpha uint8 `[H, W]` or None.

    Converted strip by strip into the result, so that memory holds Pillow's decoded image and one
    array of the photo, never a float or a second full-size copy.
    """
    with _decode(path, "image") as img:
        return pixels_of(img, path)


def pixels_of(img: Image.Image, name: str = "image") -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Pillow image's pixels as `decode_photo` gives them: writable RGB uint8 `[H, W, 3]`, alpha or None.

    Any mode a photo comes in (16-bit, palette, CMYK, with transparency) follows the rules of the
    module docstring, converted strip by strip; `name` names the image in the error for a
    floating-point one.
    """
    if img.mode == "F":
        raise ImageReadError(f"{name}: floating-point image files are not supported; save it as 8- or 16-bit")
    rgb = np.empty((img.height, img.width, 3), np.uint8)
    alpha = np.empty((img.height, img.width), np.uint8) if has_alpha(img) else None
    for top in range(0, img.height, STRIP_ROWS):
        bottom = min(top + STRIP_ROWS, img.height)
        pixels = _strip_pixels(img, top, bottom)
        rgb[top:bottom] = pixels[..., :3]
        if alpha is not None:
            alpha[top:bottom] = pixels[..., 3]
    return rgb, alpha


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

    `dmfn_tf.data.masks.mask_from_image` decides each strip of rows; one row of ones appended to a
    strip says whether the strip's own values stay within [0, 1] (then the row is a hole). The rule
    scales by 255 when any value of the whole mask exceeds 1, so strips within [0, 1] of such a mask
    hold no hole (their values are at most 1/255).

    Raises:
        tf.errors.InvalidArgumentError, tf.errors.UnimplementedError: not a mask TensorFlow decodes.
    """
    import tensorflow as tf

    from dmfn_tf.data.masks import mask_from_image

    pixels = tf.io.decode_image(tf.constant(contents), channels=0, expand_animations=False).numpy()
    holes = np.empty(pixels.shape[:2], bool)
    unit_strips = []  # strips whose values are all within [0, 1]
    ones = np.ones((1,) + pixels.shape[1:], np.uint8)
    for top in range(0, pixels.shape[0], STRIP_ROWS):
        bottom = min(top + STRIP_ROWS, pixels.shape[0])
        decided = mask_from_image(np.concatenate([pixels[top:bottom], ones]), from_alpha=from_alpha).numpy()[..., 0]
        holes[top:bottom] = decided[:-1] > 0.5
        if decided[-1, 0] > 0.5:
            unit_strips.append((top, bottom))
    if len(unit_strips) < -(-pixels.shape[0] // STRIP_ROWS):  # some value above 1: a 0/255 mask
        for top, bottom in unit_strips:
            holes[top:bottom] = False
    if invert:
        np.logical_not(holes, out=holes)
    return holes


def read_holes(path: str, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """Reads a mask file's holes: bool `[H, W]`, True = hole (`holes_from_mask_bytes`); errors name the file.

    Args:
        path: a PNG, JPEG, BMP, GIF or WebP mask.
        invert: the file marks holes with 0 (MAT-style masks).
        from_alpha: the holes are the opaque pixels of the file's alpha channel.
    """
    import tensorflow as tf

    from dmfn_tf.data.image_files import error_summary

    from dmfn_tf.input_limits import read_file_bytes

    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"mask file not found: {path}")
    try:
        contents = read_file_bytes(path)  # a FIFO or a device is refused, never opened
    except OSError as err:
        raise UserError(f"cannot read mask file {path}: {err.strerror or err}") from None
    if not contents:
        raise UserError(f"mask file is empty (0 bytes): {path}")
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


def _png_chunk(file, kind: bytes, data: bytes) -> None:
    file.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png(path, rgb: np.ndarray, level: int = 6) -> None:
    """Writes uint8 RGB `[H, W, 3]` as an 8-bit RGB PNG, `STRIP_ROWS` rows at a time (filter "Up", zlib `level`).

    Memory beyond the array is one strip; any PNG reader gives back `rgb` exactly.
    """
    height, width = rgb.shape[:2]
    compressor = zlib.compressobj(level)
    previous = np.zeros((1, width * 3), np.uint8)
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        _png_chunk(file, b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        for top in range(0, height, STRIP_ROWS):
            rows = np.ascontiguousarray(rgb[top:top + STRIP_ROWS]).reshape(-1, width * 3)
            filtered = np.empty((len(rows), width * 3 + 1), np.uint8)
            filtered[:, 0] = 2  # "Up": each byte minus the byte above it, modulo 256
            np.subtract(rows, np.concatenate([previous, rows[:-1]]), out=filtered[:, 1:])
            previous = rows[-1:]
            compressed = compressor.compress(filtered.tobytes())
            if compressed:
                _png_chunk(file, b"IDAT", compressed)
        _png_chunk(file, b"IDAT", compressor.flush())
        _png_chunk(file, b"IEND", b"")
