"""The global + local discriminator (docs/design.md §3)."""

from __future__ import annotations

import keras
from keras import layers

from dmfn_tf.errors import ConfigError
from dmfn_tf.models.layers import BatchNormalization, PaddedConv2D

GLOBAL_STAGES = 6
LOCAL_STAGES = 5
# Both branches end at a 4x4 map: 256 / 2**6 and 128 / 2**5.
MIN_IMAGE_SIZE_MULTIPLE = 2**GLOBAL_STAGES


def _stage_widths(nf: int, n_stages: int) -> list[int]:
    return [nf * m for m in (1, 2, 4, 8, 8, 8)[:n_stages]]


def _maybe_spectral(layer, spectral_norm: bool):
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral_norm else layer


def _branch(x, nf, n_stages, prefix, spectral_norm, sync_batchnorm, unbiased_variance):
    """conv 5x5 s2 -> BatchNorm -> LeakyReLU(0.2) per stage; returns every stage's activation."""
    features = []
    for i, width in enumerate(_stage_widths(nf, n_stages)):
        conv = PaddedConv2D(
            width,
            5,
            strides=2,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
            bias_initializer="zeros",
            name=f"{prefix}{i}_conv",
        )
        x = _maybe_spectral(conv, spectral_norm)(x)
        # PyTorch BatchNorm2d defaults: eps 1e-5, running average momentum 0.1 (Keras 0.9).
        x = BatchNormalization(
            unbiased_variance=unbiased_variance,
            epsilon=1e-5,
            momentum=0.9,
            gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
            synchronized=sync_batchnorm,
            name=f"{prefix}{i}_norm",
        )(x)
        x = layers.LeakyReLU(0.2, name=f"{prefix}{i}_lrelu")(x)
        features.append(x)
    return features


def _dense(units, name, spectral_norm):
    # N(0, 0.02), unlike the authors' Linear layers (PyTorch's default uniform: `model.init: reference`).
    dense = layers.Dense(units, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02), name=name)
    return _maybe_spectral(dense, spectral_norm)


def build_discriminator(
    nf: int = 64,
    image_size: int = 256,
    spectral_norm: bool = False,
    sync_batchnorm: bool = False,
    unbiased_variance: bool = True,
    name: str = "dmfn_discriminator",
) -> keras.Model:
    """Builds the global + local discriminator.

    Inputs: `[local_crop, image]`, RGB in [-1, 1]; the local crop (the hole's bounding box) has side
    `image_size // 2`, the image side `image_size`. Outputs: `(logit, local_features)` with `logit`
    of shape `[B, 1]` and `local_features` the five post-activation maps of the local branch, used
    by the discriminator feature-matching loss.

    Args:
        nf: base width (channels nf, 2nf, 4nf, 8nf, 8nf(, 8nf)).
        image_size: side of the square training images; a multiple of 64 so that both branches end
            on a 4x4 map. The Dense layers' input sizes follow from it.
        spectral_norm: wrap every conv and dense layer in `keras.layers.SpectralNormalization`.
        sync_batchnorm: synchronise BatchNorm statistics across replicas under `tf.distribute`.
        unbiased_variance: BatchNorm's moving variance averages the unbiased batch variance, as
            PyTorch's does (`dmfn_tf.models.layers.BatchNormalization`); False for Keras' biased one.
        name: the model's name.

    Example:

    ```python
    d = build_discriminator(nf=8, image_size=64)
    logit, features = d([keras.ops.zeros((2, 32, 32, 3)), keras.ops.zeros((2, 64, 64, 3))])
    logit.shape, len(features)
    # -> ((2, 1), 5)
    ```

    Reference:
        Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609, Section 3.3. Conv kernels
        N(0, 0.02), zero biases and BatchNorm gamma N(1, 0.02) as in the authors' code; the Dense
        kernels N(0, 0.02) are not theirs (their Linear layers keep PyTorch's default uniform
        initialisation, which `dmfn_tf.models.initializers` applies for `model.init: reference`).
    """
    if not isinstance(nf, int) or nf <= 0:
        raise ConfigError(f"discriminator nf must be a positive integer, got {nf!r}")
    if not isinstance(image_size, int) or image_size <= 0 or image_size % MIN_IMAGE_SIZE_MULTIPLE:
        raise ConfigError(
            f"discriminator image_size must be a positive multiple of {MIN_IMAGE_SIZE_MULTIPLE}, got {image_size!r}"
        )
    local_crop = keras.Input(shape=(image_size // 2, image_size // 2, 3), name="local_crop")
    image = keras.Input(shape=(image_size, image_size, 3), name="image")

    local_features = _branch(local_crop, nf, LOCAL_STAGES, "local", spectral_norm, sync_batchnorm, unbiased_variance)
    global_features = _branch(image, nf, GLOBAL_STAGES, "global", spectral_norm, sync_batchnorm, unbiased_variance)

    local_vector = _dense(512, "local_dense", spectral_norm)(layers.Flatten(name="local_flatten")(local_features[-1]))
    global_vector = _dense(512, "global_dense", spectral_norm)(layers.Flatten(name="global_flatten")(global_features[-1]))
    joint = layers.Concatenate(name="joint")([local_vector, global_vector])
    joint = layers.LeakyReLU(0.2, name="joint_lrelu")(joint)
    logit = _dense(1, "logit", spectral_norm)(joint)
    return keras.Model([local_crop, image], (logit, local_features), name=name)
