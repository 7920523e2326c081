import keras
import numpy as np
import pytest

from dmfn_tf.convert.official_mapping import (
    CheckpointMismatchError,
    generator_to_reference_state_dict,
    infer_generator_config,
    load_reference_generator_weights,
)
from dmfn_tf.errors import ConfigError
from dmfn_tf.inpaint.contract import composite, generator_input
from dmfn_tf.models.generator import build_generator
from round_trips import assert_config_round_trip, assert_keras_round_trip


@pytest.mark.parametrize("block,expected", [("paper", 5_729_411), ("official", 9_037_443)])
def test_parameter_counts_at_default_size(block, expected):
    assert build_generator(nf=64, n_blocks=8, block=block).count_params() == expected


@pytest.mark.parametrize("shape", [(64, 64), (64, 96), (36, 20)])
def test_fully_convolutional(shape):
    generator = build_generator(nf=4, n_blocks=1)
    out = generator(np.zeros((2, *shape, 4), "float32")).numpy()
    assert out.shape == (2, *shape, 3)
    assert np.all(np.abs(out) <= 1.0)


def _reference_model(fixtures_dir):
    weights = dict(np.load(fixtures_dir / "official_G_nf16_res2_weights.npz"))
    config = infer_generator_config(weights)
    assert config == {"nf": 16, "n_blocks": 2, "block": "official"}
    generator = build_generator(**config)
    load_reference_generator_weights(generator, weights)
    return generator, weights


def test_parity_with_reference_code(fixtures_dir):
    generator, _ = _reference_model(fixtures_dir)
    io = np.load(fixtures_dir / "io.npz")
    x = generator_input(io["image"], io["mask"])
    raw = generator(x).numpy()
    assert np.abs(raw - io["raw_output"]).max() <= 1e-4
    comp = composite(raw, io["image"], io["mask"])
    assert np.abs(np.asarray(comp) - io["composited_output"]).max() <= 1e-4


def test_intermediates_match_reference(fixtures_dir):
    generator, _ = _reference_model(fixtures_dir)
    inter = np.load(fixtures_dir / "intermediates.npz")
    io = np.load(fixtures_dir / "io.npz")
    np.testing.assert_allclose(np.asarray(generator_input(io["image"], io["mask"])), inter["generator_input"], atol=1e-6)
    probe = keras.Model(generator.input, [generator.get_layer("enc4_relu").output, generator.get_layer("block_0").output, generator.get_layer("block_1").output])
    encoder_out, block0_out, blocks_out = (t.numpy() for t in probe(inter["generator_input"]))
    np.testing.assert_allclose(encoder_out, inter["encoder_out"], atol=1e-4)
    np.testing.assert_allclose(block0_out, inter["block0_out"], atol=1e-4)
    np.testing.assert_allclose(blocks_out, inter["blocks_out"], atol=1e-4)


def test_every_reference_tensor_is_mapped_both_ways(fixtures_dir):
    generator, weights = _reference_model(fixtures_dir)
    back = generator_to_reference_state_dict(generator)
    assert list(back) == list(weights)  # same names, same order as the reference's state dict
    for name, value in weights.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_default_reference_key_names_are_all_mapped(fixtures_dir):
    # The full-size naming (8 blocks) from the reference's key list, with the shapes it gives.
    lines = (fixtures_dir / "official_G_default_keys.txt").read_text().split("\n")
    shapes = {name: eval(shape) for name, shape in (line.split("\t") for line in lines if line.strip())}
    generator = build_generator(nf=64, n_blocks=8, block="official")
    state = generator_to_reference_state_dict(generator)
    assert {k: v.shape for k, v in state.items()} == shapes


def test_mismatched_checkpoint_lists_every_problem(fixtures_dir):
    generator, weights = _reference_model(fixtures_dir)
    broken = dict(weights)
    del broken["blocks.1.d3.bias"]
    broken["blocks.0.c1.weight"] = broken["blocks.0.c1.weight"][:, :8]
    broken["extra.weight"] = np.zeros(3)
    before = [w.numpy().copy() for w in generator.weights]
    with pytest.raises(CheckpointMismatchError) as err:
        load_reference_generator_weights(generator, broken, source="broken.pth")
    message = str(err.value)
    assert "broken.pth" in message
    assert "missing: blocks.1.d3.bias" in message and "unexpected: extra.weight" in message
    assert "wrong shape: blocks.0.c1.weight" in message
    for old, new in zip(before, generator.weights):  # nothing was partially loaded
        np.testing.assert_array_equal(old, new.numpy())


def test_keras_save_load_round_trip(tmp_path):
    generator = build_generator(nf=4, n_blocks=2, block="paper")
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 4)).astype("float32")
    assert_keras_round_trip(generator, x, tmp_path / "g.keras")
    assert_config_round_trip(generator, x)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"block": "fancy"}, "unknown block variant 'fancy'"), ({"nf": 0}, "nf must be a positive integer, got 0"), ({"nf": -3}, "got -3")],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_generator(**kwargs)
