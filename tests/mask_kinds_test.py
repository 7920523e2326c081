"""Tests for dmfn_tf.data.masks.kinds: the registry of mask kinds, its help, and a toy kind end to end."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dmfn_tf.data import masks
from dmfn_tf.data.masks.kinds import MASK_KINDS, MaskSettings, describe_mask_kinds, mask_kind, mask_maker
from dmfn_tf.errors import UserError

SIZE = 64


def _seed(n):
    return tf.constant([n, 12345], tf.int64)


@pytest.fixture
def toy_kind():
    """The toy kind `top_half` (the image's upper half is the hole; its setting `invert` gives the lower half)."""

    @mask_kind("top_half", help="the upper half of the image (the lower half with invert)", settings=("invert",))
    def top_half(size, settings):
        mask = np.zeros((size, size, 1), np.float32)
        mask[: size // 2] = 1
        mask = 1 - mask if settings.invert else mask
        return lambda index, seed: (tf.constant(mask), tf.constant([0, 0, size // 2, size // 2]))

    yield top_half
    del MASK_KINDS["top_half"]


def test_registry_makers_are_the_generators():
    assert tuple(MASK_KINDS) == ("center_box", "random_box", "free_form", "mixture", "file")
    seed = _seed(3)
    np.testing.assert_array_equal(mask_maker("center_box", SIZE)(0, seed)[0], masks.center_box(SIZE)[0])
    box = mask_maker("random_box", SIZE, MaskSettings(delta=8))(5, seed)
    np.testing.assert_array_equal(box[0], masks.random_box(SIZE, 8, seed)[0])
    np.testing.assert_array_equal(mask_maker("free_form", SIZE)(5, seed)[0], masks.free_form(SIZE, seed)[0])
    np.testing.assert_array_equal(mask_maker("mixture", SIZE)(5, seed)[0], masks.mixture(SIZE, seed)[0])
    with pytest.raises(UserError, match="unknown mask kind 'ring'; expected one of center_box, random_box"):
        mask_maker("ring", SIZE)
    with pytest.raises(UserError, match="needs mask files"):
        mask_maker("file", SIZE)


def _digest(kind, size, settings=MaskSettings(), count=24):
    """A short hash of `count` masks and boxes of a kind (seeds `[7, i]`), holes packed as bits."""
    make, digest = mask_maker(kind, size, settings), hashlib.sha256()
    for index in range(count):
        mask, bbox = make(index, tf.constant([7, index], tf.int64))
        digest.update(np.packbits(mask.numpy().astype(bool)).tobytes())
        digest.update(bbox.numpy().astype(np.int32).tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("kind, size, settings, expected", [
    ("mixture", 64, MaskSettings(), "9723867c66c34c4c"),
    ("mixture", 128, MaskSettings(), "47471893bff06f75"),
    ("random_box", 64, MaskSettings(delta=8), "a18ef2f2bc78008d"),
    ("random_box", 64, MaskSettings(delta=8, shrink="reference"), "97abc55c3ca3fa52"),
    ("free_form", 64, MaskSettings(), "eb6a08d048ae721e"),
    ("center_box", 64, MaskSettings(), "c20ac8c5e6e4e1da"),
])
def test_the_kinds_draw_the_masks_they_drew_before_the_registry_moved(kind, size, settings, expected):
    # Hashes of the masks the code drew before it was split into generators, files and kinds (same
    # seeds, this machine's TensorFlow): a training run resumed across the move sees the same holes.
    assert _digest(kind, size, settings) == expected


def test_a_registered_kind_reaches_the_training_pipeline_with_its_setting(toy_kind, tmp_path):
    from dmfn_tf.config import DataConfig
    from dmfn_tf.data.pipeline import build_dataset

    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tmp_path / "a.png")
    for invert, hole_rows in ((False, slice(0, SIZE // 2)), (True, slice(SIZE // 2, SIZE))):
        batch = next(iter(build_dataset(DataConfig(path=str(tmp_path), mask="top_half", invert_mask=invert), SIZE, 1)))
        mask = batch["mask"].numpy()[0]
        assert mask[hole_rows].min() == 1 and mask.sum() == SIZE * SIZE // 2


def test_a_registered_kind_is_listed_with_its_help_by_dmfn_evaluate(toy_kind):
    from dmfn_tf.cli import build_parser

    evaluate_parser = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    mask_help = next(action for action in evaluate_parser._actions if action.dest == "mask").help
    assert "top_half: the upper half of the image (the lower half with invert) (settings: invert)" in mask_help
    assert "file:" not in mask_help  # mask files are chosen by naming their folder


def test_describe_and_refusals():
    assert describe_mask_kinds(["center_box"]) == "center_box: a centred hole of half the side (the paper's evaluation protocol)"
    assert "random_box: " in describe_mask_kinds() and "(settings: delta, shrink)" in describe_mask_kinds()
    with pytest.raises(ValueError, match="'center_box' is already registered"):
        mask_kind("center_box", help="again")
    with pytest.raises(ValueError, match=r"unknown settings \['radius'\]"):
        mask_kind("ring", help="a ring", settings=("radius",))
