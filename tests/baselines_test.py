"""Classic inpainting baselines: known pixels untouched, holes filled plausibly, clear errors."""

import sys
from collections import Counter

import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from dmfn_tf.evaluation.baselines import BASELINES, BaselineInputError, BaselineUnavailable, PatchMatch


def _photo() -> np.ndarray:
    return (resize(data.astronaut(), (64, 64), anti_aliasing=True) * 255).round().astype(np.uint8)


def _center_hole(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = True
    return mask


# Methods that continue the surroundings smoothly; PatchMatch copies patches instead (its own tests below).
SMOOTH = ("biharmonic", "ns", "telea")


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_known_pixels_untouched(name):
    image, mask = _photo(), _center_hole()
    filled = BASELINES[name](image, mask)
    assert filled.dtype == np.uint8 and filled.shape == image.shape
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    assert (filled[mask] != 0).any()


@pytest.mark.parametrize("name", SMOOTH)
def test_hole_filled_plausibly(name):
    image, mask = _photo(), _center_hole()
    filled = BASELINES[name](image, mask)
    assert filled.dtype == np.uint8 and filled.shape == image.shape
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    # Better than leaving the hole black or grey (what a no-op would give).
    error = np.abs(filled[mask].astype(float) - image[mask]).mean()
    assert error < np.abs(image[mask].astype(float) - 127).mean()
    assert error < np.abs(image[mask].astype(float)).mean()


@pytest.mark.parametrize("name", SMOOTH)
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


def _texture(size: int = 64) -> np.ndarray:
    """Coloured diagonal stripes of period 8: a texture no smooth fill can continue."""
    rows, columns = np.mgrid[:size, :size]
    phase = ((rows + columns) % 8) < 4
    return np.where(phase[..., None], [200, 60, 40], [30, 90, 210]).astype(np.uint8)


def test_patchmatch_continues_a_texture_better_than_a_flat_fill():
    image, mask = _texture(), _center_hole()
    filled = BASELINES["patchmatch"](image, mask)
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    flat = image[~mask].mean(axis=0)  # the best single colour for the hole, as far as the known pixels tell
    error = np.abs(filled[mask].astype(float) - image[mask]).mean()
    assert error < 0.5 * np.abs(flat - image[mask]).mean()
    assert error < np.abs(BASELINES["biharmonic"](image, mask)[mask].astype(float) - image[mask]).mean()


def test_patchmatch_survives_the_free_form_stroke_its_pyramid_refuses():
    import patchmatch_cython
    import tensorflow as tf

    from dmfn_tf.data.masks import free_form

    # A free-form mask of `dmfn evaluate --mask free_form` at 128² that touches every 16 x 16 block,
    # so the library's coarsest pyramid level (8 x 8 with 5 x 5 patches) is all hole.
    mask = free_form(128, tf.constant([17, 94], tf.int64))[0].numpy()[..., 0] > 0.5
    image = (resize(data.astronaut(), (128, 128), anti_aliasing=True) * 255).round().astype(np.uint8)
    with pytest.raises(ValueError, match="no source pixels"):
        patchmatch_cython.inpaint_pyramid(image, mask, seed=0)
    patchmatch = PatchMatch()
    filled = patchmatch(image, mask)
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    assert patchmatch.routes == Counter({"pyramid_patch9": 1}) and patchmatch.fallbacks() == 1
    assert np.abs(filled[mask].astype(float) - image[mask]).mean() < np.abs(image[mask].astype(float) - 127).mean()


def test_patchmatch_routes_down_to_single_scale():
    image = _photo()
    # Lines every 4 pixels touch every block of both pyramids' coarsest levels (8 x 8 blocks for
    # 5 x 5 patches, 4 x 4 for 9 x 9), yet leave known pixels at full resolution.
    dense = np.zeros((64, 64), bool)
    dense[::4], dense[:, ::4] = True, True
    patchmatch = PatchMatch()
    np.testing.assert_array_equal(patchmatch(image, dense)[~dense], image[~dense])
    assert patchmatch.routes == Counter({"single_scale": 1}) and patchmatch.fallbacks() == 1
    patchmatch.reset()
    patchmatch(image, _center_hole())
    assert patchmatch.routes == Counter({"pyramid": 1}) and patchmatch.fallbacks() == 0


def test_patchmatch_falls_back_to_biharmonic_when_every_route_refuses(monkeypatch):
    import patchmatch_cython

    def refuse(*args, **kwargs):
        raise ValueError("mask covers the entire image; no source pixels available")

    monkeypatch.setattr(patchmatch_cython, "inpaint_pyramid", refuse)
    monkeypatch.setattr(patchmatch_cython, "inpaint_single", refuse)
    image, mask = _photo(), _center_hole()
    patchmatch = PatchMatch()
    np.testing.assert_array_equal(patchmatch(image, mask), BASELINES["biharmonic"](image, mask))
    assert patchmatch.routes == Counter({"biharmonic": 1})


def test_patchmatch_without_its_package_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "patchmatch_cython", None)  # what an absent package looks like to import
    with pytest.raises(BaselineUnavailable, match="pip install patchmatch-cython"):
        PatchMatch()(_photo(), _center_hole())
