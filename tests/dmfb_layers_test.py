import keras
import numpy as np
import pytest

from dmfn_tf.models.dmfb_layers import DMFB
from numpy_reference import conv2d, instance_norm, relu
from round_trips import assert_config_round_trip, assert_keras_round_trip


def _block(channels, variant, use_combination=True):
    block = DMFB(channels, variant=variant, use_combination=use_combination)
    block.build((None, 16, 16, channels))
    return block


@pytest.mark.parametrize(
    "variant,use_combination,expected",
    [("paper", True, 471_808), ("paper", False, 361_024), ("official", True, 885_312)],
)
def test_parameter_counts_at_256_channels(variant, use_combination, expected):
    # The paper's Table 2 ("DMFB", "w/o K_i") and the reference code's block.
    assert _block(256, variant, use_combination).count_params() == expected


def _weights(conv):
    return conv.kernel.numpy().astype("float64"), conv.bias.numpy().astype("float64")


def _numpy_dmfb(block, x):
    """SPEC §2a / §2b written out in NumPy."""
    conv = lambda layer, h, dilation=1: conv2d(h, *_weights(layer), dilation=dilation, pad=dilation * (layer.kernel.shape[0] - 1) // 2)
    h = relu(instance_norm(conv(block.c1, x)))
    if block.variant == "paper":
        xs = [relu(instance_norm(conv(layer, h, d))) for layer, d in zip(block.dilated, (1, 2, 4, 8))]
        ys = [xs[0]]
        for k_layer, xi in zip(block.combination, xs[1:]):
            ys.append(conv(k_layer, ys[-1] + xi))
    else:
        ds = [conv(layer, h, d) for layer, d in zip(block.dilated, (1, 2, 4, 8))]
        ys = [ds[0], ds[0] + ds[1], ds[0] + ds[1] + ds[2], ds[0] + ds[1] + ds[2] + ds[3]]
    z = relu(instance_norm(np.concatenate(ys, axis=-1)))
    return x + instance_norm(conv(block.c2, z))


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_forward_matches_numpy_equations(variant):
    rng = np.random.default_rng(0)
    block = _block(16, variant)
    # Non-zero biases, so that a wrongly placed bias would show.
    for w in block.weights:
        w.assign(rng.normal(0, 0.2, w.shape).astype("float32"))
    x = rng.normal(size=(2, 20, 18, 16)).astype("float32")
    np.testing.assert_allclose(block(x).numpy(), _numpy_dmfb(block, x.astype("float64")), atol=2e-4)


def test_paper_variant_without_combination_drops_k_convs():
    block = _block(16, "paper", use_combination=False)
    assert block.combination == []
    assert [layer.kernel.shape[0] for layer in (block.c2,)] == [1]


def test_config_round_trip_keeps_outputs():
    block = _block(16, "official")
    x = np.random.default_rng(1).normal(size=(1, 12, 12, 16)).astype("float32")
    clone = assert_config_round_trip(block, x)
    assert clone.variant == "official" and clone.channels == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown DMFB variant 'fancy'"):
        DMFB(16, variant="fancy")
    with pytest.raises(ValueError, match="multiple of 4"):
        DMFB(10)


def test_usable_in_functional_model():
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, DMFB(8)(inputs))
    assert model(np.zeros((1, 8, 12, 8), "float32")).shape == (1, 8, 12, 8)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_generator_saved_under_mixed_precision_loads_and_runs_under_float32(tmp_path, variant):
    # A run trained with train.precision: mixed_bfloat16 saves its generator with bfloat16 blocks;
    # loaded later (global policy float32), every layer inside a block must keep the block's policy.
    from dmfn_tf.model_io import load_generator
    from dmfn_tf.models.generator import build_generator

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = build_generator(nf=4, n_blocks=1, block=variant)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    inputs = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 4)).astype(np.float32)
    loaded = assert_keras_round_trip(generator, inputs, tmp_path / "generator.keras", load=load_generator, atol=1e-6)
    block = next(layer for layer in loaded.layers if isinstance(layer, DMFB))
    assert {sub.dtype_policy.name for sub in [block.c1, block.c2, block.norm, *block.dilated]} == {"mixed_bfloat16"}
    out = np.asarray(loaded(inputs), np.float32)
    assert out.shape == (1, 32, 32, 3) and np.isfinite(out).all()
