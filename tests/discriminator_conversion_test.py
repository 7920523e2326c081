"""The reference discriminator's tensors mapped onto `build_discriminator`, checked against a NumPy
re-implementation of the authors' forward pass written in PyTorch's own NCHW convention."""

import numpy as np
import pytest

from dmfn_tf.convert.official_mapping import (
    CheckpointMismatchError,
    discriminator_to_reference_state_dict,
    infer_discriminator_config,
    load_reference_discriminator_weights,
)
from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.errors import UserError


def _read_key_file(path):
    shapes = {}
    for line in path.read_text().splitlines():
        if line.strip():
            name, shape = line.split("\t")
            shapes[name] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    return shapes


def _reference_shapes(nf, image_size):
    """Names and PyTorch shapes of the authors' discriminator, derived from SPEC §3 (not from dmfn_tf)."""
    shapes = {}
    widths = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf, 8 * nf]

    def stage(prefix, in_channels, out_channels):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.norm.{name}"] = (out_channels,)
        shapes[f"{prefix}.norm.num_batches_tracked"] = ()
        shapes[f"{prefix}.conv.weight"] = (out_channels, in_channels, 5, 5)
        shapes[f"{prefix}.conv.bias"] = (out_channels,)

    for i, (cin, cout) in enumerate(zip([3] + widths[:5], widths)):
        stage(f"global_model.{i}", cin, cout)
    for i, (cin, cout) in enumerate(zip([3] + widths[:4], widths[:5])):
        stage(f"local_fea{i + 1}", cin, cout)
    side = image_size // 64  # 6 halvings of the image, 5 of the half-size crop
    shapes["global_classifier.weight"] = (512, 8 * nf * side * side)
    shapes["global_classifier.bias"] = (512,)
    shapes["local_classifier.weight"] = (512, 8 * nf * side * side)
    shapes["local_classifier.bias"] = (512,)
    shapes["classifier.1.weight"] = (1, 1024)
    shapes["classifier.1.bias"] = (1,)
    return shapes


def _random_state(shapes, seed=0):
    """Random tensors in PyTorch layout, scaled so that activations stay near unit size."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = np.array(1234, np.int64)
        elif name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.endswith("norm.weight"):
            state[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            state[name] = (rng.normal(size=shape) * 1.5 / np.sqrt(fan_in)).astype(np.float32)
        else:
            state[name] = (rng.normal(size=shape) * 0.1).astype(np.float32)
    return state


# NumPy forward pass in PyTorch's NCHW convention.


def _conv_nchw(x, weight, bias, stride=2, pad=2):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, kh, kw = weight.shape
    out_h = (x.shape[2] - kh) // stride + 1
    out_w = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], weight.shape[0], out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j])
    return out + bias[None, :, None, None]


def _leaky_relu(x):
    return np.where(x > 0, x, 0.2 * x)


def _stage(x, state, prefix):
    x = _conv_nchw(x, state[f"{prefix}.conv.weight"].astype(np.float64), state[f"{prefix}.conv.bias"])
    c = (slice(None), None, None)
    mean, var = state[f"{prefix}.norm.running_mean"][c], state[f"{prefix}.norm.running_var"][c]
    x = (x - mean) / np.sqrt(var + 1e-5) * state[f"{prefix}.norm.weight"][c] + state[f"{prefix}.norm.bias"][c]
    return _leaky_relu(x)


def _linear(x, state, prefix):
    return x @ state[f"{prefix}.weight"].T.astype(np.float64) + state[f"{prefix}.bias"]


def _reference_forward(state, local_nchw, image_nchw, flatten=lambda m: m.reshape(m.shape[0], -1)):
    """The authors' forward pass; `flatten` defaults to PyTorch's `view(B, -1)` (C, H, W order)."""
    local_features, x = [], local_nchw.astype(np.float64)
    for i in range(5):
        x = _stage(x, state, f"local_fea{i + 1}")
        local_features.append(x)
    y = image_nchw.astype(np.float64)
    for i in range(6):
        y = _stage(y, state, f"global_model.{i}")
    local_vector = _linear(flatten(x), state, "local_classifier")
    global_vector = _linear(flatten(y), state, "global_classifier")
    logit = _linear(_leaky_relu(np.concatenate([local_vector, global_vector], axis=1)), state, "classifier.1")
    return logit, local_features


def test_reference_key_file_loads_at_default_size(fixtures_dir):
    shapes = _read_key_file(fixtures_dir / "official_D_default_keys.txt")
    assert shapes == _reference_shapes(64, 256)
    state = _random_state(shapes)
    assert infer_discriminator_config(state) == {"nf": 64, "image_size": 256}
    discriminator = build_discriminator(nf=64, image_size=256)
    load_reference_discriminator_weights(discriminator, state, source="official_D.pth")
    # Spot checks of the layouts, indexed by hand: conv (out, in, kh, kw) -> (kh, kw, in, out).
    np.testing.assert_array_equal(
        discriminator.get_layer("local3_conv").kernel.numpy()[1, 4, 200, 7], state["local_fea4.conv.weight"][7, 200, 1, 4]
    )
    np.testing.assert_array_equal(
        discriminator.get_layer("global5_norm").moving_variance.numpy(), state["global_model.5.norm.running_var"]
    )
    # Linear input index c*16 + h*4 + w (C, H, W) is Dense input row h*4*512 + w*512 + c (H, W, C).
    c, h, w, unit = 300, 2, 1, 17
    np.testing.assert_array_equal(
        discriminator.get_layer("global_dense").kernel.numpy()[h * 4 * 512 + w * 512 + c, unit],
        state["global_classifier.weight"][unit, c * 16 + h * 4 + w],
    )
    back = discriminator_to_reference_state_dict(discriminator)
    assert list(back) == list(shapes)  # same names, in the reference's order
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):  # not kept by Keras; written back as 0
            assert back[name].dtype == np.int64 and back[name].shape == () and back[name] == 0
        else:
            np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_logit_and_features_match_numpy_reference():
    # At 128² both branches end on 2x2 maps, so (C, H, W) and (H, W, C) flatten orders differ.
    nf, image_size = 4, 128
    state = _random_state(_reference_shapes(nf, image_size), seed=1)
    assert infer_discriminator_config(state) == {"nf": nf, "image_size": image_size}
    discriminator = build_discriminator(nf=nf, image_size=image_size)
    load_reference_discriminator_weights(discriminator, state)

    rng = np.random.default_rng(2)
    image = rng.uniform(-1, 1, (2, image_size, image_size, 3)).astype(np.float32)
    local = image[:, 16:80, 40:104]
    logit, features = discriminator([local, image], training=False)
    expected_logit, expected_features = _reference_forward(state, local.transpose(0, 3, 1, 2), image.transpose(0, 3, 1, 2))
    scale = np.abs(expected_logit).max()
    assert scale > 0.1  # a meaningful logit, not a vanishing one
    np.testing.assert_allclose(logit.numpy(), expected_logit, atol=1e-4 * scale)
    for got, want in zip(features, expected_features):
        np.testing.assert_allclose(got.numpy(), want.transpose(0, 2, 3, 1), atol=1e-4 * np.abs(want).max())
    # The check can fail: flattening in Keras' (H, W, C) order would move the logit far beyond the tolerance.
    unpermuted, _ = _reference_forward(
        state, local.transpose(0, 3, 1, 2), image.transpose(0, 3, 1, 2),
        flatten=lambda m: m.transpose(0, 2, 3, 1).reshape(m.shape[0], -1),
    )
    assert np.abs(unpermuted - expected_logit).max() > 100 * 1e-4 * scale


def test_keras_reference_keras_round_trip_is_exact():
    rng = np.random.default_rng(3)
    original = build_discriminator(nf=4, image_size=128)
    for norm in (layer for layer in original.layers if layer.name.endswith("_norm")):
        norm.moving_mean.assign(rng.normal(size=norm.moving_mean.shape))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, norm.moving_variance.shape))
    for dense in ("local_dense", "global_dense", "logit"):
        original.get_layer(dense).bias.assign(rng.normal(size=original.get_layer(dense).bias.shape))
    state = discriminator_to_reference_state_dict(original)
    copy = build_discriminator(nf=4, image_size=128)
    load_reference_discriminator_weights(copy, state)
    assert len(copy.weights) == len(original.weights)
    for a, b in zip(original.weights, copy.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_num_batches_tracked_is_optional():
    state = _random_state(_reference_shapes(4, 64))
    state = {name: value for name, value in state.items() if not name.endswith("num_batches_tracked")}
    discriminator = build_discriminator(nf=4, image_size=64)
    load_reference_discriminator_weights(discriminator, state)
    np.testing.assert_array_equal(discriminator.get_layer("logit").bias.numpy(), state["classifier.1.bias"])


def test_mismatch_lists_every_problem_and_loads_nothing():
    state = _random_state(_reference_shapes(4, 64))
    del state["local_fea3.norm.running_mean"]
    del state["classifier.1.bias"]
    state["global_model.2.conv.weight"] = state["global_model.2.conv.weight"][:, :5]
    state["local_classifier.weight"] = state["local_classifier.weight"][:, :-1]
    state["discriminator.extra"] = np.zeros(3, np.float32)
    discriminator = build_discriminator(nf=4, image_size=64)
    before = [w.numpy().copy() for w in discriminator.weights]
    with pytest.raises(CheckpointMismatchError) as err:
        load_reference_discriminator_weights(discriminator, state, source="latest_D.pth")
    message = str(err.value)
    assert message.startswith("latest_D.pth: ")
    for line in (
        "missing: local_fea3.norm.running_mean",
        "missing: classifier.1.bias",
        "unexpected: discriminator.extra",
        "wrong shape: global_model.2.conv.weight: checkpoint (16, 5, 5, 5), model expects (16, 8, 5, 5)",
        "wrong shape: local_classifier.weight: checkpoint (512, 31), model expects (512, 32)",
    ):
        assert line in message
    assert len(message.splitlines()) == 6  # the heading and the five problems, nothing else
    for old, new in zip(before, discriminator.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_config_inference_rejects_other_checkpoints():
    with pytest.raises(UserError, match=r"G\.pth: not a DMFN discriminator checkpoint \(no 'global_model.0.conv.weight'"):
        infer_discriminator_config({"encoder.0.conv.weight": np.zeros((4, 4, 5, 5))}, source="G.pth")
    state = _random_state(_reference_shapes(4, 64))
    del state["global_model.5.conv.weight"]
    with pytest.raises(UserError, match=r"convs at stages \[0, 1, 2, 3, 4\]; a DMFN discriminator has 6"):
        infer_discriminator_config(state, source="D.pth")
    state = _random_state(_reference_shapes(4, 64))
    state["global_classifier.weight"] = np.zeros((512, 33), np.float32)
    with pytest.raises(UserError, match=r"'global_classifier.weight' has shape \(512, 33\)"):
        infer_discriminator_config(state, source="D.pth")


def test_spectral_norm_discriminator_has_no_reference_naming():
    discriminator = build_discriminator(nf=4, image_size=64, spectral_norm=True)
    with pytest.raises(UserError, match="spectral-normalised"):
        discriminator_to_reference_state_dict(discriminator)


def test_training_updates_running_statistics_as_pytorch_does():
    # Load, one training-mode call, export: the first stages' running_mean / running_var must be
    # PyTorch's update 0.9 * old + 0.1 * batch statistic, with the UNBIASED batch variance.
    state = _random_state(_reference_shapes(4, 64), seed=5)
    discriminator = build_discriminator(nf=4, image_size=64)
    load_reference_discriminator_weights(discriminator, state)
    rng = np.random.default_rng(6)
    image = rng.uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    local = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    discriminator([local.transpose(0, 2, 3, 1), image.transpose(0, 2, 3, 1)], training=True)
    exported = discriminator_to_reference_state_dict(discriminator)
    for prefix, x in (("global_model.0", image), ("local_fea1", local)):
        conv = _conv_nchw(x.astype(np.float64), state[f"{prefix}.conv.weight"], state[f"{prefix}.conv.bias"])
        unbiased = conv.var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(exported[f"{prefix}.norm.running_var"], 0.9 * state[f"{prefix}.norm.running_var"] + 0.1 * unbiased, rtol=1e-5)
        np.testing.assert_allclose(
            exported[f"{prefix}.norm.running_mean"], 0.9 * state[f"{prefix}.norm.running_mean"] + 0.1 * conv.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6
        )
