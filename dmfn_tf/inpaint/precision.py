"""Reduced-precision inference copies of a trained generator.

`bfloat16_generator` rebuilds a float32 generator under Keras' `mixed_bfloat16` policy with the
same weights: variables stay float32, convolutions run in bfloat16 (on CPUs with AVX512_BF16 or
AMX, oneDNN runs them at about twice the float32 rate), instance-norm statistics stay float32
(`InstanceNormalization` computes them so under any policy), and the final tanh convolution runs
in float32 so that the output is float32. On the 2-core AVX512_BF16 machine of
`docs/performance.md`, the copy runs a 256² forward pass 1.85x faster than float32. Its outputs
differ from float32's by 36-41 dB PSNR with random N(0, 0.02) weights (paper, official variant;
5 dB more on the composite) and by 50 dB on the authors' small fixture: check a trained model's
outputs before relying on it.

Training in mixed precision is a separate matter (a global policy set before the networks are
built; see `dmfn_tf.training.trainer`).
"""

from __future__ import annotations

import keras

from dmfn_tf.errors import ConfigError

REDUCED_PRECISION_POLICIES = ("mixed_bfloat16", "mixed_float16")


def reduced_precision_generator(generator: keras.Model, policy: str = "mixed_bfloat16", float32_layers: tuple[str, ...] | None = None) -> keras.Model:
    """A copy of `generator` that computes under `policy`, with the same (float32) weights.

    The copy has the same layers, names and weights; only each layer's dtype policy differs. The
    original model is left untouched, and so is the global dtype policy once this returns.

    Args:
        generator: a functional generator (`dmfn_tf.build_generator` or a loaded one).
        policy: "mixed_bfloat16" (CPUs with AVX512_BF16/AMX, TPUs, recent GPUs) or
            "mixed_float16" (GPUs).
        float32_layers: names of layers kept in float32; default: the output layer, so the
            result is float32 and its last rounding is not bfloat16's.

    Returns:
        A `keras.Model` with float32 inputs and outputs.

    Example:

    ```python
    from dmfn_tf import build_generator
    fast = reduced_precision_generator(build_generator(nf=8, n_blocks=1))
    fast(keras.ops.zeros((1, 32, 32, 4))).dtype
    # -> 'float32'
    ```
    """
    if policy not in REDUCED_PRECISION_POLICIES:
        raise ConfigError(f"unknown reduced-precision policy {policy!r}; expected one of {REDUCED_PRECISION_POLICIES}")
    if float32_layers is None:
        float32_layers = (generator.layers[-1].name,)

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in float32_layers else policy
        return layer.__class__.from_config(config)

    previous = keras.mixed_precision.dtype_policy()
    # Sub-layers that a layer creates in its constructor (a DMFB's convolutions) take the global
    # policy, not their parent's: set it for the duration of the clone.
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        copy = keras.models.clone_model(generator, clone_function=clone_layer)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    copy.set_weights(generator.get_weights())
    return copy


def bfloat16_generator(generator: keras.Model) -> keras.Model:
    """`reduced_precision_generator(generator, "mixed_bfloat16")`: the CPU inference fast path.

    Args:
        generator: a functional float32 generator.

    Example:

    ```python
    from dmfn_tf import build_generator
    bfloat16_generator(build_generator(nf=8, n_blocks=1)).get_layer("block_0").c1.compute_dtype
    # -> 'bfloat16'
    ```
    """
    return reduced_precision_generator(generator, "mixed_bfloat16")
