"""Classic (non-learned) inpainting baselines, evaluated on the same protocol as the model.

Each baseline is a function `(image [H, W, 3] uint8 RGB, mask [H, W] bool, True = hole) -> [H, W, 3]
uint8` and leaves every known pixel exactly as it was (the result is composited with the input).

- `telea`: OpenCV's fast marching method (Telea, 2004), `cv2.INPAINT_TELEA`.
- `ns`: OpenCV's Navier-Stokes method (Bertalmio et al., 2001), `cv2.INPAINT_NS`.
- `biharmonic`: scikit-image's biharmonic equation solver, `inpaint_biharmonic(channel_axis=-1)`.
- `patchmatch`: exemplar-based filling with PatchMatch (Barnes et al., 2009) over a coarse-to-fine
  pyramid, `patchmatch_cython.inpaint_pyramid` (BSD-3). Its pyramid downsamples the mask with "any
  hole pixel makes a hole", so a dense free-form mask can cover a whole coarse level and leave no
  source patch; `PatchMatch` then retries with fewer levels (a larger patch) and at a single scale,
  and as a last resort fills with the biharmonic solver. It never fails an image, and counts each
  route it took (`PatchMatch.routes`), which the evaluation reports.

The OpenCV methods treat the colour channels independently, so RGB is passed as is (no BGR swap).

Example:

```python
filled = BASELINES["telea"](image_uint8, hole_mask)
```
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from dmfn_tf.errors import UserError

# Neighbourhood radius of the OpenCV methods, in pixels (OpenCV's documentation example uses 3).
OPENCV_INPAINT_RADIUS = 3


class BaselineInputError(UserError, ValueError):
    """An image or mask given to a baseline has the wrong shape or type."""


class BaselineUnavailable(UserError, ImportError):
    """A baseline's optional package is not installed; the message says which and how to install it."""


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


class PatchMatch:
    """PatchMatch inpainting that never fails an image: retries, then a documented fallback.

    The routes, tried in order until one succeeds:

    1. `pyramid`: `patchmatch_cython.inpaint_pyramid` with 5x5 patches (the library's default);
    2. `pyramid_patch9`: 9x9 patches, hence a pyramid two levels shallower (its depth is
       `log2(side / patch)`), whose coarsest level keeps known pixels under denser masks;
    3. `single_scale`: `inpaint_single`, 5x5 patches at full resolution only (no pyramid);
    4. `biharmonic`: `inpaint_biharmonic`, when no 5x5 source patch is left at all.

    The library refuses a mask that leaves no source patch with a `ValueError`; only that moves to
    the next route. Every call uses the fixed `seed`, so results are reproducible.

    Attributes:
        routes: `Counter` of the route each image took since the last `reset()`.
    """

    ROUTES = (("pyramid", 5, True), ("pyramid_patch9", 9, True), ("single_scale", 5, False))
    FALLBACK = "biharmonic"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.routes: Counter = Counter()

    def reset(self) -> None:
        """Forgets the routes counted so far."""
        self.routes = Counter()

    def fallbacks(self) -> int:
        """Images that did not take the first route."""
        return sum(count for route, count in self.routes.items() if route != self.ROUTES[0][0])

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Fills the hole by PatchMatch (see the class docstring for the routes).

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) bool, True = hole.

        Returns:
            (H, W, 3) uint8 with the hole filled and the known pixels unchanged.
        """
        try:
            import patchmatch_cython  # optional dependency (extra "eval")
        except ImportError:
            raise BaselineUnavailable("the patchmatch baseline needs the package patchmatch-cython: "
                                      "pip install patchmatch-cython (or leave patchmatch out of --baselines)") from None
        image, mask = _check_inputs(image, mask)
        if not mask.any():
            return image.copy()
        for route, patch_size, pyramid in self.ROUTES:
            solve = patchmatch_cython.inpaint_pyramid if pyramid else patchmatch_cython.inpaint_single
            try:
                filled = solve(image, mask, patch_size=patch_size, seed=self.seed)
            except ValueError:  # no source patch left at some level: the next route
                continue
            self.routes[route] += 1
            return _keep_known(image, np.asarray(filled, np.uint8), mask)
        self.routes[self.FALLBACK] += 1
        return inpaint_biharmonic(image, mask)


inpaint_patchmatch = PatchMatch()

BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "telea": inpaint_telea,
    "ns": inpaint_navier_stokes,
    "biharmonic": inpaint_biharmonic,
    "patchmatch": inpaint_patchmatch,
}


def baseline_routes(name: str) -> dict | None:
    """`{"routes": route -> images, "fallbacks": images off the first route}` of a baseline with several
    routes (e.g. `PatchMatch`) since its last reset; None for the others."""
    baseline = BASELINES[name]
    if not hasattr(baseline, "routes"):
        return None
    return {"routes": dict(baseline.routes), "fallbacks": baseline.fallbacks()}
