"""The DMFN generator (docs/design.md §2): encoder, a stack of DMFBs, decoder."""

from __future__ import annotations

import keras
from keras import layers

from dmfn_tf.config import BLOCK_VARIANTS
from dmfn_tf.models.colour_conventions import (
    COLOUR_CONVENTIONS,
    KnownColourStatistics,
    PullPushPrefill,
    ResidualOverPrefill,
    RestoreColour,
    StandardiseKnown,
)
from dmfn_tf.models.dmfb_layers import DMFB
from dmfn_tf.errors import ConfigError
from dmfn_tf.models.layers import InstanceNormalization, PaddedConv2D


def _conv_in_relu(x, filters, kernel_size, strides, name):
    x = PaddedConv2D(filters, kernel_size, strides=strides, name=f"{name}_conv")(x)
    x = InstanceNormalization(name=f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _upsample(x, filters, name):
    # Transposed 4x4 stride-2 conv with PyTorch padding=1 is exactly Keras "same" (fixtures README).
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"{name}_deconv")(x)
    x = InstanceNormalization(name=f"{name}_deconv_norm")(x)
    x = layers.ReLU(name=f"{name}_deconv_relu")(x)
    return _conv_in_relu(x, filters, 3, 1, name)


def _core(x, nf: int, n_blocks: int, block: str, output_conv):
    """Encoder, DMFBs, decoder and `output_conv` (the paper's network, docs/design.md §2)."""
    x = PaddedConv2D(nf, 5, name="enc1_conv")(x)
    x = layers.ReLU(name="enc1_relu")(x)
    x = _conv_in_relu(x, 2 * nf, 3, 2, "enc2")
    x = _conv_in_relu(x, 2 * nf, 3, 1, "enc3")
    x = _conv_in_relu(x, 4 * nf, 3, 2, "enc4")
    for i in range(n_blocks):
        x = DMFB(4 * nf, variant=block, name=f"block_{i}")(x)
    x = _conv_in_relu(x, 4 * nf, 3, 1, "dec1")
    x = _upsample(x, 2 * nf, "up1")
    x = _upsample(x, nf, "up2")
    return output_conv(x)


def _zero_output_conv():
    # Linear and zero at the start: the untrained model returns the convention's colour estimate.
    return PaddedConv2D(3, 3, kernel_initializer="zeros", bias_initializer="zeros", name="out_conv")


def _with_colour_convention(inputs, convention: str, core):
    """The generator's output under a colour convention (dmfn_tf.models.colour_conventions)."""
    if convention == "plain":
        return core(inputs, PaddedConv2D(3, 3, activation="tanh", name="out_conv"))
    if convention == "standardise":
        statistics = KnownColourStatistics(name="known_colour_statistics")(inputs)
        z = core(StandardiseKnown(name="standardise_known")([inputs, statistics]), _zero_output_conv())
        return RestoreColour(name="restore_colour")([z, statistics])
    prefilled = PullPushPrefill(name="pull_push_prefill")(inputs)
    return ResidualOverPrefill(name="residual_over_prefill")([core(prefilled, _zero_output_conv()), prefilled])


def build_generator(
    nf: int = 64,
    n_blocks: int = 8,
    block: str = "paper",
    name: str = "dmfn_generator",
    colour_convention: str = "plain",
) -> keras.Model:
    """Builds the DMFN generator as a functional, fully convolutional `keras.Model`.

    Input: `[B, H, W, 4]`, the masked image and the mask, with H and W multiples of 4. Output: the
    raw `[B, H, W, 3]` tanh image. How images and masks become the input and the output becomes
    the result users see is `dmfn_tf.inpaint.contract` (`generator_input`, `composite`, `inpaint_uint8`).

    Layer names (`enc1`..`enc4`, `block_{i}`, `dec1`, `up1`, `up2`, `out`) are what the conversion of
    the authors' checkpoints maps to (`dmfn_tf.convert.official_mapping`).

    Args:
        nf: base width; the blocks work at 4 * nf channels.
        n_blocks: number of DMFBs.
        block: "paper" (docs/design.md §2a, default) or "official" (docs/design.md §2b, the published checkpoints).
        name: the model's name.
        colour_convention: "plain" (the paper's, default), "standardise" or "prefill": how the model
            carries each image's absolute colour (`dmfn_tf.models.colour_conventions`, docs/design.md §2c).

    Example:

    ```python
    generator = build_generator(nf=8, n_blocks=2)
    generator(keras.ops.zeros((1, 64, 96, 4))).shape
    # -> (1, 64, 96, 3)
    ```

    Reference:
        Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609, Fig. 1.
    """
    if block not in BLOCK_VARIANTS:
        raise ConfigError(f"unknown block variant {block!r}; expected one of {BLOCK_VARIANTS}")
    if not isinstance(nf, int) or nf <= 0:
        raise ConfigError(f"nf must be a positive integer, got {nf!r}")
    if not isinstance(n_blocks, int) or n_blocks < 0:
        raise ConfigError(f"n_blocks must be a non-negative integer, got {n_blocks!r}")
    if colour_convention not in COLOUR_CONVENTIONS:
        raise ConfigError(f"unknown colour convention {colour_convention!r}; expected one of {COLOUR_CONVENTIONS}")

    inputs = keras.Input(shape=(None, None, 4), name="masked_image_and_mask")

    def core(x, output_conv):
        return _core(x, nf, n_blocks, block, output_conv)

    outputs = _with_colour_convention(inputs, colour_convention, core)
    return keras.Model(inputs, outputs, name=name)

