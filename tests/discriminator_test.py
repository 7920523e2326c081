import keras
import numpy as np
import pytest

from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.errors import ConfigError
from round_trips import assert_keras_round_trip


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_parameter_count_at_256():
    assert _trainable(build_discriminator(nf=64, image_size=256)) == 36_673_025


def test_outputs_and_feature_shapes():
    d = build_discriminator(nf=8, image_size=64)
    rng = np.random.default_rng(0)
    logit, features = d([rng.normal(size=(3, 32, 32, 3)).astype("float32"), rng.normal(size=(3, 64, 64, 3)).astype("float32")])
    assert logit.shape == (3, 1)
    assert [tuple(f.shape) for f in features] == [(3, 16, 16, 8), (3, 8, 8, 16), (3, 4, 4, 32), (3, 2, 2, 64), (3, 1, 1, 64)]


def test_first_stage_is_conv_batchnorm_leaky_relu():
    # Inference mode: BatchNorm uses its moving statistics (0 mean, unit variance at init).
    d = build_discriminator(nf=4, image_size=64)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    _, features = d([x, np.zeros((2, 64, 64, 3), "float32")], training=False)
    conv, norm = d.get_layer("local0_conv"), d.get_layer("local0_norm")
    from numpy_reference import conv2d

    pre = conv2d(x.astype("float64"), conv.kernel.numpy(), conv.bias.numpy(), stride=2, pad=2)
    pre = pre / np.sqrt(1 + 1e-5) * norm.gamma.numpy() + norm.beta.numpy()
    expected = np.where(pre > 0, pre, 0.2 * pre)
    np.testing.assert_allclose(features[0].numpy(), expected, atol=1e-4)


def test_reference_initialisation():
    d = build_discriminator(nf=16, image_size=64)
    kernel = d.get_layer("global1_conv").kernel.numpy()
    gamma = d.get_layer("global1_norm").gamma.numpy()
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
    assert abs(gamma.mean() - 1.0) < 0.01 and 0.01 < gamma.std() < 0.03
    assert np.all(d.get_layer("global1_conv").bias.numpy() == 0)


def test_spectral_norm_option_and_round_trip(tmp_path):
    d = build_discriminator(nf=4, image_size=64, spectral_norm=True)
    assert any(isinstance(layer, keras.layers.SpectralNormalization) for layer in d.layers)
    inputs = [np.ones((1, 32, 32, 3), "float32"), np.ones((1, 64, 64, 3), "float32")]
    logit, _ = d(inputs, training=False)
    assert np.isfinite(logit.numpy()).all()
    assert_keras_round_trip(d, inputs, tmp_path / "d.keras", atol=1e-6, training=False)


def test_save_load_round_trip(tmp_path):
    d = build_discriminator(nf=4, image_size=64)
    inputs = [np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32"), np.zeros((2, 64, 64, 3), "float32")]
    assert_keras_round_trip(d, inputs, tmp_path / "d.keras")


@pytest.mark.parametrize("kwargs,match", [({"image_size": 100}, "multiple of 64, got 100"), ({"nf": 0}, "got 0")])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_discriminator(**kwargs)
