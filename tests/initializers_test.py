"""`model.init: reference`: the authors' initialisation, checked in PyTorch's layout through the converter."""

import numpy as np
import pytest

from dmfn_tf.convert.official_mapping import discriminator_to_reference_state_dict, generator_to_reference_state_dict
from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.models.generator import build_generator
from dmfn_tf.models.initializers import apply_reference_initialization, initialize


def _torch_default_bound(weight):
    """PyTorch's default init bound 1/sqrt(fan_in), fan_in = weight.size(1) * receptive field (its own rule)."""
    return 1.0 / np.sqrt(weight.shape[1] * int(np.prod(weight.shape[2:])))


def _assert_normal(values, mean, std):
    assert abs(values.mean() - mean) < 0.1 * std and abs(values.std() - std) < 0.1 * std, (values.mean(), values.std())


def test_generator_reference_init_in_pytorchs_layout():
    generator = build_generator(nf=16, n_blocks=1, block="official")
    apply_reference_initialization(generator, seed=0)
    state = generator_to_reference_state_dict(generator)
    for name, value in state.items():
        if ".deconv." in name:
            # ConvTranspose2d keeps PyTorch's default: uniform in ±1/sqrt(fan_in), bias too.
            bound = _torch_default_bound(state[name.replace(".bias", ".weight")])
            assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound, name
        elif name.endswith(".weight"):
            assert np.abs(value).max() < 0.02 * 6, name
        else:
            assert np.all(value == 0), name
    convs = np.concatenate([v.ravel() for k, v in state.items() if k.endswith(".weight") and ".deconv." not in k])
    _assert_normal(convs, 0.0, 0.02)


def test_discriminator_reference_init_in_pytorchs_layout():
    discriminator = build_discriminator(nf=8, image_size=64)
    apply_reference_initialization(discriminator, seed=1)
    state = discriminator_to_reference_state_dict(discriminator)
    for name in ("global_classifier", "local_classifier", "classifier.1"):
        bound = _torch_default_bound(state[f"{name}.weight"])
        for kind in ("weight", "bias"):
            value = state[f"{name}.{kind}"]
            assert np.abs(value).max() <= bound, name
        # Uniform, not N(0, 0.02): the standard deviation of U(-b, b) is b / sqrt(3).
        assert abs(state[f"{name}.weight"].std() - bound / np.sqrt(3)) < 0.1 * bound, name
    gammas = np.concatenate([v for k, v in state.items() if k.endswith("norm.weight")])
    _assert_normal(gammas, 1.0, 0.02)
    assert all(np.all(v == 0) for k, v in state.items() if k.endswith(("norm.bias", "conv.bias")))
    _assert_normal(state["global_model.3.conv.weight"], 0.0, 0.02)


def test_init_matches_the_fixtures_initial_state_statistics(fixtures_dir):
    # The authors' own initial state (train_step_reference.npz) against ours, tensor by tensor.
    npz = np.load(fixtures_dir / "train_step_reference.npz", allow_pickle=False)
    generator = build_generator(nf=16, n_blocks=2, block="official")
    discriminator = build_discriminator(nf=8, image_size=128)
    apply_reference_initialization(generator, seed=2)
    apply_reference_initialization(discriminator, seed=3)
    ours = {**{f"G/{k}": v for k, v in generator_to_reference_state_dict(generator).items()},
            **{f"D/{k}": v for k, v in discriminator_to_reference_state_dict(discriminator).items()}}
    for key, value in ours.items():
        if "running" in key or "num_batches" in key:
            continue
        theirs = npz[f"init/{key}"]
        assert value.shape == theirs.shape, key
        if not theirs.any():
            assert not value.any(), key  # zero biases
        elif theirs.size >= 100:
            # Same scale and family: a uniform never exceeds sqrt(3) of its std, a normal does 7 % of the time.
            assert abs(value.mean() - theirs.mean()) < 5 * theirs.std() / np.sqrt(theirs.size), key
            assert abs(value.std() / theirs.std() - 1) < 0.15, key
            tails = [np.mean(np.abs(t - t.mean()) > 1.8 * t.std()) > 0.02 for t in (value, theirs)]
            assert tails[0] == tails[1], (key, tails)
        else:
            assert value.all(), key


def test_keras_init_keeps_the_builders_weights_and_seeds_reproduce():
    generator = build_generator(nf=4, n_blocks=1)
    before = [w.copy() for w in generator.get_weights()]
    initialize(generator, "keras")
    assert all(np.array_equal(a, b) for a, b in zip(before, generator.get_weights()))
    initialize(generator, "reference", seed=5)
    first = [w.copy() for w in generator.get_weights()]
    initialize(generator, "reference", seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, generator.get_weights()))
    with pytest.raises(ValueError, match="unknown initialisation"):
        initialize(generator, "xavier")
