import keras
import numpy as np
import pytest

from dmfn_tf.models.layers import BatchNormalization, InstanceNormalization, PaddedConv2D
from numpy_reference import conv2d, instance_norm
from round_trips import assert_config_round_trip


def test_instance_norm_matches_numpy_and_group_norm():
    x = np.random.default_rng(0).normal(2.0, 3.0, (2, 7, 5, 6)).astype("float32")
    out = InstanceNormalization()(x).numpy()
    np.testing.assert_allclose(out, instance_norm(x.astype("float64")), atol=1e-5)
    group_norm = keras.layers.GroupNormalization(groups=-1, center=False, scale=False, epsilon=1e-5)
    np.testing.assert_allclose(out, group_norm(x).numpy(), atol=1e-5)


def test_instance_norm_epsilon_is_1e5_by_default():
    # A constant-plus-tiny-noise map: the epsilon dominates the variance, so 1e-3 would be visibly off.
    x = (np.random.default_rng(1).normal(0, 1e-2, (1, 4, 4, 1))).astype("float32")
    np.testing.assert_allclose(InstanceNormalization()(x).numpy(), instance_norm(x.astype("float64"), 1e-5), rtol=1e-4)
    assert not np.allclose(InstanceNormalization()(x).numpy(), instance_norm(x.astype("float64"), 1e-3), rtol=1e-2)


@pytest.mark.parametrize("kernel_size,stride,dilation,size", [(3, 2, 1, 8), (5, 1, 1, 7), (3, 1, 4, 9), (3, 2, 1, 9)])
def test_padded_conv_matches_symmetric_padding(kernel_size, stride, dilation, size):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, size, size + 2, 3)).astype("float32")
    layer = PaddedConv2D(4, kernel_size, strides=stride, dilation_rate=dilation)
    out = layer(x).numpy()
    kernel, bias = (w.numpy() for w in layer.weights)
    pad = dilation * (kernel_size - 1) // 2
    expected = conv2d(x.astype("float64"), kernel, bias, stride=stride, dilation=dilation, pad=pad)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert layer.compute_output_shape(x.shape) == out.shape


def test_stride_two_differs_from_keras_same_padding():
    # The reason PaddedConv2D exists: "same" pads 0 before / 1 after at stride 2.
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 2)).astype("float32")
    ours = PaddedConv2D(3, 3, strides=2)
    ours.build(x.shape)
    same = keras.layers.Conv2D(3, 3, strides=2, padding="same")
    same.build(x.shape)
    same.set_weights(ours.get_weights())
    assert np.abs(ours(x).numpy() - same(x).numpy()).max() > 1e-3


def test_padded_conv_config_round_trip_and_rejects_padding():
    x = np.random.default_rng(4).normal(size=(1, 9, 10, 2)).astype("float32")
    for layer in (PaddedConv2D(4, 3, strides=2, dilation_rate=1, name="c"), PaddedConv2D(3, 3, dilation_rate=2)):
        clone = assert_config_round_trip(layer, x)
        assert clone.pad == layer.pad and clone.strides == layer.strides
    with pytest.raises(ValueError, match="pads explicitly"):
        PaddedConv2D(4, 3, padding="same")
    with pytest.raises(ValueError, match="odd square kernel"):
        PaddedConv2D(4, 4)
    norm = assert_config_round_trip(InstanceNormalization(epsilon=1e-4), x)
    assert norm.epsilon == 1e-4


@pytest.mark.parametrize("dtype,atol", [("float32", 1e-5), ("bfloat16", 3e-2)])
def test_instance_norm_of_one_sample_matches_numpy(dtype, atol):
    # A batch of one takes the fused batch-norm kernel; larger batches the explicit formula.
    x = np.random.default_rng(4).normal(-1.0, 2.0, (1, 9, 7, 5)).astype("float32")
    out = InstanceNormalization(dtype=dtype)(keras.ops.cast(x, dtype))
    assert out.dtype == dtype
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")), instance_norm(x.astype("float64")), atol=atol)


def test_instance_norm_gradient_is_the_same_for_one_sample_and_a_batch():
    import tensorflow as tf

    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(1, 6, 5, 3)).astype("float32"))
    other = tf.constant(rng.normal(size=(1, 6, 5, 3)).astype("float32"))
    weights = tf.constant(rng.normal(size=(1, 6, 5, 3)).astype("float32"))
    norm = InstanceNormalization()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        single = tf.reduce_sum(norm(x) * weights)
        batched = tf.reduce_sum(norm(tf.concat([x, other], 0))[:1] * weights)
    np.testing.assert_allclose(tape.gradient(single, x).numpy(), tape.gradient(batched, x).numpy(), atol=1e-5)


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_stride_one_conv_gradient_matches_numpy_transpose(dilation):
    # d/dx sum(conv(x) * g) is the correlation of g with the flipped kernel: checks the gradient
    # of the dilated convolution, whichever operator TensorFlow runs it with.
    import tensorflow as tf

    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(1, 9, 8, 2)).astype("float32"))
    layer = PaddedConv2D(3, 3, dilation_rate=dilation)
    upstream = rng.normal(size=(1, 9, 8, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * upstream)
    kernel = layer.kernel.numpy().astype("float64")
    flipped = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    expected = conv2d(upstream, flipped, dilation=dilation, pad=dilation)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dilated_conv_gradient_in_half_precision(dtype):
    # oneDNN has no float16 convolutions on the CPU, and TensorFlow's own kernels refuse the
    # gradient of a dilated one: the layer must pick an operator that has it, for each dtype.
    import tensorflow as tf

    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(1, 9, 8, 2)), dtype)
    layer = PaddedConv2D(3, 3, dilation_rate=2, dtype=f"mixed_{dtype}")
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.cast(layer(x), "float32"))
    kernel = layer.kernel.numpy().astype("float64")
    flipped = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    expected = conv2d(np.ones((1, 9, 8, 3)), flipped, dilation=2, pad=2)
    np.testing.assert_allclose(tf.cast(tape.gradient(loss, x), "float32").numpy(), expected, atol=0.05)


def test_batch_norm_moving_variance_is_pytorchs_unbiased_average():
    x = np.random.default_rng(7).normal(0.5, 2.0, (3, 4, 5, 6)).astype("float32")
    n = 3 * 4 * 5
    mean, biased = x.mean(axis=(0, 1, 2), dtype=np.float64), x.var(axis=(0, 1, 2), dtype=np.float64)
    for unbiased, variance in ((True, biased * n / (n - 1)), (False, biased)):
        norm = BatchNormalization(unbiased_variance=unbiased, momentum=0.9, epsilon=1e-5)
        out = norm(x, training=True).numpy()
        # Training normalises with the biased variance either way.
        np.testing.assert_allclose(out, (x - mean) / np.sqrt(biased + 1e-5), atol=1e-5)
        np.testing.assert_allclose(norm.moving_mean.numpy(), 0.1 * mean, rtol=1e-5)
        np.testing.assert_allclose(norm.moving_variance.numpy(), 0.9 + 0.1 * variance, rtol=1e-5)
        # Inference uses the moving statistics, untouched.
        before = norm.moving_variance.numpy().copy()
        norm(x, training=False)
        np.testing.assert_array_equal(norm.moving_variance.numpy(), before)
    clone = assert_config_round_trip(norm, x, training=False)  # moving statistics already moved: they are copied
    assert clone.unbiased_variance is False
    with pytest.raises(ValueError, match="renorm"):
        BatchNormalization(renorm=True)


def test_the_names_model_files_store_still_resolve():
    # Model files name each layer by its registered name, not its module: a layer may move between
    # modules, but its name must stay, or the shipped model no longer loads.
    import json
    import zipfile

    from dmfn_tf import model_io
    from dmfn_tf.models import generator  # noqa: F401  (registers the generator's layers)

    assert [keras.saving.get_registered_name(layer) for layer in (BatchNormalization, InstanceNormalization, PaddedConv2D)] == [
        "dmfn_tf>BatchNormalization", "dmfn_tf>InstanceNormalization", "dmfn_tf>PaddedConv2D"]
    with zipfile.ZipFile(model_io.SHIPPED_MODEL_DIR / model_io.SHIPPED_MODEL) as archive:
        config = json.loads(archive.read("config.json"))

    def registered_names(node):  # every registered name in the nested config
        if isinstance(node, dict):
            yield from ([node["registered_name"]] if str(node.get("registered_name")).startswith("dmfn_tf>") else [])
            yield from (name for value in node.values() for name in registered_names(value))
        elif isinstance(node, list):
            yield from (name for value in node for name in registered_names(value))

    stored = set(registered_names(config))
    assert {"dmfn_tf>InstanceNormalization", "dmfn_tf>PaddedConv2D", "dmfn_tf>DMFB"} <= stored
    assert all(keras.saving.get_registered_object(name) is not None for name in stored), stored
