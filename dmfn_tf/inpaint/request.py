"""An inpainting request: a decoded photo and its holes, each made once.

`read_request` decodes a photo file and its mask file (or the photo's transparency) once and
binarises the mask once (`dmfn_tf.inpaint.files`); `request_from_arrays` takes arrays a caller
already holds (a mask of 0/1 or 0/255 values goes through the contract's mask rule,
`dmfn_tf.inpaint.contract.binarise_mask`; a bool mask is the holes already). The request's photo is
writable: the runner composites into it in place.

Example:

```python
request = read_request("photo.jpg", "mask.png")
request.image.shape, request.hole.shape  # (H, W, 3) uint8, (H, W) bool
```
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dmfn_tf.errors import UserError


class MaskMismatchError(UserError):
    """A mask does not fit its image (size or shape)."""


class InpaintRequest(NamedTuple):
    """A photo to fill: uint8 `[H, W, 3]` (writable; filled in place), bool holes `[H, W]`, its name for messages."""

    image: np.ndarray
    hole: np.ndarray
    source: str = "image"


def _checked_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    return image


def holes_of(mask, shape: tuple[int, int]) -> np.ndarray:
    """bool holes `[H, W]` of a `[H, W]` or `[H, W, 1]` mask: bool as it is, numbers by the contract's rule."""
    mask = np.asarray(mask)
    if mask.shape not in (shape, shape + (1,)):
        raise MaskMismatchError(f"mask of shape {mask.shape} does not fit an image of shape {shape + (3,)}")
    if mask.dtype == bool:
        return mask.reshape(shape)
    from dmfn_tf.inpaint.contract import binarise_mask  # TensorFlow only once a mask is read

    return np.asarray(binarise_mask(mask.reshape((1,) + shape + (1,))))[0, :, :, 0] > 0.5


def request_from_arrays(image, mask, source: str = "image", copy: bool = True) -> InpaintRequest:
    """A request from a uint8 `[H, W, 3]` photo and a `[H, W]` or `[H, W, 1]` mask (1 = hole, 0/255 too, or bool).

    Args:
        image: the photo; copied unless `copy` is False (then it is filled in place).
        mask: the mask.
        source: the photo's name in messages.
        copy: copy the photo, so that the caller's array is left as it is.
    """
    image = _checked_image(image)
    hole = holes_of(mask, image.shape[:2])
    return InpaintRequest(image.copy() if copy else image, hole, source)


def read_request(image_path: str, mask_path: str | None, invert: bool = False, from_alpha: bool = False) -> InpaintRequest:
    """Decodes a photo file and its mask once: the mask file's holes, or (no mask) the photo's transparent pixels.

    Args:
        image_path: the photo.
        mask_path: the mask file, or None to take the holes from the photo's alpha channel.
        invert: the mask marks holes with 0 (swap holes and known pixels).
        from_alpha: with a mask file, the holes are the opaque pixels of its alpha channel.
    """
    from dmfn_tf.inpaint.files import ImageReadError, decode_photo, holes_from_alpha, read_holes

    image, alpha = decode_photo(image_path)
    if mask_path is None:
        if alpha is None:
            raise ImageReadError(f"{image_path}: no alpha channel to take the holes from")
        hole = holes_from_alpha(alpha)
        del alpha
        if invert:
            np.logical_not(hole, out=hole)
    else:
        del alpha
        hole = read_holes(mask_path, invert=invert, from_alpha=from_alpha)
        if hole.shape != image.shape[:2]:
            raise MaskMismatchError(f"mask {mask_path} decodes to {hole.shape[1]}x{hole.shape[0]} but image "
                                    f"{image_path} to {image.shape[1]}x{image.shape[0]}")
    return InpaintRequest(image, hole, image_path)


def read_holes_of(image_path: str, mask_path: str | None, invert: bool = False, from_alpha: bool = False,
                  orientation: int | None = None) -> np.ndarray:
    """The holes of a photo file, bool `[H, W]`, without keeping its pixels: its mask file's holes, or (no
    mask) the photo's transparent pixels, read strip by strip (`orientation`: as `files.rgb_strips`).
    The rules of `read_request`."""
    from dmfn_tf.inpaint.files import ImageReadError, holes_from_alpha, read_holes, rgb_strips

    if mask_path is not None:
        return read_holes(mask_path, invert=invert, from_alpha=from_alpha)
    size, strips = rgb_strips(image_path, orientation)
    if not size.has_alpha:
        raise ImageReadError(f"{image_path}: no alpha channel to take the holes from")
    hole = np.empty((size.height, size.width), bool)
    for top, _, alpha in strips:
        hole[top:top + len(alpha)] = holes_from_alpha(alpha)
    if invert:
        np.logical_not(hole, out=hole)
    return hole
