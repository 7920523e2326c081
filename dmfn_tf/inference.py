"""Inpainting single images of any size with a trained generator, and reading user images and masks.

`inpaint` takes a uint8 RGB image and a mask (1 = hole) of any height and width and applies the
package's inpainting contract (`dmfn_tf.inpainting`: mask rule, reflection padding to multiples of
4, generator input, crop, composite): the generator runs once on the whole image, and every known
pixel of the output is the input's pixel, bit for bit.

Memory: a forward pass keeps several full-resolution feature maps of `nf` channels alive. Measured
on CPU with the default generator (nf 64, 8 blocks, float32): peak memory grows by about 5 KiB per
pixel (1.3 GiB at 512 x 512), so `inpaint` refuses images of more than `max_pixels` pixels
(default `DEFAULT_MAX_PIXELS`, 1024 x 1024, about 5 GiB) with a `PixelBudgetError` before any
work, instead of running out of memory half-way; raise the budget where the machine has the
memory. Tiling is not offered: the instance norms see whole-image statistics, so tiles would not
reproduce the full-image result.

Reading user files:
- images (`read_image`): RGB, RGBA (alpha dropped, or used as the mask on request), grayscale,
  palette, 16-bit (scaled to 8 bits) and CMYK files all become RGB uint8; the EXIF orientation is
  applied, so that the result looks like the image in viewers.
- masks (`read_mask`): `dmfn_tf.data.load_mask_file`, the one rule the whole package uses (1 =
  hole; luma of colour masks; 0/255 and 0/1 files; anti-aliased edges split at `> 0.5` after
  scaling to [0, 1]; `invert` for MAT-style files; `from_alpha`: opaque pixels of the alpha
  channel, a brush layer, are holes). The mask file's own pixel grid is used (no EXIF rotation).
- an image's own transparency as the mask (`mask_from_alpha`): transparent pixels (alpha < 0.5)
  are the missing ones, i.e. holes.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dmfn_tf.errors import UserError

DEFAULT_MAX_PIXELS = 1024 * 1024
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


class ImageReadError(UserError):
    """An image or mask file is missing, unreadable or in an unsupported form."""


class PixelBudgetError(UserError):
    """An image has more pixels than the configured budget allows."""


class MaskMismatchError(UserError):
    """A mask does not fit its image (size or shape)."""


def check_pixel_budget(height: int, width: int, max_pixels: int, source: str = "image") -> None:
    """Raises `PixelBudgetError` when `height * width` exceeds `max_pixels`.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        max_pixels: the budget; see the module docstring for what it protects.
        source: the file or name to put in the message.
    """
    if height * width > max_pixels:
        raise PixelBudgetError(
            f"{source}: {width}x{height} = {height * width:,} pixels exceeds the budget of {max_pixels:,} pixels "
            "(raise it with --max-pixels / max_pixels= if the machine has the memory)"
        )


def inpaint(generator, image: np.ndarray, mask: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Fills the holes of one image of any size.

    Args:
        generator: a DMFN generator (`build_generator` or `dmfn_tf.model_io.load_generator`).
        image: uint8 `[H, W, 3]` RGB.
        mask: `[H, W, 1]` or `[H, W]`, 1 = hole, 0 = known (0/255 masks too; see
            `dmfn_tf.inpainting.binarise_mask`).
        max_pixels: refuse images with more pixels than this (`PixelBudgetError`).

    Returns:
        uint8 `[H, W, 3]`: generated pixels in the holes, the input's pixels everywhere else. An
        all-zero mask returns a copy of the input without running the generator.

    Example:

    ```python
    generator = build_generator(nf=4, n_blocks=1)
    image = np.zeros((30, 45, 3), np.uint8)
    mask = np.zeros((30, 45, 1), np.float32); mask[10:20, 10:30] = 1
    inpaint(generator, image, mask).shape
    # -> (30, 45, 3)
    ```
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.shape != image.shape[:2] + (1,):
        raise MaskMismatchError(f"mask of shape {mask.shape} does not fit an image of shape {image.shape}")
    height, width = image.shape[:2]
    check_pixel_budget(height, width, max_pixels)
    # Imported here: TensorFlow loads only when an image is inpainted, not when the CLI starts.
    from dmfn_tf.inpainting import binarise_mask, inpaint_uint8

    hole = np.asarray(binarise_mask(mask[None]))[0]
    if not hole.any():
        return image.copy()
    return np.asarray(inpaint_uint8(generator, image[None], hole[None]))[0]


def _open(path: str, what: str) -> Image.Image:
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: no such {what} file")
    if os.path.isdir(path):
        raise ImageReadError(f"{path}: is a directory, expected an {what} file")
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: not a readable {what} file ({err})") from None


class ImageHeader(NamedTuple):
    """Size and transparency of an image or mask file, read from its header."""

    height: int
    width: int
    has_alpha: bool


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or "transparency" in img.info


def read_header(path: str, what: str = "image") -> ImageHeader:
    """Reads a file's size and whether it has an alpha channel, without decoding the pixels.

    Images are measured as `read_image` returns them (EXIF orientation applied), masks as
    `read_mask` does (the file's own grid).

    Args:
        path: the file.
        what: "image" or "mask".
    """
    with _open(path, what) as img:
        width, height = img.size
        # EXIF orientations 5-8 turn the image by 90 degrees: the displayed image is transposed.
        try:
            orientation = img.getexif().get(0x0112, 1)
        except (OSError, ValueError, SyntaxError):
            orientation = 1
        if what == "image" and orientation in (5, 6, 7, 8):
            width, height = height, width
        return ImageHeader(height, width, _has_alpha(img))


def _decode(path: str, what: str) -> Image.Image:
    img = _open(path, what)
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # no copy of the pixels when already upright
        return img
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated {what} file ({err})") from None


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
    img = _decode(path, "image")
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow opens 16-bit grayscale PNGs as "I" or "I;16"; Pillow's own conversion would clip.
        gray = np.round(np.asarray(img).astype(np.float64) * (255.0 / 65535.0))
        return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=-1), None
    if img.mode == "F":
        raise ImageReadError(f"{path}: floating-point image files are not supported; save it as 8- or 16-bit")
    if _has_alpha(img):
        rgba = np.asarray(img.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3].astype(np.float32) / 255.0
    # An RGB image is handed to NumPy as it is: `convert` would copy every pixel once more.
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB")), None


def mask_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Transparent pixels (alpha < 0.5) are holes: `[H, W]` alpha in [0, 1] -> float32 {0, 1} `[H, W, 1]`."""
    return (np.asarray(alpha) < 0.5).astype(np.float32)[..., None]


def read_mask(path: str, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """Reads a mask file as float32 {0, 1} `[H, W, 1]`, 1 = hole (`dmfn_tf.data.load_mask_file`).

    Args:
        path: a PNG, JPEG, BMP, GIF or WebP mask.
        invert: the file marks holes with 0 (MAT-style masks).
        from_alpha: the holes are the opaque pixels of the file's alpha channel.

    Example:

    ```python
    mask = read_mask("mask.png")  # white = hole
    ```
    """
    from dmfn_tf.data.masks import load_mask_file

    return load_mask_file(path, invert=invert, from_alpha=from_alpha)
