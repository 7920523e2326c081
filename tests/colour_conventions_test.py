"""The colour conventions of the generator (dmfn_tf.models.colour_conventions, docs/design.md §2c)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.inpaint.contract import generator_input
from dmfn_tf.models.colour_conventions import (
    MIN_DEVIATION,
    KnownColourStatistics,
    PullPushPrefill,
    ResidualOverPrefill,
    RestoreColour,
    StandardiseKnown,
    pull_push_fill,
)
from dmfn_tf.models.generator import build_generator
from dmfn_tf.serving.tflite_export import convert_to_tflite, operator_names, run_tflite
from ai_edge_litert.interpreter import Interpreter
from round_trips import assert_config_round_trip, assert_keras_round_trip


def _numpy_pull_push(image, hole, levels):
    """An independent loop-based reference: 2x2 means of valid entries, then 'over' compositing back down."""
    known = 1.0 - hole
    sums, weights = [image * known], [known]
    for _ in range(levels):
        s, w = sums[-1], weights[-1]
        height, width = -(-s.shape[0] // 2), -(-s.shape[1] // 2)
        pooled_s, pooled_w = np.zeros((height, width, s.shape[2])), np.zeros((height, width, 1))
        for i in range(height):
            for j in range(width):
                block_s, block_w = s[2 * i : 2 * i + 2, 2 * j : 2 * j + 2], w[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                count = block_w.shape[0] * block_w.shape[1]
                pooled_s[i, j], pooled_w[i, j] = block_s.sum((0, 1)) / count, block_w.sum((0, 1)) / count
        sums.append(pooled_s)
        weights.append(pooled_w)
    mean = (image * known).sum((0, 1)) / max(known.sum(), 1.0)
    filled = sums[-1] + (1 - weights[-1]) * mean
    for level in range(levels - 1, -1, -1):
        size = sums[level].shape[:2]
        upsampled = tf.image.resize(filled[None].astype(np.float32), size, method="bilinear")[0].numpy()
        filled = sums[level] + (1 - weights[level]) * upsampled
    return filled


def _hole(height, width, top, left, bottom, right):
    hole = np.zeros((height, width, 1), np.float32)
    hole[top:bottom, left:right] = 1
    return hole


@pytest.mark.parametrize("height, width, levels", [(16, 16, 4), (13, 22, 5), (64, 48, 8)])
def test_pull_push_matches_an_independent_reference(height, width, levels):
    rng = np.random.default_rng(height)
    image = rng.uniform(-1, 1, (height, width, 3)).astype(np.float32)
    hole = _hole(height, width, height // 4, width // 3, 3 * height // 4, width - 2)
    got = pull_push_fill(tf.constant(image[None]), tf.constant(hole[None]), levels)[0].numpy()
    np.testing.assert_allclose(got, _numpy_pull_push(image.astype(np.float64), hole, levels), atol=2e-6)


def test_pull_push_keeps_known_pixels_and_stays_within_their_range():
    rng = np.random.default_rng(0)
    image = rng.uniform(-0.5, 0.7, (1, 40, 56, 3)).astype(np.float32)
    hole = _hole(40, 56, 5, 10, 35, 50)[None]
    filled = pull_push_fill(tf.constant(image), tf.constant(hole)).numpy()
    np.testing.assert_array_equal(filled[hole[..., 0] == 0], image[hole[..., 0] == 0])
    assert filled.min() >= -0.5 - 1e-6 and filled.max() <= 0.7 + 1e-6


def test_pull_push_continues_each_side_colour_into_the_hole():
    image = np.zeros((1, 64, 64, 3), np.float32)
    image[:, :, :32], image[:, :, 32:] = -1.0, 1.0
    filled = pull_push_fill(tf.constant(image), tf.constant(_hole(64, 64, 16, 16, 48, 48)[None])).numpy()
    row = filled[0, 32, 16:48, 0]
    assert row[0] < -0.5 and row[-1] > 0.5 and np.all(np.diff(row) >= -1e-6)


def test_a_hole_with_nothing_known_is_grey_not_nan():
    filled = pull_push_fill(tf.ones((1, 8, 8, 3)), tf.ones((1, 8, 8, 1))).numpy()
    np.testing.assert_array_equal(filled, 0.0)


def _inputs(seed=0, size=64):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    image[1] = np.array([0.3, -0.6, 0.1], np.float32)  # a flat image
    hole = np.repeat(_hole(size, size, 16, 16, 48, 48)[None], 2, axis=0)
    return image, hole


def test_untrained_prefill_generator_returns_the_prefill():
    image, hole = _inputs()
    generator = build_generator(nf=4, n_blocks=1, colour_convention="prefill")
    out = generator(generator_input(image, hole)).numpy()
    np.testing.assert_allclose(out, pull_push_fill(tf.constant(image), tf.constant(hole)).numpy(), atol=1e-6)


def test_untrained_standardise_generator_returns_the_known_mean_colour():
    image, hole = _inputs()
    generator = build_generator(nf=4, n_blocks=1, colour_convention="standardise")
    out = generator(generator_input(image, hole)).numpy()
    for i in range(2):
        known = image[i][hole[i, ..., 0] == 0]
        np.testing.assert_allclose(out[i, 32, 32], known.mean(0), atol=5e-5)
    np.testing.assert_allclose(out[1], np.broadcast_to(image[1], out[1].shape), atol=5e-5)


def test_standardise_scales_the_output_by_the_known_deviation():
    image, hole = _inputs()
    generator = build_generator(nf=4, n_blocks=1, colour_convention="standardise")
    out_conv = generator.get_layer("out_conv")
    out_conv.bias.assign([0.5, 0.0, -0.5])  # z = (0.5, 0, -0.5) everywhere
    out = generator(generator_input(image, hole)).numpy()
    known = image[0][hole[0, ..., 0] == 0]
    mean, deviation = known.mean(0), np.maximum(known.std(0), MIN_DEVIATION)
    np.testing.assert_allclose(out[0, 20, 20], np.clip(mean + deviation * [0.5, 0.0, -0.5], -1, 1), atol=1e-5)
    np.testing.assert_allclose(out[1, 20, 20], image[1, 0, 0] + MIN_DEVIATION * np.array([0.5, 0.0, -0.5]), atol=5e-5)


def test_each_convention_layer_survives_a_config_round_trip():
    image, hole = _inputs(1)
    x = generator_input(image, hole)
    statistics = KnownColourStatistics(min_deviation=0.05)
    assert assert_config_round_trip(statistics, x).min_deviation == 0.05
    z = np.random.default_rng(5).normal(size=image.shape).astype(np.float32)
    for layer, inputs in ((StandardiseKnown(), [x, statistics(x)]), (RestoreColour(), [z, statistics(x)]),
                          (ResidualOverPrefill(), [z, x])):
        assert_config_round_trip(layer, inputs)
    assert assert_config_round_trip(PullPushPrefill(levels=3), x).levels == 3


@pytest.mark.parametrize("convention", ["standardise", "prefill"])
def test_conventions_survive_a_keras_round_trip_and_mixed_precision(tmp_path, convention):
    image, hole = _inputs(1)
    keras.utils.set_random_seed(0)
    generator = build_generator(nf=4, n_blocks=1, colour_convention=convention)
    generator.get_layer("out_conv").kernel.assign(tf.random.normal(generator.get_layer("out_conv").kernel.shape) * 0.1)
    assert_keras_round_trip(generator, generator_input(image, hole), tmp_path / "g.keras")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = build_generator(nf=4, n_blocks=1, colour_convention=convention)
        out = half(generator_input(image, hole))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float32
    assert np.all(np.abs(out.numpy()) <= 1.0)


@pytest.mark.parametrize("convention", ["standardise", "prefill"])
def test_tflite_applies_the_convention_with_builtin_ops(convention):
    image, hole = _inputs(2, size=48)
    keras.utils.set_random_seed(1)
    generator = build_generator(nf=4, n_blocks=1, colour_convention=convention)
    generator.get_layer("out_conv").kernel.assign(tf.random.normal(generator.get_layer("out_conv").kernel.shape) * 0.1)
    model = convert_to_tflite(generator, size=None)
    assert not [name for name in operator_names(model) if name.startswith("Flex")]
    expected = hole * generator(generator_input(image, hole)).numpy() + (1 - hole) * image
    np.testing.assert_allclose(run_tflite(Interpreter(model_content=model), image, hole), expected, atol=1e-4)
