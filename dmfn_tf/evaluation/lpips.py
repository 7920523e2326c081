"""LPIPS (Zhang et al., 2018), version 0.1 with linear layers and spatial averaging, in Keras.

`d(x0, x1) = sum_l mean_{h,w} w_l . (n(F_l(x0)) - n(F_l(x1)))^2`, where `F_l` are five activations
of an ImageNet-trained backbone, `n` unit-normalises each pixel's feature vector over the channels
(`f / (||f||_2 + 1e-10)`) and `w_l` is a learned non-negative 1x1 linear layer without bias.

Inputs are RGB in [-1, 1], NHWC. The backbones (AlexNet, VGG16, with the LPIPS input scaling) and
their weights are model parts: `dmfn_tf.models.backbones` and `dmfn_tf.models.lpips_weights`.

Example:

```python
metric = LPIPS("alex")
distances = metric.from_uint8(images_a, images_b)  # (N,) float64, 0 for identical images
```
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers, ops

from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.contract import to_model_range
from dmfn_tf.models.backbones import build_lpips_feature_extractor, check_net
from dmfn_tf.models.lpips_weights import TAP_CHANNELS, load_lpips_checkpoint

# Smallest image side for which every pooling stage has a non-empty output.
MIN_IMAGE_SIZE = {"alex": 31, "vgg": 16}
NORMALIZE_EPSILON = 1e-10


class LPIPSInputError(UserError, ValueError):
    """Images given to LPIPS have the wrong shape, range or size."""


@keras.saving.register_keras_serializable(package="dmfn_tf")
class LPIPSTapDistance(layers.Layer):
    """LPIPS distance contributed by one tapped activation.

    Unit-normalises both feature maps over channels (`f / (||f|| + 1e-10)`), squares their
    difference, applies the 1x1 linear layer (no bias) and averages over height and width.

    Args:
        channels: number of channels of the tapped activation.
        **kwargs: standard layer arguments.

    Call arguments:
        features0, features1: (B, H, W, channels) activations of the two images.

    Returns:
        (B,) distances.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.linear = self.add_weight(name="linear", shape=(channels, 1), initializer="ones", trainable=False)

    def _unit_normalize(self, features):
        norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
        return features / (norm + NORMALIZE_EPSILON)

    def call(self, features0, features1):
        squared_difference = ops.square(self._unit_normalize(features0) - self._unit_normalize(features1))
        weighted = ops.matmul(squared_difference, self.linear)
        return ops.mean(weighted, axis=(1, 2, 3))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def build_lpips_model(net: str = "alex", checkpoint: dict | None = None, source: str | os.PathLike | None = None):
    """Builds the LPIPS distance as a differentiable, frozen Keras model.

    Args:
        net: "alex" (the LPIPS default) or "vgg".
        checkpoint: nested dict of weights; default: `load_lpips_checkpoint(net, source)`.
        source: optional local copy of the weights, used when `checkpoint` is None.

    Returns:
        A `keras.Model` taking `[images0, images1]`, each (B, H, W, 3) RGB in [-1, 1], and returning
        the (B,) distances.
    """
    net = check_net(net)
    if checkpoint is None:
        checkpoint = load_lpips_checkpoint(net, source)
    extractor = build_lpips_feature_extractor(net, checkpoint)
    images0 = keras.Input(shape=(None, None, 3), name="images0")
    images1 = keras.Input(shape=(None, None, 3), name="images1")
    features0 = extractor(images0)
    features1 = extractor(images1)
    per_tap = []
    for index, channels in enumerate(TAP_CHANNELS[net]):
        tap_distance = LPIPSTapDistance(channels, name=f"tap{index}_distance")
        per_tap.append(tap_distance(features0[index], features1[index]))
        linear_kernel = checkpoint[f"NetLinLayer_{index}"]["Conv_0"]["kernel"]
        tap_distance.set_weights([np.asarray(linear_kernel, np.float32).reshape(channels, 1)])
    distance = layers.Add(name="lpips")(per_tap)
    model = keras.Model([images0, images1], distance, name=f"lpips_{net}")
    model.trainable = False
    return model


class LPIPS:
    """LPIPS distances between batches of images, computed in batches on NumPy arrays.

    On CPU the distances match the reference implementation to about 1e-7. On NVIDIA GPUs since
    Ampere, TensorFlow runs float32 convolutions in TF32 by default, which can move them in the
    fourth decimal; call `tf.config.experimental.enable_tensor_float_32_execution(False)` first
    for reference-exact figures.

    Args:
        net: "alex" (default, as in the paper's Table 1 protocol) or "vgg".
        source: optional local copy of the weights (see `lpips_weights.lpips_weight_file`);
            by default they are fetched once and cached.
        batch_size: images per forward pass.

    Example:

    ```python
    metric = LPIPS("alex")
    metric(images_a, images_b)            # float inputs in [-1, 1], (N, H, W, 3)
    metric.from_uint8(pixels_a, pixels_b)  # uint8 inputs in [0, 255], scaled as x / 127.5 - 1
    ```
    """

    def __init__(self, net: str = "alex", source: str | os.PathLike | None = None, batch_size: int = 16):
        self.net = check_net(net)
        self.batch_size = batch_size
        self.model = build_lpips_model(net, source=source)

    def _check_pair(self, images0: np.ndarray, images1: np.ndarray) -> None:
        if images0.shape != images1.shape or images0.ndim != 4 or images0.shape[-1] != 3:
            raise LPIPSInputError(
                f"LPIPS needs two (N, H, W, 3) RGB batches of the same shape; got {images0.shape} and {images1.shape}"
            )
        if min(images0.shape[1:3]) < MIN_IMAGE_SIZE[self.net]:
            raise LPIPSInputError(
                f"LPIPS-{self.net} needs images of at least {MIN_IMAGE_SIZE[self.net]} pixels per side; "
                f"got {images0.shape[1]}x{images0.shape[2]}"
            )

    def __call__(self, images0: np.ndarray, images1: np.ndarray) -> np.ndarray:
        """Returns the (N,) float64 distances between two batches of RGB images in [-1, 1]."""
        images0 = np.asarray(images0, np.float32)
        images1 = np.asarray(images1, np.float32)
        self._check_pair(images0, images1)
        if np.abs(images0).max(initial=0) > 1.001 or np.abs(images1).max(initial=0) > 1.001:
            raise LPIPSInputError("LPIPS expects float images in [-1, 1]; use from_uint8 for 0-255 pixels")
        distances = [
            # An eager call: predict_on_batch would retrace for every new batch shape.
            keras.ops.convert_to_numpy(
                self.model([images0[start:start + self.batch_size], images1[start:start + self.batch_size]])
            )
            for start in range(0, len(images0), self.batch_size)
        ]
        return np.concatenate(distances).astype(np.float64) if distances else np.zeros((0,), np.float64)

    def from_uint8(self, images0: np.ndarray, images1: np.ndarray) -> np.ndarray:
        """Returns the (N,) distances between two batches of uint8 RGB images, scaled as `x / 127.5 - 1`."""
        for images in (images0, images1):
            if np.asarray(images).dtype != np.uint8:
                raise LPIPSInputError(f"from_uint8 expects uint8 pixels, got {np.asarray(images).dtype}")
        return self(np.asarray(to_model_range(images0)), np.asarray(to_model_range(images1)))
