"""Frozen ImageNet backbones in Keras: the LPIPS AlexNet and VGG16 (weights from `lpips_weights`).

They serve twice: as the LPIPS metric's feature extractors (`dmfn_tf.evaluation.lpips`) and, the
VGG16, as the offline perceptual network of the training losses (`perceptual`,
`network: lpips_vgg16`). Inputs are RGB in [-1, 1], NHWC. Before the backbone, the LPIPS scaling
layer maps them with shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450): exactly
torchvision's ImageNet normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225) written for
[-1, 1] inputs.

Layouts (torchvision's):
- AlexNet: conv 11x11 stride 4 pad 2 (64) - relu1 - maxpool 3x3/2 - conv 5x5 pad 2 (192) - relu2 -
  maxpool 3x3/2 - conv 3x3 (384) - relu3 - conv 3x3 (256) - relu4 - conv 3x3 (256) - relu5.
  Taps relu1..relu5. Pools have no padding, so images need at least 31 pixels per side.
- VGG16: the 13 3x3 convolutions with 2x2 max pools between the five blocks. Taps relu1_2, relu2_2,
  relu3_3, relu4_3, relu5_3 (Keras names `block1_conv2`, ..., `block5_conv3`). At least 16 pixels.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers, ops

from dmfn_tf.errors import UserError
from dmfn_tf.models.lpips_weights import (
    ALEXNET_CONVS,
    BACKBONE_SCOPES,
    BACKBONES,
    VGG16_CONVS,
    load_lpips_checkpoint,
)

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

# VGG16 blocks as numbers of convolutions; a 2x2 max pool precedes every block but the first.
VGG16_BLOCK_SIZES = (2, 2, 3, 3, 3)
VGG16_LPIPS_TAPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
VGG16_CONV_NAMES = tuple(
    f"block{block}_conv{position}" for block, size in enumerate(VGG16_BLOCK_SIZES, 1) for position in range(1, size + 1)
)
ALEXNET_LPIPS_TAPS = ("relu1", "relu2", "relu3", "relu4", "relu5")


class BackboneError(UserError, ValueError):
    """An unknown backbone or activation name."""


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


def check_net(net: str) -> str:
    if net not in BACKBONES:
        raise BackboneError(f"unknown LPIPS network {net!r}; expected one of {BACKBONES}")
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
    net = check_net(net)
    default_taps = ALEXNET_LPIPS_TAPS if net == "alex" else VGG16_LPIPS_TAPS
    taps = tuple(taps) if taps is not None else default_taps
    if not taps:
        raise BackboneError("at least one activation must be tapped")
    known = ALEXNET_LPIPS_TAPS if net == "alex" else VGG16_CONV_NAMES
    unknown = [tap for tap in taps if tap not in known]
    if unknown:
        raise BackboneError(f"unknown {net} activation(s) {unknown}; available: {list(known)}")
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
