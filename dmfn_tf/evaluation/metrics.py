"""PSNR, SSIM and L1 for the evaluation protocol (docs/design.md §7), in NumPy.

PSNR and SSIM are computed on 8-bit RGB, as in the paper's Table 1. Composites in [-1, 1] are
quantised with the inpainting contract's `to_uint8` (`dmfn_tf.inpaint.contract`), as every output of the
package is: `clip(round((x + 1) * 127.5), 0, 255)` in float32, round-half-to-even. Images that
came from uint8 as `x / 127.5 - 1` map back to the same pixels.

- PSNR: `10 log10(255^2 / MSE)`, the MSE taken over all pixels and channels of one image, in
  float64; infinite for identical images. Equal to
  `skimage.metrics.peak_signal_noise_ratio(target, output, data_range=255)`.
- SSIM (Wang et al., 2004): Gaussian window of 11 taps (sigma 1.5, truncated at 3.5 sigma and
  normalised to sum 1), K1 = 0.01, K2 = 0.03, data range 255, population (biased) statistics;
  the SSIM map is averaged over the pixels whose window lies fully inside the image (a 5-pixel
  border is left out), per channel, then over the three channels. This is scikit-image's
  convention: `structural_similarity(target, output, channel_axis=-1, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)`.
- L1: mean absolute difference of the float images in [-1, 1] units (not quantised).
- hole colour error (`hole_colour_error`): how far the fill's average colour is from the truth's,
  in 8-bit levels: per channel, the mean over the hole's pixels of output minus target; the absolute
  values averaged over the three channels. A fill whose global colour ignores its surroundings
  scores high even when its texture is right; 0 for an image without a hole.

All functions take batches (N, H, W, 3) and return one float64 value per image.
"""

from __future__ import annotations

import numpy as np

from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.contract import to_uint8

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0


class MetricInputError(UserError, ValueError):
    """Images given to a metric have the wrong shape or type."""


def _check_uint8_pair(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    outputs, targets = np.asarray(outputs), np.asarray(targets)
    if outputs.dtype != np.uint8 or targets.dtype != np.uint8:
        raise MetricInputError(f"PSNR/SSIM take uint8 images; got {outputs.dtype} and {targets.dtype} (see to_uint8)")
    if outputs.shape != targets.shape or outputs.ndim != 4:
        raise MetricInputError(
            f"expected two (N, H, W, C) batches of the same shape; got {outputs.shape} and {targets.shape}"
        )
    return outputs.astype(np.float64), targets.astype(np.float64)


def psnr(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of 8-bit images, per image.

    Args:
        outputs: (N, H, W, C) uint8.
        targets: (N, H, W, C) uint8.

    Returns:
        (N,) float64; `inf` where an output equals its target.
    """
    outputs, targets = _check_uint8_pair(outputs, targets)
    mse = np.mean(np.square(outputs - targets), axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE**2 / mse)


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """The normalised 1-D Gaussian of radius `int(truncate * sigma + 0.5)` (11 taps at sigma 1.5).

    Args:
        sigma: standard deviation in pixels.
        truncate: radius in standard deviations.
    """
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    window = np.exp(-0.5 * np.square(offsets / sigma))
    return window / window.sum()


def _filter_valid(images: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (N, H, W, C) images along H then W."""
    taps = len(window)
    height, width = images.shape[1] - taps + 1, images.shape[2] - taps + 1
    rows = sum(weight * images[:, k:k + height] for k, weight in enumerate(window))
    return sum(weight * rows[:, :, k:k + width] for k, weight in enumerate(window))


def ssim(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Structural similarity of 8-bit images, per image (scikit-image's Gaussian convention).

    Args:
        outputs: (N, H, W, C) uint8, H and W at least 11.
        targets: (N, H, W, C) uint8.

    Returns:
        (N,) float64 in [-1, 1]; 1 for identical images.
    """
    outputs, targets = _check_uint8_pair(outputs, targets)
    window = gaussian_window()
    if min(outputs.shape[1:3]) < len(window):
        raise MetricInputError(f"SSIM needs images of at least {len(window)} pixels per side; got {outputs.shape[1:3]}")
    mean_x = _filter_valid(outputs, window)
    mean_y = _filter_valid(targets, window)
    var_x = _filter_valid(outputs * outputs, window) - mean_x * mean_x
    var_y = _filter_valid(targets * targets, window) - mean_y * mean_y
    covariance = _filter_valid(outputs * targets, window) - mean_x * mean_y
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean(axis=(1, 2, 3))


def l1(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean absolute difference per image, in the units of the inputs ([-1, 1] images here).

    Args:
        outputs: (N, H, W, C) float.
        targets: (N, H, W, C) float.

    Returns:
        (N,) float64.
    """
    outputs, targets = np.asarray(outputs, np.float64), np.asarray(targets, np.float64)
    if outputs.shape != targets.shape or outputs.ndim != 4:
        raise MetricInputError(
            f"expected two (N, H, W, C) batches of the same shape; got {outputs.shape} and {targets.shape}"
        )
    return np.mean(np.abs(outputs - targets), axis=(1, 2, 3))


def hole_colour_error(outputs: np.ndarray, targets: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Mean over channels of |mean over the hole of (output - target)|, in 8-bit levels, per image.

    Args:
        outputs: (N, H, W, 3) float in [-1, 1].
        targets: (N, H, W, 3) float in [-1, 1].
        holes: (N, H, W, 1) or (H, W, 1) {0, 1}, 1 = hole.

    Returns:
        (N,) float64.
    """
    outputs, targets = np.asarray(outputs, np.float64), np.asarray(targets, np.float64)
    holes = np.broadcast_to(np.asarray(holes, np.float64), outputs.shape[:3] + (1,))
    area = holes.sum(axis=(1, 2))
    shift = ((outputs - targets) * holes).sum(axis=(1, 2)) / np.maximum(area, 1.0)
    return np.abs(shift).mean(axis=-1) * 127.5


def image_metrics(outputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """PSNR, SSIM (on the quantised images) and L1 (on the float images) of composites in [-1, 1].

    Args:
        outputs: (N, H, W, 3) float composites in [-1, 1].
        targets: (N, H, W, 3) float ground truth in [-1, 1].

    Returns:
        `{"psnr": (N,), "ssim": (N,), "l1": (N,)}`, float64.

    Example:

    ```python
    scores = image_metrics(composites, ground_truth)
    scores["psnr"].mean()
    ```
    """
    outputs_uint8, targets_uint8 = np.asarray(to_uint8(outputs)), np.asarray(to_uint8(targets))
    return {
        "psnr": psnr(outputs_uint8, targets_uint8),
        "ssim": ssim(outputs_uint8, targets_uint8),
        "l1": l1(outputs, targets),
    }
