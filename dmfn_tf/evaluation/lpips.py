"""LPIPS (Zhang et al., 2018), version 0.1 with linear layers and spatial averaging, in Keras.

`d(x0, x1) = sum_l mean_{h,w} w_l . (n(F_l(x0)) - n(F_l(x1)))^2`, where `F_l` are five activations
of an ImageNet-trained backbone, `n` unit-normalises each pixel's feature vector over the channels
(`f / (||f||_2 + 1e-10)`) and `w_l` is a learned non-negative 1x1 linear layer without bias.

Inputs are RGB in [-1, 1], NHWC. Before the backbone, the LPIPS scaling layer maps them with shift
(-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450): exactly torchvision's ImageNet
normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225) written for [-1, 1] inputs.

Backbones (torchvision layouts; weights from `lpips_weights`):
- AlexNet: conv 11x11 stride 4 pad 2 (64) - relu1 - maxpool 3x3/2 - conv 5x5 pad 2 (192) - relu2 -
  maxpool 3x3/2 - conv 3x3 (384) - relu3 - conv 3x3 (256) - relu4 - conv 3x3 (256) - relu5.
  Taps relu1..relu5. Pools have no padding, so images need at least 31 pixels per side.
- VGG16: the 13 3x3 convolutions with 2x2 max pools between the five blocks. Taps relu1_2, relu2_2,
  relu3_3, relu4_3, relu5_3 (Keras names `block1_conv2`, ..., `block5_conv3`). At least 16 pixels.

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
from dmfn_tf.inpainting import to_model_range
from dmfn_tf.evaluation.lpips_weights import (
    ALEXNET_CONVS,
    BACKBONE_SCOPES,
    BACKBONES,
    TAP_CHANNELS,
    VGG16_CONVS,
    load_lpips_checkpoint,
)

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORMALIZE_EPSILON = 1e-10

# VGG16 blocks as numbers of convolutions; a 2x2 max pool precedes every block but the first.
VGG16_BLOCK_SIZES = (2, 2, 3, 3, 3)
VGG16_LPIPS_TAPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
VGG16_CONV_NAMES = tuple(
    f"block{block}_conv{position}" for block, size in enumerate(VGG16_BLOCK_SIZES, 1) for position in range(1, size + 1)
)
ALEXNET_LPIPS_TAPS = ("relu1", "relu2", "relu3", "relu4", "relu5")
# Smallest image side for which every pooling stage has a non-empty output.
MIN_IMAGE_SIZE = {"alex": 31, "vgg": 16}


class LPIPSInputError(UserError, ValueError):
    """Images given to LPIPS have the wrong shape, range or size."""


@keras.saving.register_keras_serializable(package="dmfn_tf")
class LPIPSScaling(layers.Layer):
    """The LPIPS input scaling: `(x - shift) / scale` per RGB channel, for inputs in [-1, 1].

    Args:
        **kwargs: standard layer arguments.
    """

    def call(self, images):
        shift = ops.convert_to_tensor(LPIPS_SHIFT, dtype=images.dtype)
        scale = ops.convert_to_tensor(LPIPS_SCALE, dtype=images.dtype)
        return (images - shift) / scale

    def compute_output_shape(self, input_shape):
        return input_shape


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


def _check_net(net: str) -> str:
    if net not in BACKBONES:
        raise LPIPSInputError(f"unknown LPIPS network {net!r}; expected one of {BACKBONES}")
    return net


def _conv_weights(checkpoint: dict, net: str, index: int) -> list:
    conv = checkpoint[BACKBONE_SCOPES[net]][f"Conv_{index}"]
    return [np.asarray(conv["kernel"], np.float32), np.asarray(conv["bias"], np.float32)]


def _alexnet_taps(images, checkpoint: dict | None) -> dict:
    taps = {}
    x = images
    for index, (kernel_size, filters) in enumerate(ALEXNET_CONVS):
        if index in (1, 2):  # torchvision AlexNet pools after relu1 and relu2 only
            x = layers.MaxPooling2D(pool_size=3, strides=2, padding="valid", name=f"pool{index}")(x)
        if index == 0:
            # Stride 4 with 2 pixels of padding per side: Keras "same" would pad asymmetrically.
            x = layers.ZeroPadding2D(2, name="conv1_pad")(x)
            conv = layers.Conv2D(filters, kernel_size, strides=4, padding="valid", activation="relu", name="relu1")
        else:
            conv = layers.Conv2D(filters, kernel_size, padding="same", activation="relu", name=f"relu{index + 1}")
        x = conv(x)
        if checkpoint is not None:
            conv.set_weights(_conv_weights(checkpoint, "alex", index))
        taps[conv.name] = x
    return taps


def _vgg16_taps(images, checkpoint: dict | None, deepest_tap: str) -> dict:
    taps = {}
    x = images
    conv_index = 0
    for block, block_size in enumerate(VGG16_BLOCK_SIZES, start=1):
        if block > 1:
            x = layers.MaxPooling2D(pool_size=2, strides=2, name=f"block{block - 1}_pool")(x)
        for position in range(1, block_size + 1):
            filters = VGG16_CONVS[conv_index][1]
            conv = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{position}")
            x = conv(x)
            if checkpoint is not None:
                conv.set_weights(_conv_weights(checkpoint, "vgg", conv_index))
            taps[conv.name] = x
            conv_index += 1
            if conv.name == deepest_tap:
                return taps
    return taps


def build_lpips_feature_extractor(
    net: str = "alex",
    checkpoint: dict | None = None,
    taps: tuple[str, ...] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a frozen LPIPS backbone that maps RGB images in [-1, 1] to a list of activations.

    Args:
        net: "alex" or "vgg".
        checkpoint: nested dict from `load_lpips_checkpoint(net)`; `None` leaves random weights
            (tests of shapes only).
        taps: names of the activations to return, in order. Default: the LPIPS taps
            (`relu1`..`relu5` for AlexNet; `block1_conv2`, `block2_conv2`, `block3_conv3`,
            `block4_conv3`, `block5_conv3` for VGG16). Any conv layer name of the backbone is allowed
            (e.g. VGG16's `block4_conv1`); the model stops at the deepest one.
        name: model name (default `lpips_<net>_features`).

    Returns:
        A `keras.Model` with input (B, H, W, 3) and a list of (B, h, w, C) outputs; `trainable` is False.
    """
    net = _check_net(net)
    default_taps = ALEXNET_LPIPS_TAPS if net == "alex" else VGG16_LPIPS_TAPS
    taps = tuple(taps) if taps is not None else default_taps
    if not taps:
        raise LPIPSInputError("at least one activation must be tapped")
    known = ALEXNET_LPIPS_TAPS if net == "alex" else VGG16_CONV_NAMES
    unknown = [tap for tap in taps if tap not in known]
    if unknown:
        raise LPIPSInputError(f"unknown {net} activation(s) {unknown}; available: {list(known)}")
    images = keras.Input(shape=(None, None, 3), name="images")
    scaled = LPIPSScaling(name="lpips_scaling")(images)
    if net == "alex":
        available = _alexnet_taps(scaled, checkpoint)
    else:
        available = _vgg16_taps(scaled, checkpoint, deepest_tap=max(taps, key=VGG16_CONV_NAMES.index))
    model = keras.Model(images, [available[tap] for tap in taps], name=name or f"lpips_{net}_features")
    model.trainable = False
    return model


def build_vgg16_feature_extractor(
    taps: tuple[str, ...] = VGG16_LPIPS_TAPS,
    source: str | os.PathLike | None = None,
    name: str = "vgg16_features",
) -> keras.Model:
    """Builds a frozen ImageNet-trained VGG16 from the LPIPS checkpoint, for RGB inputs in [-1, 1].

    LPIPS v0.1 ("lin") keeps its backbone fixed, so these are torchvision's ImageNet VGG16 weights,
    available offline once cached: a usable perceptual network where Keras' download is not.
    The torchvision input normalisation is built in (`LPIPSScaling`).

    Args:
        taps: conv layer names whose post-ReLU activations to return, e.g. `("block1_conv1",
            "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")` for relu1_1..relu5_1.
        source: optional local copy of the weights (see `lpips_weights.lpips_weight_file`).
        name: model name.

    Returns:
        A frozen `keras.Model` from (B, H, W, 3) in [-1, 1] to the list of tapped activations.

    Example:

    ```python
    vgg = build_vgg16_feature_extractor(("block1_conv1", "block2_conv1", "block3_conv1"))
    relu1_1, relu2_1, relu3_1 = vgg(images)
    ```
    """
    return build_lpips_feature_extractor("vgg", load_lpips_checkpoint("vgg", source), taps=taps, name=name)


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
    net = _check_net(net)
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
        self.net = _check_net(net)
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
