"""The initialisation of the authors' code (`model.init: reference`, docs/design.md §6).

The authors apply one function to every module of the generator and the discriminator: Conv2d
weights N(0, 0.02) with zero bias, BatchNorm weight (gamma) N(1, 0.02) with zero bias (beta). Every
other layer keeps PyTorch's default: ConvTranspose2d and Linear weights and biases uniform in
±1/sqrt(fan_in) (`kaiming_uniform_(a=sqrt(5))`), where PyTorch's fan_in of a transposed conv is
`out_channels * kh * kw`. Checked against the initial state of the training-step fixture
(`shared/fixtures/train_step_reference.npz`).

`model.init: keras` keeps what the builders create: Keras' Glorot-uniform kernels and zero biases
in the generator; N(0, 0.02) conv and Dense kernels and N(1, 0.02) BatchNorm gamma in the
discriminator.
"""

from __future__ import annotations

import numpy as np
from keras import layers

from dmfn_tf.config import MODEL_INITS

CONV_STDDEV = 0.02


def _layers(model):
    """Every layer inside `model`, nested ones (DMFB sub-convs, spectral-norm wrappers) included."""
    return model._flatten_layers(include_self=False, recursive=True)


def _torch_default_uniform(rng, shape, fan_in: int) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape)


def apply_reference_initialization(model, seed: int = 0) -> None:
    """Re-initialises `model`'s weights in place as the authors' code does (see the module docstring).

    Args:
        model: a generator or discriminator from `build_generator` / `build_discriminator`.
        seed: seed of the NumPy generator the values are drawn from.

    Example:

    ```python
    discriminator = build_discriminator(nf=8, image_size=64)
    apply_reference_initialization(discriminator, seed=0)
    float(abs(discriminator.get_layer("logit").kernel.numpy()).max()) <= 1 / 1024**0.5
    # -> True
    ```
    """
    rng = np.random.default_rng(seed)

    def assign(variable, values):
        variable.assign(np.asarray(values, dtype=variable.dtype))

    for layer in _layers(model):
        # Conv2DTranspose is not a Conv2D subclass in Keras 3, so the order of these tests is free.
        if isinstance(layer, layers.Conv2DTranspose):
            kh, kw, out_channels, _ = layer.kernel.shape
            fan_in = kh * kw * out_channels
            assign(layer.kernel, _torch_default_uniform(rng, layer.kernel.shape, fan_in))
            assign(layer.bias, _torch_default_uniform(rng, layer.bias.shape, fan_in))
        elif isinstance(layer, layers.Conv2D):
            assign(layer.kernel, rng.normal(0.0, CONV_STDDEV, layer.kernel.shape))
            if layer.use_bias:
                assign(layer.bias, np.zeros(layer.bias.shape))
        elif isinstance(layer, layers.BatchNormalization):
            assign(layer.gamma, rng.normal(1.0, CONV_STDDEV, layer.gamma.shape))
            assign(layer.beta, np.zeros(layer.beta.shape))
        elif isinstance(layer, layers.Dense):
            fan_in = layer.kernel.shape[0]
            assign(layer.kernel, _torch_default_uniform(rng, layer.kernel.shape, fan_in))
            assign(layer.bias, _torch_default_uniform(rng, layer.bias.shape, fan_in))


def initialize(model, mode: str, seed: int = 0) -> None:
    """Applies the initialisation `mode` of `model.init`: "reference" re-initialises, "keras" keeps the builders'.

    Args:
        model: a generator or discriminator.
        mode: one of `dmfn_tf.config.MODEL_INITS`.
        seed: seed of the reference initialisation.
    """
    if mode not in MODEL_INITS:
        raise ValueError(f"unknown initialisation {mode!r}; expected one of {MODEL_INITS}")
    if mode == "reference":
        apply_reference_initialization(model, seed)
