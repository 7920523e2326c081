"""The DMFN objectives (docs/design.md §5; paper Eq. 2–9), as plain TensorFlow functions.

Every image loss is computed on the composite `I_out = mask * G(x) + (1 - mask) * I_gt` against
`I_gt`; the caller builds the composite. Inputs are NHWC; everything is computed in float32.

Terms. The generator objective has six terms, named everywhere (here, the trainer's logs,
TensorBoard, README) as in the registry `GENERATOR_LOSS_TERMS`: `l1` (the paper's L_mae),
`self_guided` (L_self-guided), `vgg_fm` (L_fm_vgg), `dis_fm` (L_fm_dis), `adv_g` (L_adv, generator
side) and `align` (L_align). Each is registered with `@generator_loss_term(name, weight_key=...)`:
a function of the batch's `GeneratorLossInputs` and the `LossConfig` field that weighs it; the
trainer computes every registered term (`generator_loss_terms`) and `generator_total_loss` weighs
them into `g_total`. A new term is one function, one registration and its weight's `LossConfig`
field. `d_loss` is the discriminator's RaGAN loss.

Reductions. Each `<loss>_per_example(...)` returns a `[B]` vector: one value per image, each a
mean over all of that image's elements (pixels, channels, layers weighted as the equation says).
Because every image has the same number of elements, the batch mean of the per-example values equals
the mean over all elements of the batch. A training step under `tf.distribute` takes the per-example
values on each replica and divides the sum by the *global* batch size
(`tf.nn.compute_average_loss(per_example, global_batch_size=...)`), so that the replicas' gradients
add up to the gradient of the global mean.

The relativistic average GAN losses also contain a batch mean of the other side's logits. By default
that mean is over the logits passed in, i.e. the replica's local batch under `tf.distribute`; pass
`real_mean` / `fake_mean` computed over the global batch (e.g. with
`tf.distribute.get_replica_context().all_reduce("sum", tf.reduce_sum(logits)) / global_batch_size`)
to reproduce single-device training exactly.

Example:

```python
per_example = l1_loss_per_example(composite, target)
loss = tf.nn.compute_average_loss(per_example, global_batch_size=16)
```
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import tensorflow as tf

from dmfn_tf.config import GUIDANCE_MODES
from dmfn_tf.errors import ConfigError

# Channel counts of relu1_1 ... relu5_1 in VGG19.
VGG_LAYER_CHANNELS = (64, 128, 256, 512, 512)
# Added to every response before normalising it into a spatial distribution (reference code).
ALIGNMENT_EPSILON = 1e-7


def layer_weights(channels: Sequence[int]) -> list[float]:
    """Per-layer weights of the feature matching losses: `w_l = 1000 / C_l²`.

    Args:
        channels: channel count `C_l` of each feature layer.

    Returns:
        One float weight per layer. For VGG19 (`VGG_LAYER_CHANNELS`) these are
        0.244, 0.061, 0.0153, 0.0038, 0.0038.

    Reference: the weights of paper Eq. 5, 8 and 9, as the authors' code sets them.
    """
    return [1000.0 / float(c) ** 2 for c in channels]


def _float32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def _mean_per_example(x: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the first: `[B, ...]` -> `[B]`."""
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def _weights_or_default(features: Sequence[tf.Tensor], weights, what: str) -> list[float]:
    if weights is None:
        return layer_weights([int(f.shape[-1]) for f in features])
    weights = list(weights)
    if len(weights) != len(features):
        raise ValueError(f"{what}: {len(weights)} weights for {len(features)} feature layers")
    return weights


def _check_same_length(first: Sequence, second: Sequence, what: str) -> None:
    if len(first) != len(second):
        raise ValueError(f"{what}: {len(first)} ground-truth feature layers but {len(second)} output layers")


def _weighted_feature_l1_per_example(constant_features, features, weights, what) -> tf.Tensor:
    """`Σ_l w_l mean|stop_gradient(A_l) − B_l|` per example (shared by Eq. 8 and Eq. 9)."""
    _check_same_length(constant_features, features, what)
    if not features:
        raise ValueError(f"{what}: no feature layers given")
    weights = _weights_or_default(features, weights, what)
    total = 0.0
    for weight, constant, feature in zip(weights, constant_features, features):
        difference = tf.stop_gradient(_float32(constant)) - _float32(feature)
        total += weight * _mean_per_example(tf.abs(difference))
    return total


def l1_loss_per_example(output, target) -> tf.Tensor:
    """Reconstruction loss per image (term `l1`): `mean|I_out − I_gt|` over H, W and channels.

    Args:
        output: composite images `[B, H, W, 3]`.
        target: ground-truth images, same shape.

    Returns:
        `[B]` float32.

    Reference: `L_mae` of the paper's total objective (after Eq. 9).
    """
    return _mean_per_example(tf.abs(_float32(output) - _float32(target)))


def vgg_feature_matching_loss_per_example(features_gt, features_out, weights=None) -> tf.Tensor:
    """VGG feature matching per image (term `vgg_fm`): `Σ_l w_l mean|Ψ_l(I_gt) − Ψ_l(I_out)|`.

    The mean of layer l is over its H, W and C, i.e. the paper's `‖·‖₁ / N_Ψ`. The ground-truth
    features are constants (`stop_gradient`).

    Args:
        features_gt: list of `[B, H_l, W_l, C_l]` features of the ground truth (relu1_1 … relu5_1).
        features_out: the same layers for the composite.
        weights: one weight per layer; `None` uses `layer_weights` of the features' channel counts,
            which for VGG19 is `layer_weights(VGG_LAYER_CHANNELS)`.

    Returns:
        `[B]` float32.

    Reference: paper Eq. 8.
    """
    return _weighted_feature_l1_per_example(features_gt, features_out, weights, "vgg_feature_matching_loss")


def guidance_map(output, target, mode: str = "minmax") -> tf.Tensor:
    """Normalised error map that tells the self-guided loss where the output is wrong.

    `M_err = mean_c (I_out − I_gt)²` per pixel, then per image either
    `M = (M_err − min M_err) / (max M_err − min M_err)` (`"minmax"`, the paper) or
    `M = M_err / max M_err` (`"max"`, the reference code). The two agree whenever the minimum is 0,
    which holds for a composite with a non-empty hole, since the error outside the hole is exactly 0.

    The map is a constant: no gradient flows through it. When the denominator is 0 (identical
    images, e.g. an empty hole, or a flat error map in `"minmax"` mode) the map is 0, never NaN.

    Args:
        output: composite images `[B, H, W, 3]`.
        target: ground-truth images, same shape.
        mode: `"minmax"` or `"max"`.

    Returns:
        `[B, H, W, 1]` float32 in [0, 1].

    Reference: paper Eq. 2 and 3.
    """
    if mode not in GUIDANCE_MODES:
        raise ConfigError(f"guidance mode: unknown value {mode!r}; expected one of {GUIDANCE_MODES}")
    difference = tf.stop_gradient(_float32(output) - _float32(target))
    error = tf.reduce_mean(tf.square(difference), axis=-1, keepdims=True)
    largest = tf.reduce_max(error, axis=(1, 2, 3), keepdims=True)
    if mode == "minmax":
        smallest = tf.reduce_min(error, axis=(1, 2, 3), keepdims=True)
        return tf.math.divide_no_nan(error - smallest, largest - smallest)
    return tf.math.divide_no_nan(error, largest)


def self_guided_regression_loss_per_example(
    output, target, features_gt, features_out, weights=None, mode: str = "minmax"
) -> tf.Tensor:
    """Self-guided regression per image (term `self_guided`): `Σ_{l=1,2} w_l mean(M_l ⊙ |Ψ_l(I_gt) − Ψ_l(I_out)|)`.

    `M_1` is `guidance_map(output, target, mode)` at image resolution (for relu1_1), `M_2` its 2×2
    average pooling with stride 2 (for relu2_1). The mean is over all H·W·C elements of the layer,
    the one-channel map broadcast over channels. Guidance map and ground-truth features are
    constants, so the gradient reaches the output only through `Ψ_l(I_out)`.

    Args:
        output: composite images `[B, H, W, 3]`.
        target: ground-truth images, same shape.
        features_gt: ground-truth VGG features; the first two (relu1_1 `[B, H, W, C_1]` and relu2_1
            `[B, H/2, W/2, C_2]`) are used, so the full relu1_1 … relu5_1 list may be passed.
        features_out: the same layers for the composite.
        weights: weights of (at least) the first two layers; `None` uses `layer_weights` of their
            channel counts.
        mode: guidance normalisation, `"minmax"` (paper) or `"max"` (reference code).

    Returns:
        `[B]` float32.

    Reference: paper Eq. 5 (with Eq. 2 and 3).
    """
    if len(features_gt) < 2 or len(features_out) < 2:
        raise ValueError("self_guided_regression_loss needs the relu1_1 and relu2_1 features (two layers or more)")
    features_gt, features_out = list(features_gt)[:2], list(features_out)[:2]
    if weights is not None:
        weights = list(weights)[:2]
    weights = _weights_or_default(features_out, weights, "self_guided_regression_loss")
    image_size = tuple(tf.convert_to_tensor(output).shape[1:3])
    for level, feature in enumerate(features_out):
        expected = tuple(None if side is None else side // 2**level for side in image_size)
        if None not in expected and None not in feature.shape[1:3] and tuple(feature.shape[1:3]) != expected:
            raise ValueError(
                f"self_guided_regression_loss: feature layer {level + 1} is {tuple(feature.shape[1:3])}, "
                f"expected {expected} for {image_size} images (relu1_1 at full size, relu2_1 at half)"
            )
    full_resolution = guidance_map(output, target, mode)
    masks = (full_resolution, tf.nn.avg_pool2d(full_resolution, ksize=2, strides=2, padding="VALID"))
    total = 0.0
    for weight, mask, constant, feature in zip(weights, masks, features_gt, features_out):
        difference = tf.abs(tf.stop_gradient(_float32(constant)) - _float32(feature))
        total += weight * _mean_per_example(mask * difference)
    return total


def response_centers(responses) -> tf.Tensor:
    """Expected position of each response map, seen as a spatial probability distribution.

    `p = (R + ε) / Σ_{u,v}(R + ε)` per image and channel (ε = `ALIGNMENT_EPSILON`); coordinates
    normalised to [-1, 1): `2u/H − 1` for row u, `2v/W − 1` for column v; centre
    `(Σ p·u, Σ p·v)`. Responses must be non-negative (ReLU outputs).

    Args:
        responses: `[B, H, W, K]` feature maps.

    Returns:
        `[B, K, 2]` float32: row centre, then column centre.

    Reference: paper Eq. 6.
    """
    responses = _float32(responses) + ALIGNMENT_EPSILON
    height, width = tf.shape(responses)[1], tf.shape(responses)[2]
    rows = 2.0 * tf.range(height, dtype=tf.float32) / tf.cast(height, tf.float32) - 1.0
    columns = 2.0 * tf.range(width, dtype=tf.float32) / tf.cast(width, tf.float32) - 1.0
    total = tf.reduce_sum(responses, axis=(1, 2))
    # Marginals over the other axis, then the expectation along each axis: [B, K].
    row_center = tf.einsum("bhk,h->bk", tf.reduce_sum(responses, axis=2), rows) / total
    column_center = tf.einsum("bwk,w->bk", tf.reduce_sum(responses, axis=1), columns) / total
    return tf.stack([row_center, column_center], axis=-1)


def geometrical_alignment_loss_per_example(response_gt, response_out) -> tf.Tensor:
    """Geometrical alignment per image (term `align`): mean over channels k and both axes of `(c^k_out − c^k_gt)²`.

    Centres come from `response_centers`, with rows along the height and columns along the width
    (the reference code runs both coordinate grids along the width, which leaves vertical shifts
    unpenalised; this does not). The paper sums over k; the mean differs by the constant factor
    2K and keeps the term's scale independent of the layer width. The ground-truth responses are
    constants.

    Args:
        response_gt: relu4_1 responses of the ground truth, `[B, H, W, K]`, non-negative.
        response_out: relu4_1 responses of the composite, same shape.

    Returns:
        `[B]` float32.

    Reference: paper Eq. 6 and 7.
    """
    centers_gt = response_centers(tf.stop_gradient(_float32(response_gt)))
    centers_out = response_centers(response_out)
    return _mean_per_example(tf.square(centers_out - centers_gt))


def discriminator_feature_matching_loss_per_example(real_features, fake_features, weights=None) -> tf.Tensor:
    """Local-discriminator feature matching per image (term `dis_fm`): `Σ_l w_l mean|D_l(I_gt) − D_l(I_out)|`.

    Real features are constants. Default weights are `1000 / C_l²` with the channel counts read from
    the features (nf, 2nf, 4nf, 8nf, 8nf for the local branch).

    Args:
        real_features: the local branch's five feature maps for the ground-truth crop.
        fake_features: the same for the composite's crop.
        weights: one weight per layer; `None` uses `layer_weights` of the channel counts.

    Returns:
        `[B]` float32.

    Reference: paper Eq. 9.
    """
    return _weighted_feature_l1_per_example(
        real_features, fake_features, weights, "discriminator_feature_matching_loss"
    )


def _logits_per_example(logits) -> tf.Tensor:
    """`[B]` or `[B, 1]` logits (or `[B, ...]` patch logits, averaged) as a `[B]` vector."""
    return _mean_per_example(_float32(logits))


def _relativistic_terms(real_logits, fake_logits, real_mean, fake_mean):
    real = _logits_per_example(real_logits)
    fake = _logits_per_example(fake_logits)
    real_mean = tf.reduce_mean(real) if real_mean is None else _float32(real_mean)
    fake_mean = tf.reduce_mean(fake) if fake_mean is None else _float32(fake_mean)
    return real - fake_mean, fake - real_mean


def _bce(logits, label: float) -> tf.Tensor:
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits)


def ragan_discriminator_loss_per_example(real_logits, fake_logits, real_mean=None, fake_mean=None) -> tf.Tensor:
    """Relativistic average GAN discriminator loss per image pair (`d_loss`).

    `½[BCE(r_i − mean f, 1) + BCE(f_i − mean r, 0)]`, BCE being sigmoid cross-entropy on logits.

    Args:
        real_logits: `D(I_gt)`, `[B]` or `[B, 1]`.
        fake_logits: `D(I_out)` (the composite, detached by the caller), same shape.
        real_mean: batch mean of the real logits; `None` means the mean of `real_logits`. Under
            `tf.distribute` that is the replica's local batch; pass the all-reduced global mean to
            match single-device training.
        fake_mean: the same for the fake logits.

    Returns:
        `[B]` float32.

    Reference: Jolicoeur-Martineau, "The relativistic discriminator", 2018 (RaGAN), as used for
    `L_adv` by the paper and its reference code.
    """
    real_relative, fake_relative = _relativistic_terms(real_logits, fake_logits, real_mean, fake_mean)
    return 0.5 * (_bce(real_relative, 1.0) + _bce(fake_relative, 0.0))


def ragan_generator_loss_per_example(real_logits, fake_logits, real_mean=None, fake_mean=None) -> tf.Tensor:
    """Relativistic average GAN generator loss per image pair (term `adv_g`, the paper's `L_adv`).

    `½[BCE(r_i − mean f, 0) + BCE(f_i − mean r, 1)]` with the real logits (and their mean) held
    constant, so the gradient reaches the generator through the fake logits only. Swapping real and
    fake turns this into `ragan_discriminator_loss_per_example`.

    Args:
        real_logits: `D(I_gt)`, `[B]` or `[B, 1]`.
        fake_logits: `D(I_out)`, differentiable with respect to the generator, same shape.
        real_mean: batch mean of the real logits; `None` means the mean of `real_logits` (the
            replica's local batch under `tf.distribute`).
        fake_mean: the same for the fake logits; if precomputed, the caller keeps it differentiable.

    Returns:
        `[B]` float32.

    Reference: RaGAN (Jolicoeur-Martineau, 2018), the paper's `L_adv`.
    """
    real_logits = tf.stop_gradient(_float32(real_logits))
    if real_mean is not None:
        real_mean = tf.stop_gradient(_float32(real_mean))
    real_relative, fake_relative = _relativistic_terms(real_logits, fake_logits, real_mean, fake_mean)
    return 0.5 * (_bce(real_relative, 0.0) + _bce(fake_relative, 1.0))


# The generator objective's terms ----------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorLossInputs:
    """What the generator's loss terms are computed from, for one batch (per replica under `tf.distribute`).

    Args:
        output: the composite `I_out`, `[B, S, S, 3]`.
        target: the ground truth `I_gt`, same shape.
        seen_output: what the perceptual terms see of `output` (the whole image, or the local box:
            `loss.perceptual_region`).
        seen_target: the same of `target`.
        features_output: the perceptual network's features of `seen_output` (relu1_1 ... relu5_1).
        features_target: the same of `seen_target` (constants of the objective).
        dis_features_output: the local discriminator's features of `output`.
        dis_features_target: the same of `target`.
        fake_logits: `D(I_out)`, `[B]` or `[B, 1]`.
        real_logits: `D(I_gt)`.
        real_mean: the batch mean of `real_logits` (over the global batch), or None.
        fake_mean: the same of `fake_logits`.
    """

    output: tf.Tensor
    target: tf.Tensor
    seen_output: tf.Tensor
    seen_target: tf.Tensor
    features_output: Sequence[tf.Tensor]
    features_target: Sequence[tf.Tensor]
    dis_features_output: Sequence[tf.Tensor]
    dis_features_target: Sequence[tf.Tensor]
    fake_logits: tf.Tensor
    real_logits: tf.Tensor
    real_mean: tf.Tensor | None = None
    fake_mean: tf.Tensor | None = None


@dataclass(frozen=True)
class GeneratorLossTerm:
    """One term of the generator objective.

    Args:
        name: the term's name in logs, TensorBoard and `generator_total_loss`'s `terms`.
        compute: `(inputs: GeneratorLossInputs, loss_cfg) -> [B]` float32, the term per example.
        weight_key: the `dmfn_tf.config.LossConfig` field that weighs it, or None for weight 1.
            Terms sharing a weight are summed before it multiplies them.
        adversarial: it comes from the discriminator, so the reconstruction warm-up
            (`train.warmup_steps`) gives it zero weight.
    """

    name: str
    compute: Callable[..., tf.Tensor]
    weight_key: str | None = None
    adversarial: bool = False


# The registry: name -> term, in the order the total adds them. Iterating it gives the names.
GENERATOR_LOSS_TERMS: dict[str, GeneratorLossTerm] = {}


def generator_loss_term(name: str, weight_key: str | None = None, adversarial: bool = False):
    """Registers `compute(inputs, loss_cfg) -> [B]` as the generator loss term `name` (a decorator).

    A new term is one such function, this registration and, if it has its own weight, a
    `LossConfig` field named by `weight_key`; the trainer computes, weighs and logs it.

    Example:

    ```python
    @generator_loss_term("l1")
    def _l1(inputs, loss_cfg):
        return l1_loss_per_example(inputs.output, inputs.target)
    ```
    """

    def register(compute):
        if name in GENERATOR_LOSS_TERMS or name == "g_total":  # "g_total" is the weighted sum's own name
            raise ValueError(f"generator loss term {name!r} is already registered")
        GENERATOR_LOSS_TERMS[name] = GeneratorLossTerm(name, compute, weight_key, adversarial)
        return compute

    return register


@generator_loss_term("l1")
def _l1_term(inputs: GeneratorLossInputs, loss_cfg) -> tf.Tensor:
    return l1_loss_per_example(inputs.output, inputs.target)


@generator_loss_term("self_guided", weight_key="lambda_vgg")
def _self_guided_term(inputs: GeneratorLossInputs, loss_cfg) -> tf.Tensor:
    return self_guided_regression_loss_per_example(
        inputs.seen_output, inputs.seen_target, inputs.features_target, inputs.features_output, mode=loss_cfg.guidance
    )


@generator_loss_term("vgg_fm", weight_key="lambda_vgg")
def _vgg_fm_term(inputs: GeneratorLossInputs, loss_cfg) -> tf.Tensor:
    return vgg_feature_matching_loss_per_example(inputs.features_target, inputs.features_output)


@generator_loss_term("dis_fm", weight_key="eta_dis_fm", adversarial=True)
def _dis_fm_term(inputs: GeneratorLossInputs, loss_cfg) -> tf.Tensor:
    return discriminator_feature_matching_loss_per_example(inputs.dis_features_target, inputs.dis_features_output)


@generator_loss_term("adv_g", weight_key="mu_adv", adversarial=True)
def _adv_g_term(inputs: GeneratorLossInputs, loss_cfg) -> tf.Tensor:
    return ragan_generator_loss_per_example(inputs.real_logits, inputs.fake_logits, inputs.real_mean, inputs.fake_mean)


@generator_loss_term("align", weight_key="gamma_align")
def _align_term(inputs: GeneratorLossInputs, loss_cfg) -> tf.Tensor:
    return geometrical_alignment_loss_per_example(inputs.features_target[3], inputs.features_output[3])


def generator_loss_terms(inputs: GeneratorLossInputs, loss_cfg) -> dict[str, tf.Tensor]:
    """Every registered term on `inputs`: `{name: [B] float32}`, in `GENERATOR_LOSS_TERMS`' order."""
    return {name: term.compute(inputs, loss_cfg) for name, term in GENERATOR_LOSS_TERMS.items()}


def generator_total_loss(terms: Mapping[str, tf.Tensor], loss_cfg) -> tf.Tensor:
    """The generator objective `g_total = l1 + λ(self_guided + vgg_fm) + η dis_fm + μ adv_g + γ align`.

    The one place this weighted sum is written: the terms of `GENERATOR_LOSS_TERMS`, each group of
    terms sharing a weight summed and multiplied by it, the groups added in registration order.
    The terms may be scalars (batch means) or `[B]` per-example vectors; the result has the same
    shape, so per-example terms give a per-example total for `tf.nn.compute_average_loss`.

    Args:
        terms: exactly the names of `GENERATOR_LOSS_TERMS`: `"l1"`, `"self_guided"`, `"vgg_fm"`,
            `"dis_fm"`, `"adv_g"`, `"align"` and any registered since.
        loss_cfg: a `dmfn_tf.config.LossConfig` (λ = `lambda_vgg`, η = `eta_dis_fm`,
            μ = `mu_adv`, γ = `gamma_align`: each term's `weight_key`).

    Returns:
        float32 tensor, the weighted sum.

    Example:

    ```python
    from dmfn_tf.config import LossConfig
    terms = {name: tf.constant(1.0) for name in GENERATOR_LOSS_TERMS}
    round(float(generator_total_loss(terms, LossConfig())), 3)  # 1 + 25*2 + 5 + 0.003 + 1
    # -> 57.003
    ```

    Reference: the total objective of the paper (after Eq. 9).
    """
    missing = sorted(set(GENERATOR_LOSS_TERMS) - set(terms))
    unknown = sorted(set(terms) - set(GENERATOR_LOSS_TERMS))
    if missing or unknown:
        raise ValueError(
            f"generator_total_loss: missing terms {missing}, unknown terms {unknown}; "
            f"expected exactly {list(GENERATOR_LOSS_TERMS)}"
        )
    groups: dict[str | None, list[tf.Tensor]] = {}
    for name, term in GENERATOR_LOSS_TERMS.items():
        groups.setdefault(term.weight_key, []).append(_float32(terms[name]))
    total = None
    for weight_key, members in groups.items():
        summed = functools.reduce(operator.add, members)
        weighted = summed if weight_key is None else getattr(loss_cfg, weight_key) * summed
        total = weighted if total is None else total + weighted
    return total
