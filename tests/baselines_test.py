"""Classic inpainting baselines: known pixels untouched, holes filled plausibly, clear errors."""

import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from dmfn_tf.evaluation.baselines import BASELINES, BaselineInputError


def _photo() -> np.ndarray:
    return (resize(data.astronaut(), (64, 64), anti_aliasing=True) * 255).round().astype(np.uint8)


def _center_hole(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = True
    return mask


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_known_pixels_untouched_and_hole_filled(name):
    image, mask = _photo(), _center_hole()
    filled = BASELINES[name](image, mask)
    assert filled.dtype == np.uint8 and filled.shape == image.shape
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    # Better than leaving the hole black or grey (what a no-op would give).
    error = np.abs(filled[mask].astype(float) - image[mask]).mean()
    assert error < np.abs(image[mask].astype(float) - 127).mean()
    assert error < np.abs(image[mask].astype(float)).mean()


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_smooth_ramp_is_reconstructed(name):
    # A linear ramp solves both the biharmonic and the Navier-Stokes/Telea smoothness problems.
    ramp = np.tile(np.linspace(40, 200, 64)[None, :, None], (64, 1, 3)).round().astype(np.uint8)
    mask = _center_hole()
    error = np.abs(BASELINES[name](ramp, mask)[mask].astype(float) - ramp[mask]).mean()
    assert error < (1.0 if name == "biharmonic" else 12.0)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_empty_mask_returns_the_image(name):
    image = _photo()
    np.testing.assert_array_equal(BASELINES[name](image, np.zeros((64, 64), bool)), image)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_rejects_wrong_inputs(name):
    with pytest.raises(BaselineInputError, match="uint8"):
        BASELINES[name](_photo().astype(np.float32), _center_hole())
    with pytest.raises(BaselineInputError, match="mask"):
        BASELINES[name](_photo(), _center_hole(32))
