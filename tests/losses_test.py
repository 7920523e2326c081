"""Tests of `dmfn_tf.models.losses` against NumPy re-derivations of the paper's equations and hand values.

The NumPy references below are written from the equations (loops over images, channels and
positions, float64) and never call the code under test.
"""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.models import losses
from dmfn_tf.config import LossConfig
from dmfn_tf.errors import ConfigError

RTOL = 1e-5
ATOL = 1e-7
EPS = 1e-7


def batch_mean(per_example_loss):
    """`per_example_loss` reduced to the scalar batch mean (what one device's step minimises)."""
    return lambda *args, **kwargs: tf.reduce_mean(per_example_loss(*args, **kwargs))


def _rng(seed=0):
    return np.random.default_rng(seed)


def _images(rng, shape=(2, 16, 16, 3)):
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _features(rng, batch, size, channels):
    """Non-negative random features, halving the spatial size per layer like VGG's relu*_1 taps."""
    return [
        rng.uniform(0.0, 2.0, size=(batch, size // 2**i, size // 2**i, c)).astype(np.float32)
        for i, c in enumerate(channels)
    ]


# ----- NumPy references -------------------------------------------------------------------------


def np_l1(output, target):
    output, target = output.astype(np.float64), target.astype(np.float64)
    return np.array([np.abs(output[b] - target[b]).sum() / output[b].size for b in range(len(output))])


def np_feature_matching(gt_features, out_features, weights):
    batch = gt_features[0].shape[0]
    result = np.zeros(batch)
    for weight, gt, out in zip(weights, gt_features, out_features):
        for b in range(batch):
            result[b] += weight * np.abs(gt[b].astype(np.float64) - out[b]).sum() / gt[b].size
    return result


def np_guidance(output, target, mode):
    batch, height, width, channels = output.shape
    maps = np.zeros((batch, height, width))
    for b in range(batch):
        error = np.zeros((height, width))
        for i in range(height):
            for j in range(width):
                error[i, j] = sum((float(output[b, i, j, c]) - float(target[b, i, j, c])) ** 2 for c in range(3)) / 3
        low, high = error.min(), error.max()
        if mode == "minmax":
            maps[b] = (error - low) / (high - low) if high > low else 0.0
        else:
            maps[b] = error / high if high > 0 else 0.0
    return maps


def np_average_pool_2x2(maps):
    batch, height, width = maps.shape
    pooled = np.zeros((batch, height // 2, width // 2))
    for b in range(batch):
        for i in range(height // 2):
            for j in range(width // 2):
                pooled[b, i, j] = maps[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean()
    return pooled


def np_self_guided(output, target, gt_features, out_features, weights, mode):
    full = np_guidance(output, target, mode)
    masks = [full, np_average_pool_2x2(full)]
    batch = output.shape[0]
    result = np.zeros(batch)
    for l in range(2):
        gt, out = gt_features[l].astype(np.float64), out_features[l].astype(np.float64)
        for b in range(batch):
            weighted = masks[l][b][:, :, None] * np.abs(gt[b] - out[b])
            result[b] += weights[l] * weighted.sum() / gt[b].size
    return result


def np_centers(responses):
    """[B, K, 2] expected (row, column) of (R + 1e-7) / Σ(R + 1e-7), coordinates 2u/H − 1, 2v/W − 1."""
    batch, height, width, channels = responses.shape
    centers = np.zeros((batch, channels, 2))
    for b in range(batch):
        for k in range(channels):
            probability = responses[b, :, :, k].astype(np.float64) + EPS
            probability /= probability.sum()
            for u in range(height):
                for v in range(width):
                    centers[b, k, 0] += probability[u, v] * (2 * u / height - 1)
                    centers[b, k, 1] += probability[u, v] * (2 * v / width - 1)
    return centers


def np_alignment(response_gt, response_out):
    squared = (np_centers(response_out) - np_centers(response_gt)) ** 2
    return squared.reshape(len(squared), -1).mean(axis=1)


def np_bce(logit, label):
    probability = 1.0 / (1.0 + math.exp(-logit))
    return -(label * math.log(probability) + (1 - label) * math.log(1 - probability))


def np_ragan(real, fake, discriminator):
    real, fake = real.astype(np.float64).ravel(), fake.astype(np.float64).ravel()
    real_label, fake_label = (1.0, 0.0) if discriminator else (0.0, 1.0)
    return np.array(
        [
            0.5 * (np_bce(r - fake.mean(), real_label) + np_bce(f - real.mean(), fake_label))
            for r, f in zip(real, fake)
        ]
    )


# ----- Toy differentiable "networks" for gradient tests -----------------------------------------


class ToyFeatures:
    """A fixed two-layer stand-in for VGG: relu1_1-like at full size, relu2_1-like at half size."""

    def __init__(self, seed=1, channels=(8, 16)):
        rng = _rng(seed)
        self.w1 = tf.constant(rng.normal(size=(3, channels[0])).astype(np.float32))
        self.w2 = tf.constant(rng.normal(size=(channels[0], channels[1])).astype(np.float32))

    def __call__(self, images):
        first = tf.nn.relu(tf.einsum("bhwc,cd->bhwd", images, self.w1))
        pooled = tf.nn.avg_pool2d(first, 2, 2, "VALID")
        second = tf.nn.softplus(tf.einsum("bhwc,cd->bhwd", pooled, self.w2))
        return [first, second]


def _assert_nonzero_finite(gradient):
    assert gradient is not None
    gradient = gradient.numpy()
    assert np.all(np.isfinite(gradient))
    assert np.abs(gradient).max() > 0


# ----- Weights ------------------------------------------------------------------------------------


def test_layer_weights_are_1000_over_channels_squared():
    np.testing.assert_allclose(
        losses.layer_weights(losses.VGG_LAYER_CHANNELS),
        [1000 / 4096, 1000 / 16384, 1000 / 65536, 1000 / 262144, 1000 / 262144],
    )
    assert losses.VGG_LAYER_CHANNELS == (64, 128, 256, 512, 512)


# ----- Agreement with the NumPy references --------------------------------------------------------


def test_l1_matches_numpy():
    rng = _rng(0)
    output, target = _images(rng), _images(rng)
    expected = np_l1(output, target)
    np.testing.assert_allclose(losses.l1_loss_per_example(output, target), expected, rtol=RTOL)


@pytest.mark.parametrize("explicit_weights", [False, True])
def test_vgg_feature_matching_matches_numpy(explicit_weights):
    rng = _rng(1)
    gt, out = _features(rng, 2, 16, losses.VGG_LAYER_CHANNELS), _features(rng, 2, 16, losses.VGG_LAYER_CHANNELS)
    weights = [0.5, 2.0, 1.0, 3.0, 0.25] if explicit_weights else [1000 / c**2 for c in (64, 128, 256, 512, 512)]
    expected = np_feature_matching(gt, out, weights)
    passed = weights if explicit_weights else None
    np.testing.assert_allclose(losses.vgg_feature_matching_loss_per_example(gt, out, passed), expected, rtol=RTOL)


@pytest.mark.parametrize("mode", ["minmax", "max"])
def test_guidance_map_matches_numpy(mode):
    rng = _rng(2)
    output, target = _images(rng, (2, 8, 12, 3)), _images(rng, (2, 8, 12, 3))
    guidance = losses.guidance_map(output, target, mode)
    assert guidance.shape == (2, 8, 12, 1)
    np.testing.assert_allclose(guidance[..., 0], np_guidance(output, target, mode), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mode", ["minmax", "max"])
def test_self_guided_regression_matches_numpy(mode):
    rng = _rng(3)
    output, target = _images(rng), _images(rng)
    channels = (64, 128)
    gt, out = _features(rng, 2, 16, channels), _features(rng, 2, 16, channels)
    expected = np_self_guided(output, target, gt, out, [1000 / 64**2, 1000 / 128**2], mode)
    per_example = losses.self_guided_regression_loss_per_example(output, target, gt, out, mode=mode)
    np.testing.assert_allclose(per_example, expected, rtol=RTOL)


def test_self_guided_regression_uses_the_first_two_of_five_layers_and_weights():
    rng = _rng(4)
    output, target = _images(rng), _images(rng)
    gt, out = _features(rng, 2, 16, losses.VGG_LAYER_CHANNELS), _features(rng, 2, 16, losses.VGG_LAYER_CHANNELS)
    weights = [3.0, 0.5, 100.0, 100.0, 100.0]
    expected = np_self_guided(output, target, gt, out, weights[:2], "minmax")
    np.testing.assert_allclose(
        losses.self_guided_regression_loss_per_example(output, target, gt, out, weights), expected, rtol=RTOL
    )


@pytest.mark.parametrize("shape", [(2, 8, 8, 5), (2, 6, 10, 3), (1, 12, 4, 2)])
def test_geometrical_alignment_matches_numpy_on_square_and_non_square_maps(shape):
    rng = _rng(5)
    response_gt = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    response_out = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
    np.testing.assert_allclose(losses.response_centers(response_gt), np_centers(response_gt), rtol=RTOL, atol=ATOL)
    expected = np_alignment(response_gt, response_out)
    per_example = losses.geometrical_alignment_loss_per_example(response_gt, response_out)
    np.testing.assert_allclose(per_example, expected, rtol=RTOL, atol=1e-9)


def test_discriminator_feature_matching_matches_numpy_with_weights_from_channels():
    rng = _rng(6)
    nf = 4
    channels = (nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf)
    real, fake = _features(rng, 2, 32, channels), _features(rng, 2, 32, channels)
    expected = np_feature_matching(real, fake, [1000 / c**2 for c in channels])
    np.testing.assert_allclose(losses.discriminator_feature_matching_loss_per_example(real, fake), expected, rtol=RTOL)


@pytest.mark.parametrize("logit_shape", [(4,), (4, 1)])
def test_ragan_losses_match_numpy(logit_shape):
    rng = _rng(7)
    real = rng.normal(size=logit_shape).astype(np.float32) * 2
    fake = rng.normal(size=logit_shape).astype(np.float32) * 2
    for discriminator, per_example_fn in (
        (True, losses.ragan_discriminator_loss_per_example),
        (False, losses.ragan_generator_loss_per_example),
    ):
        np.testing.assert_allclose(per_example_fn(real, fake), np_ragan(real, fake, discriminator), rtol=RTOL)


# ----- Hand-checkable cases -----------------------------------------------------------------------


def test_alignment_is_zero_for_identical_maps():
    response = _rng(8).uniform(0.0, 1.0, size=(2, 6, 10, 4)).astype(np.float32)
    np.testing.assert_allclose(losses.geometrical_alignment_loss_per_example(response, response), [0.0, 0.0])


def _one_hot(height, width, row, column):
    response = np.zeros((1, height, width, 1), np.float32)
    response[0, row, column, 0] = 1.0
    return response


@pytest.mark.parametrize("height, width", [(8, 8), (8, 12), (10, 6)])
@pytest.mark.parametrize("shift", [1, 3])
def test_alignment_of_a_shifted_one_hot_map_equals_the_hand_value(height, width, shift):
    # A one-hot map at (u0, v0) has p = (δ + ε) / (1 + HWε); moving it by k rows moves the row centre
    # by (2k/H) / (1 + HWε) and leaves the column centre alone. Mean over the two axes halves it.
    normaliser = 1 + height * width * EPS
    vertical = batch_mean(losses.geometrical_alignment_loss_per_example)(_one_hot(height, width, 2, 1), _one_hot(height, width, 2 + shift, 1))
    expected_vertical = 0.5 * (2 * shift / height / normaliser) ** 2
    np.testing.assert_allclose(vertical, expected_vertical, rtol=RTOL)
    # The reference code's bug (both grids along the width) would make a vertical shift free.
    assert float(vertical) > 0
    horizontal = batch_mean(losses.geometrical_alignment_loss_per_example)(_one_hot(height, width, 1, 1), _one_hot(height, width, 1, 1 + shift))
    np.testing.assert_allclose(horizontal, 0.5 * (2 * shift / width / normaliser) ** 2, rtol=RTOL)


def test_response_centers_order_is_row_then_column():
    centers = losses.response_centers(_one_hot(8, 4, 6, 1)).numpy()[0, 0]
    normaliser = 1 + 32 * EPS
    # Σ over all pixels of the row coordinate is W·Σ_u(2u/H − 1) = −W, of the column one −H.
    expected = [(2 * 6 / 8 - 1 - 4 * EPS) / normaliser, (2 * 1 / 4 - 1 - 8 * EPS) / normaliser]
    np.testing.assert_allclose(centers, expected)


@pytest.mark.parametrize("mode", ["minmax", "max"])
def test_guidance_is_zero_with_finite_gradient_for_identical_images(mode):
    # An empty hole makes the composite equal the ground truth.
    target = tf.constant(_images(_rng(9), (2, 8, 8, 3)))
    output = tf.Variable(target)
    toy = ToyFeatures()
    guidance = losses.guidance_map(output, target, mode)
    assert np.all(guidance.numpy() == 0.0)
    with tf.GradientTape() as tape:
        loss = batch_mean(losses.self_guided_regression_loss_per_example)(output, target, toy(target), toy(output), mode=mode)
    gradient = tape.gradient(loss, output)
    assert float(loss) == 0.0
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))


def test_minmax_guidance_is_zero_for_a_flat_error_map():
    target = np.zeros((1, 4, 4, 3), np.float32)
    output = np.full((1, 4, 4, 3), 0.5, np.float32)
    np.testing.assert_array_equal(losses.guidance_map(output, target, "minmax"), np.zeros((1, 4, 4, 1)))


def test_guidance_spans_zero_to_one():
    rng = _rng(10)
    guidance = losses.guidance_map(_images(rng), _images(rng), "minmax").numpy()
    for image in guidance:
        assert image.min() == 0.0
        np.testing.assert_allclose(image.max(), 1.0, rtol=1e-6)
    assert np.all((guidance >= 0) & (guidance <= 1))


def test_max_mode_equals_minmax_for_a_composite_with_a_hole():
    rng = _rng(11)
    target, raw = _images(rng, (2, 16, 16, 3)), _images(rng, (2, 16, 16, 3))
    mask = np.zeros((2, 16, 16, 1), np.float32)
    mask[0, 4:12, 4:12] = 1.0
    mask[1, 0:6, 8:16] = 1.0
    composite = mask * raw + (1 - mask) * target
    minmax = losses.guidance_map(composite, target, "minmax").numpy()
    maximum = losses.guidance_map(composite, target, "max").numpy()
    np.testing.assert_allclose(maximum, minmax, rtol=1e-6, atol=1e-7)
    assert np.all(minmax[mask == 0] == 0.0) and minmax.max() > 0


def test_ragan_all_zero_logits_give_log_2():
    zeros = np.zeros((3, 1), np.float32)
    np.testing.assert_allclose(batch_mean(losses.ragan_discriminator_loss_per_example)(zeros, zeros), math.log(2), rtol=RTOL)
    np.testing.assert_allclose(batch_mean(losses.ragan_generator_loss_per_example)(zeros, zeros), math.log(2), rtol=RTOL)


def test_ragan_single_pair_hand_value():
    # B = 1: r − mean f = a − b and f − mean r = b − a, so D = ½[softplus(b − a) + softplus(b − a)].
    real, fake = np.array([1.0], np.float32), np.array([-1.0], np.float32)
    np.testing.assert_allclose(batch_mean(losses.ragan_discriminator_loss_per_example)(real, fake), math.log1p(math.exp(-2.0)), rtol=RTOL)
    np.testing.assert_allclose(batch_mean(losses.ragan_generator_loss_per_example)(real, fake), math.log1p(math.exp(2.0)), rtol=RTOL)


def test_ragan_swapping_real_and_fake_maps_discriminator_loss_onto_generator_loss():
    rng = _rng(12)
    real, fake = rng.normal(size=(5, 1)).astype(np.float32), rng.normal(size=(5, 1)).astype(np.float32)
    np.testing.assert_allclose(
        losses.ragan_discriminator_loss_per_example(real, fake),
        losses.ragan_generator_loss_per_example(fake, real),
        rtol=RTOL,
    )


def test_ragan_with_global_means_splits_a_batch_exactly():
    # Two "replicas" with the global means passed in, summed and divided by the global batch size,
    # reproduce the single-device loss; local means alone would not.
    rng = _rng(13)
    real, fake = rng.normal(size=(6, 1)).astype(np.float32), rng.normal(size=(6, 1)).astype(np.float32)
    for per_example_fn in (losses.ragan_discriminator_loss_per_example, losses.ragan_generator_loss_per_example):
        whole = float(batch_mean(per_example_fn)(real, fake))
        parts = [
            per_example_fn(real[s], fake[s], real_mean=real.mean(), fake_mean=fake.mean())
            for s in (slice(0, 3), slice(3, 6))
        ]
        split = tf.nn.compute_average_loss(tf.concat(parts, 0), global_batch_size=6)
        np.testing.assert_allclose(float(split), whole, rtol=RTOL)
        local = [per_example_fn(real[s], fake[s]) for s in (slice(0, 3), slice(3, 6))]
        assert abs(float(tf.reduce_sum(tf.concat(local, 0))) / 6 - whole) > 1e-4


def np_generator_total(terms, loss_cfg):
    """The paper's total objective as a dot product of a weight vector with the six terms."""
    order = ("l1", "self_guided", "vgg_fm", "dis_fm", "adv_g", "align")
    weights = np.array(
        [1.0, loss_cfg.lambda_vgg, loss_cfg.lambda_vgg, loss_cfg.eta_dis_fm, loss_cfg.mu_adv, loss_cfg.gamma_align]
    )
    return np.tensordot(weights, np.array([np.asarray(terms[name], np.float64) for name in order]), axes=1)


def test_generator_total_loss_uses_configured_weights():
    cfg = LossConfig(lambda_vgg=2.0, eta_dis_fm=3.0, mu_adv=0.5, gamma_align=7.0)
    terms = {"l1": 0.1, "self_guided": 0.2, "vgg_fm": 0.3, "dis_fm": 0.4, "adv_g": 0.6, "align": 0.05}
    assert set(terms) == set(losses.GENERATOR_LOSS_TERMS)
    expected = np_generator_total(terms, cfg)
    np.testing.assert_allclose(losses.generator_total_loss(terms, cfg), expected, rtol=RTOL)
    per_example = {name: tf.constant([value, 2 * value]) for name, value in terms.items()}
    np.testing.assert_allclose(losses.generator_total_loss(per_example, cfg), [expected, 2 * expected], rtol=RTOL)
    # Each weight multiplies its own term: bump one weight at a time.
    for name, key in (("vgg_fm", "lambda_vgg"), ("dis_fm", "eta_dis_fm"), ("adv_g", "mu_adv"), ("align", "gamma_align")):
        bumped = dataclasses.replace(cfg, **{key: getattr(cfg, key) + 1.0})
        difference = float(losses.generator_total_loss(terms, bumped)) - float(losses.generator_total_loss(terms, cfg))
        expected_difference = terms[name] + (terms["self_guided"] if name == "vgg_fm" else 0.0)
        assert difference == pytest.approx(expected_difference, rel=1e-5), name


def test_generator_total_loss_adds_the_groups_in_the_papers_order_bit_for_bit():
    # The registry's grouped sum is the paper's formula as written before it, operation for operation
    # in float32 (the trained campaign's totals do not move by one ulp).
    rng = _rng(21)
    cfg = LossConfig(lambda_vgg=2.5, eta_dis_fm=3.25, mu_adv=0.003, gamma_align=7.0)
    terms = {name: tf.constant(rng.uniform(0, 3, (5,)).astype(np.float32)) for name in losses.GENERATOR_LOSS_TERMS}
    written_out = (terms["l1"] + cfg.lambda_vgg * (terms["self_guided"] + terms["vgg_fm"]) + cfg.eta_dis_fm * terms["dis_fm"]
                   + cfg.mu_adv * terms["adv_g"] + cfg.gamma_align * terms["align"])
    np.testing.assert_array_equal(losses.generator_total_loss(terms, cfg).numpy(), written_out.numpy())
    assert [(term.name, term.weight_key, term.adversarial) for term in losses.GENERATOR_LOSS_TERMS.values()] == [
        ("l1", None, False), ("self_guided", "lambda_vgg", False), ("vgg_fm", "lambda_vgg", False),
        ("dis_fm", "eta_dis_fm", True), ("adv_g", "mu_adv", True), ("align", "gamma_align", False)]


def test_a_loss_term_name_is_registered_once():
    with pytest.raises(ValueError, match="'l1' is already registered"):
        losses.generator_loss_term("l1")(lambda inputs, loss_cfg: inputs.output)
    with pytest.raises(ValueError, match="'g_total' is already registered"):
        losses.generator_loss_term("g_total")(lambda inputs, loss_cfg: inputs.output)


def test_generator_total_loss_matches_the_authors_training_steps(fixtures_dir):
    # The terms and total of three training steps of the authors' code, with the reference weights.
    with np.load(fixtures_dir / "train_step_reference.npz", allow_pickle=False) as reference:
        terms = {name: reference[f"terms/{name}"] for name in losses.GENERATOR_LOSS_TERMS}
        g_total = reference["terms/g_total"]
    np.testing.assert_allclose(losses.generator_total_loss(terms, LossConfig()), g_total, rtol=1e-6)


# ----- Gradients ----------------------------------------------------------------------------------


def test_every_loss_sends_a_gradient_to_the_generator_output():
    rng = _rng(14)
    target = tf.constant(_images(rng, (2, 8, 8, 3)))
    output = tf.Variable(_images(rng, (2, 8, 8, 3)))
    toy = ToyFeatures()
    discriminator_weights = tf.constant(rng.normal(size=(8 * 8 * 3, 1)).astype(np.float32))

    def discriminator(images):
        return tf.reshape(images, [2, -1]) @ discriminator_weights

    terms = {
        "l1": lambda: batch_mean(losses.l1_loss_per_example)(output, target),
        "vgg_fm": lambda: batch_mean(losses.vgg_feature_matching_loss_per_example)(toy(target), toy(output)),
        "self_guided": lambda: batch_mean(losses.self_guided_regression_loss_per_example)(output, target, toy(target), toy(output)),
        "align": lambda: batch_mean(losses.geometrical_alignment_loss_per_example)(toy(target)[1], toy(output)[1]),
        "dis_fm": lambda: batch_mean(losses.discriminator_feature_matching_loss_per_example)(toy(target), toy(output)),
        "adv_g": lambda: batch_mean(losses.ragan_generator_loss_per_example)(discriminator(target), discriminator(output)),
    }
    for name, term in terms.items():
        with tf.GradientTape() as tape:
            loss = term()
        gradient = tape.gradient(loss, output)
        assert gradient is not None, name
        _assert_nonzero_finite(gradient)


@pytest.mark.parametrize("mode", ["minmax", "max"])
def test_guidance_map_contributes_no_gradient(mode):
    rng = _rng(15)
    target = tf.constant(_images(rng))
    output = tf.Variable(_images(rng))
    toy = ToyFeatures()
    with tf.GradientTape() as tape:
        guidance = losses.guidance_map(output, target, mode)
    assert tape.gradient(guidance, output) is None

    weights = [0.7, 1.3]
    full = tf.constant(np_guidance(output.numpy(), target.numpy(), mode)[..., None], tf.float32)
    constant_masks = [full, tf.nn.avg_pool2d(full, 2, 2, "VALID")]
    with tf.GradientTape(persistent=True) as tape:
        gt_features, out_features = toy(target), toy(output)
        loss = batch_mean(losses.self_guided_regression_loss_per_example)(output, target, gt_features, out_features, weights, mode)
        with_constant_map = sum(
            w * tf.reduce_mean(m * tf.abs(g - o))
            for w, m, g, o in zip(weights, constant_masks, gt_features, out_features)
        )
    np.testing.assert_allclose(loss, with_constant_map, rtol=RTOL)
    gradient = tape.gradient(loss, output)
    _assert_nonzero_finite(gradient)
    np.testing.assert_allclose(gradient, tape.gradient(with_constant_map, output), rtol=RTOL, atol=1e-9)


def test_ground_truth_features_and_real_logits_get_no_gradient():
    rng = _rng(16)
    channels = (4, 8, 16, 32, 32)
    gt = [tf.Variable(f) for f in _features(rng, 2, 16, channels)]
    out = [tf.constant(f) for f in _features(rng, 2, 16, channels)]
    images = [tf.constant(_images(rng)) for _ in range(2)]
    real_logits, fake_logits = tf.Variable([[0.3], [-1.2]]), tf.constant([[0.5], [0.1]])
    cases = {
        "vgg_fm": (lambda: batch_mean(losses.vgg_feature_matching_loss_per_example)(gt, out), gt),
        "dis_fm": (lambda: batch_mean(losses.discriminator_feature_matching_loss_per_example)(gt, out), gt),
        "self_guided": (lambda: batch_mean(losses.self_guided_regression_loss_per_example)(images[0], images[1], gt, out), gt[:2]),
        "align": (lambda: batch_mean(losses.geometrical_alignment_loss_per_example)(gt[3], out[3]), [gt[3]]),
        "adv_g": (lambda: batch_mean(losses.ragan_generator_loss_per_example)(real_logits, fake_logits), [real_logits]),
    }
    for name, (term, sources) in cases.items():
        with tf.GradientTape() as tape:
            loss = term()
        assert float(loss) > 0, name
        for gradient in tape.gradient(loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO):
            assert np.all(gradient.numpy() == 0.0), name


def test_discriminator_ragan_loss_trains_both_logits():
    real_logits, fake_logits = tf.Variable([[0.3], [-1.2]]), tf.Variable([[0.5], [0.1]])
    with tf.GradientTape() as tape:
        loss = batch_mean(losses.ragan_discriminator_loss_per_example)(real_logits, fake_logits)
    for gradient in tape.gradient(loss, [real_logits, fake_logits]):
        _assert_nonzero_finite(gradient)


# ----- Bad input ----------------------------------------------------------------------------------


def test_unknown_guidance_mode_is_a_config_error():
    images = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(ConfigError, match="'median'"):
        losses.guidance_map(images, images, "median")


def test_mismatched_inputs_are_rejected():
    rng = _rng(17)
    features = _features(rng, 1, 8, (4, 8, 16))
    with pytest.raises(ValueError, match="3 ground-truth feature layers but 2"):
        batch_mean(losses.vgg_feature_matching_loss_per_example)(features, features[:2])
    with pytest.raises(ValueError, match="2 weights for 3 feature layers"):
        batch_mean(losses.discriminator_feature_matching_loss_per_example)(features, features, [1.0, 2.0])
    with pytest.raises(ValueError, match="missing terms \\['align'\\]"):
        losses.generator_total_loss({n: 1.0 for n in losses.GENERATOR_LOSS_TERMS if n != "align"}, LossConfig())


def test_losses_trace_with_unknown_batch_and_spatial_sizes():
    # The trainer compiles its step with tf.function; nothing may depend on a static batch or map size.
    images = tf.TensorSpec([None, None, None, 3], tf.float32)
    first, second = tf.TensorSpec([None, None, None, 8], tf.float32), tf.TensorSpec([None, None, None, 16], tf.float32)
    logits = tf.TensorSpec([None, 1], tf.float32)

    @tf.function(input_signature=[images, images, first, second, first, second, logits, logits])
    def per_example(output, target, gt1, gt2, out1, out2, real, fake):
        return (
            losses.self_guided_regression_loss_per_example(output, target, [gt1, gt2], [out1, out2])
            + losses.geometrical_alignment_loss_per_example(gt2, out2)
            + losses.ragan_generator_loss_per_example(real, fake)
        )

    rng = _rng(18)
    output, target = _images(rng, (2, 8, 12, 3)), _images(rng, (2, 8, 12, 3))
    gt, out = [
        [rng.uniform(0.0, 2.0, size=shape).astype(np.float32) for shape in ((2, 8, 12, 8), (2, 4, 6, 16))]
        for _ in range(2)
    ]
    real, fake = rng.normal(size=(2, 1)).astype(np.float32), rng.normal(size=(2, 1)).astype(np.float32)
    expected = (
        np_self_guided(output, target, gt, out, [1000 / 64, 1000 / 256], "minmax")
        + np_alignment(gt[1], out[1])
        + np_ragan(real, fake, discriminator=False)
    )
    traced = per_example(output, target, gt[0], gt[1], out[0], out[1], real, fake)
    np.testing.assert_allclose(traced, expected, rtol=RTOL)


def test_self_guided_regression_rejects_features_of_the_wrong_size():
    rng = _rng(19)
    images = _images(rng, (1, 16, 16, 3))
    features = _features(rng, 1, 8, (4, 8))
    with pytest.raises(ValueError, match=r"feature layer 1 is \(8, 8\), expected \(16, 16\)"):
        batch_mean(losses.self_guided_regression_loss_per_example)(images, images, features, features)
