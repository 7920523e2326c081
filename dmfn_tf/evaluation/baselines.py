"""Classic (non-learned) inpainting baselines, evaluated on the same protocol as the model.

Each baseline is a function `(image [H, W, 3] uint8 RGB, mask [H, W] bool, True = hole) -> [H, W, 3]
uint8` and leaves every known pixel exactly as it was (the result is composited with the input).

- `telea`: OpenCV's fast marching method (Telea, 2004), `cv2.INPAINT_TELEA`.
- `ns`: OpenCV's Navier-Stokes method (Bertalmio et al., 2001), `cv2.INPAINT_NS`.
- `biharmonic`: scikit-image's biharmonic equation solver, `inpaint_biharmonic(channel_axis=-1)`.

The OpenCV methods treat the colour channels independently, so RGB is passed as is (no BGR swap).

Example:

```python
filled = BASELINES["telea"](image_uint8, hole_mask)
```
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dmfn_tf.errors import UserError

# Neighbourhood radius of the OpenCV methods, in pixels (OpenCV's documentation example uses 3).
OPENCV_INPAINT_RADIUS = 3


class BaselineInputError(UserError, ValueError):
    """An image or mask given to a baseline has the wrong shape or type."""


def _check_inputs(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, mask = np.asarray(image), np.asarray(mask)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise BaselineInputError(f"baselines take an (H, W, 3) uint8 RGB image; got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise BaselineInputError(f"the mask must be (H, W) = {image.shape[:2]}; got {mask.shape}")
    return image, mask.astype(bool)


def _keep_known(image: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], filled, image)


def _opencv_inpaint(image: np.ndarray, mask: np.ndarray, flags: int) -> np.ndarray:
    import cv2  # optional dependency (extra "eval")

    image, mask = _check_inputs(image, mask)
    filled = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8) * 255, OPENCV_INPAINT_RADIUS, flags)
    return _keep_known(image, filled, mask)


def inpaint_telea(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills the hole with OpenCV's Telea (fast marching) method.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole.

    Returns:
        (H, W, 3) uint8 with the hole filled and the known pixels unchanged.
    """
    import cv2

    return _opencv_inpaint(image, mask, cv2.INPAINT_TELEA)


def inpaint_navier_stokes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills the hole with OpenCV's Navier-Stokes method.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole.

    Returns:
        (H, W, 3) uint8 with the hole filled and the known pixels unchanged.
    """
    import cv2

    return _opencv_inpaint(image, mask, cv2.INPAINT_NS)


def inpaint_biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills the hole by solving the biharmonic equation (scikit-image), per channel.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, True = hole.

    Returns:
        (H, W, 3) uint8 with the hole filled and the known pixels unchanged.
    """
    from skimage.restoration import inpaint_biharmonic as skimage_inpaint_biharmonic

    image, mask = _check_inputs(image, mask)
    if not mask.any():
        return image.copy()
    filled = skimage_inpaint_biharmonic(image.astype(np.float64) / 255.0, mask, channel_axis=-1)
    filled = np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)
    return _keep_known(image, filled, mask)


BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "telea": inpaint_telea,
    "ns": inpaint_navier_stokes,
    "biharmonic": inpaint_biharmonic,
}
