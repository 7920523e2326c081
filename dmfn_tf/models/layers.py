"""Basic layers shared by the generator and the discriminator.

- `InstanceNormalization`: per sample and channel over H, W, biased variance, no learned scale or
  offset (docs/design.md §2). Equal to `keras.layers.GroupNormalization(groups=-1, center=False,
  scale=False, epsilon=1e-5)`, written out so that its epsilon cannot silently fall back to 1e-3.
- `BatchNormalization`: Keras' layer whose moving variance can average the unbiased batch
  variance, as PyTorch's `BatchNorm2d` does (the discriminator's, docs/design.md §6).
- `PaddedConv2D`: symmetric zero padding of `dilation * (k - 1) / 2` followed by a VALID
  convolution, as the reference code does. Keras `padding="same"` with stride 2 pads 0 before and 1
  after, which shifts every feature map by half a pixel and breaks weight compatibility.

Both lower to the fastest TensorFlow operators that compute the same thing (measured in
`docs/performance.md`): a batch of one is normalised by a single fused batch-norm kernel, and
stride-1 convolutions pad inside the convolution, with dilations run natively by oneDNN instead
of through SpaceToBatch/BatchToSpace copies.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf
from keras import ops

# dtypes that FusedBatchNormV3 accepts (it keeps its statistics in float32 for all of them).
_FUSED_NORM_DTYPES = ("float32", "bfloat16", "float16")
# dtypes of oneDNN's CPU convolutions; float16 falls back to TensorFlow's own kernels.
_ONEDNN_CONV_DTYPES = ("float32", "bfloat16")


@functools.cache
def _native_dilated_conv() -> bool:
    """Whether this TensorFlow runs dilated convolutions natively, gradients included, on the CPU.

    oneDNN does, for float32 and bfloat16 (on by default on x86-64 Linux); TensorFlow's own CPU
    kernels run a dilated forward pass but refuse its gradient, so without oneDNN, and for
    float16, dilations go through SpaceToBatch.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return False


@keras.saving.register_keras_serializable(package="dmfn_tf")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation without affine parameters.

    `y = (x - mean_hw(x)) / sqrt(var_hw(x) + epsilon)`, statistics per sample and channel over the
    spatial axes of NHWC input, variance biased (divided by H*W).

    Args:
        epsilon: added to the variance; 1e-5 as in PyTorch's `InstanceNorm2d`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    norm = InstanceNormalization()
    norm(keras.random.normal((2, 8, 8, 4))).shape
    # -> (2, 8, 8, 4)
    ```

    Reference:
        Ulyanov et al., "Instance Normalization: The Missing Ingredient for Fast Stylization", 2016.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        if inputs.shape[0] == 1 and inputs.dtype.name in _FUSED_NORM_DTYPES:
            # With one sample, instance norm is batch norm over (N, H, W): one fused kernel (with the
            # ReLU after it, oneDNN fuses that too) instead of six passes over the map, and its
            # gradient. Larger batches would need transposes that cost more than they save.
            channels = inputs.shape[-1]
            outputs = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=tf.ones([channels], "float32"),
                offset=tf.zeros([channels], "float32"),
                mean=tf.zeros([0], "float32"),
                variance=tf.zeros([0], "float32"),
                epsilon=self.epsilon,
                is_training=True,
            )
            return outputs[0]
        # Statistics in float32 even under a bfloat16/float16 policy: variances underflow otherwise.
        x = ops.cast(inputs, "float32")
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        variance = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
        outputs = (x - mean) * ops.rsqrt(variance + self.epsilon)
        return ops.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dmfn_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose moving variance can follow PyTorch's rule.

    In training, both frameworks normalise with the biased batch variance (divided by the number
    `n` of values per channel), but PyTorch's running average takes the unbiased one,
    `n / (n - 1)` times larger (1.03 for the 4x4 maps of a batch of two). With
    `unbiased_variance=True` the moving variance is updated that way, so it holds the numbers a
    PyTorch model trained on the same batches would, and eval-mode outputs and converted
    checkpoints agree. Normalisation in training is unchanged. Under `synchronized=True`, `n` is
    counted over all replicas.

    Args:
        unbiased_variance: average the unbiased batch variance (PyTorch) instead of the biased
            one (Keras). Not combinable with `renorm` or masked inputs.
        **kwargs: any `keras.layers.BatchNormalization` argument.

    Example:

    ```python
    norm = BatchNormalization(momentum=0.0, epsilon=1e-5)
    _ = norm(keras.ops.convert_to_tensor([[0.0], [2.0]]), training=True)
    float(norm.moving_variance.numpy()[0])  # the unbiased variance of (0, 2); Keras' would be 1
    # -> 2.0
    ```
    """

    def __init__(self, unbiased_variance: bool = True, **kwargs):
        super().__init__(**kwargs)
        if unbiased_variance and self.renorm:
            raise ValueError("BatchNormalization: unbiased_variance does not support renorm")
        self.unbiased_variance = unbiased_variance

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self.unbiased_variance):
            return super().call(inputs, training=training, mask=mask)
        if mask is not None:
            raise ValueError("BatchNormalization: unbiased_variance does not support masked inputs")
        # As Keras' layer: statistics in float32 at least, whatever the input dtype.
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(x, None)
        count = self._values_per_channel(x)
        unbiased = variance * (count / ops.maximum(count - 1.0, 1.0))
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            ops.cast(self.moving_variance, x.dtype) * self.momentum + unbiased * (1.0 - self.momentum)
        )
        outputs = ops.batch_normalization(
            x=x,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=ops.cast(self.beta, x.dtype) if self.center else None,
            scale=ops.cast(self.gamma, x.dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def _values_per_channel(self, x):
        """`n`: the number of values each channel's batch statistics average, over all replicas when synchronised."""
        shape = ops.shape(x)
        count = ops.cast(functools.reduce(lambda a, b: a * b, [shape[axis] for axis in self._reduction_axes]), x.dtype)
        context = tf.distribute.get_replica_context()
        if self.synchronized and context is not None:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        return count

    def get_config(self):
        return {**super().get_config(), "unbiased_variance": self.unbiased_variance}


@keras.saving.register_keras_serializable(package="dmfn_tf")
class PaddedConv2D(keras.layers.Conv2D):
    """A `Conv2D` with explicit symmetric zero padding of `dilation_rate * (kernel_size - 1) // 2`.

    The output of a stride-1 convolution has the input's size; a stride-2 one halves even sizes,
    with the same alignment as PyTorch's `Conv2d(padding=(k - 1) // 2 * dilation)`.

    Args:
        filters: number of output channels.
        kernel_size: odd integer, the square kernel's side.
        strides: integer stride.
        dilation_rate: integer dilation.
        **kwargs: any other `keras.layers.Conv2D` argument except `padding`.

    Example:

    ```python
    conv = PaddedConv2D(8, 3, strides=2)
    conv(keras.random.normal((1, 16, 16, 4))).shape
    # -> (1, 8, 8, 8)
    ```
    """

    def __init__(self, filters, kernel_size, strides=1, dilation_rate=1, **kwargs):
        padding = kwargs.pop("padding", "valid")
        if padding != "valid":
            raise ValueError(f"PaddedConv2D pads explicitly; got padding={padding!r}")
        super().__init__(filters, kernel_size, strides=strides, dilation_rate=dilation_rate, padding="valid", **kwargs)
        if self.kernel_size[0] != self.kernel_size[1] or self.kernel_size[0] % 2 == 0:
            raise ValueError(f"PaddedConv2D needs an odd square kernel, got kernel_size={kernel_size!r}")
        self.pad = self.dilation_rate[0] * (self.kernel_size[0] - 1) // 2

    def convolution_op(self, inputs, kernel):
        if self.strides == (1, 1):
            # At stride 1, "SAME" pads an odd kernel by exactly `pad` on each side: the same numbers,
            # with the padding done inside the convolution rather than by a copy.
            if self.dilation_rate != (1, 1) and inputs.dtype.name in _ONEDNN_CONV_DTYPES and _native_dilated_conv():
                return tf.nn.conv2d(inputs, kernel, 1, "SAME", dilations=self.dilation_rate)
            return ops.conv(inputs, kernel, 1, "same", dilation_rate=self.dilation_rate)
        if self.pad:
            p = self.pad
            inputs = ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]])
        return super().convolution_op(inputs, kernel)

    def compute_output_shape(self, input_shape):
        padded = list(input_shape)
        for axis in (1, 2):
            if padded[axis] is not None:
                padded[axis] += 2 * self.pad
        return super().compute_output_shape(tuple(padded))

    def get_config(self):
        config = super().get_config()
        config.pop("padding")
        return config
