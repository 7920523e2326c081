"""Tests of `dmfn_tf.training.trainer`: the DMFN training model on one device."""

import dataclasses
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.models import losses
from dmfn_tf.config import DataConfig, LossConfig, TrainConfig
from dmfn_tf.errors import ConfigError
from dmfn_tf.inpaint.contract import composite, generator_input
from dmfn_tf.training.trainer import (
    TEST_METRICS,
    build_trainer,
    crop_local,
    learning_rate_schedule,
    make_optimizer,
    train_metric_names,
)
from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
from dmfn_tf.training.optimizers import TorchAdam

SIZE = 64
HALF = SIZE // 2
# Non-default weights, so that a term wired to the wrong weight shows in the total.
LOSS = LossConfig(lambda_vgg=2.0, eta_dis_fm=0.5, mu_adv=0.1, gamma_align=3.0)


def fixed_batch():
    """Two smooth images with different holes and boxes (the box contains the hole)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1.0)
    first = np.stack([xx, yy, xx * yy], axis=-1)
    second = np.stack([yy, 1.0 - xx, 0.5 + 0.0 * xx], axis=-1)
    image = (np.stack([first, second]) * 2.0 - 1.0).astype("float32")
    mask = np.zeros((2, SIZE, SIZE, 1), "float32")
    mask[0, 10:40, 20:50] = 1.0
    mask[1, 30:60, 5:35] = 1.0
    bbox = np.array([[9, 19, HALF, HALF], [29, 4, HALF, HALF]], "int32")
    return {"image": image, "mask": mask, "bbox": bbox}


def as_dataset(batch):
    return tf.data.Dataset.from_tensors(batch).repeat()


def numpy_crops(images, bbox):
    """The local-discriminator crops by plain slicing, as a tensor."""
    crops = [img[t : t + h, l : l + w] for img, (t, l, h, w) in zip(np.asarray(images), bbox)]
    return tf.constant(np.stack(crops))


def snapshot(variables):
    return [np.array(v) for v in variables]


def changed(before, variables):
    return [not np.array_equal(b, np.asarray(v)) for b, v in zip(before, variables)]


def kernels_changed(before, variables):
    """Whether each kernel moved; biases in front of a normalisation have zero gradient, kernels never."""
    return [moved for moved, v in zip(changed(before, variables), variables) if v.path.endswith("kernel")]


def test_crop_local_matches_slicing_and_routes_gradients_to_the_box():
    rng = np.random.default_rng(1)
    images = tf.constant(rng.normal(size=(3, 8, 10, 2)).astype("float32"))
    bbox = np.array([[0, 0, 4, 4], [4, 6, 4, 4], [2, 3, 4, 4]], "int32")
    with tf.GradientTape() as tape:
        tape.watch(images)
        crops = crop_local(images, tf.constant(bbox), 4)
        total = tf.reduce_sum(crops)
    np.testing.assert_array_equal(crops.numpy(), numpy_crops(images, bbox).numpy())
    expected_gradient = np.zeros(images.shape, "float32")
    for i, (top, left, height, width) in enumerate(bbox):
        expected_gradient[i, top : top + height, left : left + width] = 1.0
    np.testing.assert_array_equal(tf.convert_to_tensor(tape.gradient(total, images)).numpy(), expected_gradient)


def test_fit_learns_and_logs_every_term(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    history = trainer.fit(as_dataset(fixed_batch()), steps_per_epoch=1, epochs=30, verbose=0).history

    assert set(history) == set(train_metric_names())
    for name, values in history.items():
        assert all(math.isfinite(v) for v in values), name
    # The composite's L1 of the last step is well below that of the first.
    assert history["l1"][-1] < 0.8 * history["l1"][0]
    # The logged total is the weighted sum of the logged terms (all are batch means).
    last = {name: values[-1] for name, values in history.items()}
    expected_total = losses.generator_total_loss({name: last[name] for name in losses.GENERATOR_LOSS_TERMS}, LOSS)
    assert last["g_total"] == pytest.approx(float(expected_total), rel=1e-5)


def test_generator_step_terms_equal_the_losses_on_independent_crops(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    batch = fixed_batch()
    image, mask = tf.constant(batch["image"]), tf.constant(batch["mask"])
    discriminator = trainer.discriminator

    # Reference: batch means of the loss functions, crops by slicing, D in training mode, before the update.
    output = composite(trainer.generator(generator_input(image, mask)), image, mask)
    vgg_real, vgg_fake = trainer.perceptual(image), trainer.perceptual(output)
    fake_logits, dis_fake = discriminator([numpy_crops(output, batch["bbox"]), output], training=True)
    real_logits, dis_real = discriminator([numpy_crops(image, batch["bbox"]), image], training=True)
    per_example = {
        "l1": losses.l1_loss_per_example(output, image),
        "self_guided": losses.self_guided_regression_loss_per_example(
            output, image, vgg_real, vgg_fake, mode=LOSS.guidance
        ),
        "vgg_fm": losses.vgg_feature_matching_loss_per_example(vgg_real, vgg_fake),
        "dis_fm": losses.discriminator_feature_matching_loss_per_example(dis_real, dis_fake),
        "adv_g": losses.ragan_generator_loss_per_example(real_logits, fake_logits),
        "align": losses.geometrical_alignment_loss_per_example(vgg_real[3], vgg_fake[3]),
    }
    expected = {name: tf.reduce_mean(value) for name, value in per_example.items()}
    expected["g_total"] = losses.generator_total_loss(expected, LOSS)

    returned_output, terms = trainer.generator_step(image, mask, tf.constant(batch["bbox"]), tf.constant(2.0))
    np.testing.assert_allclose(returned_output.numpy(), output.numpy(), atol=1e-6)
    for name, value in expected.items():
        assert float(tf.reduce_mean(terms[name])) == pytest.approx(float(value), rel=1e-4, abs=1e-6), name


def test_generator_step_updates_generator_only(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    batch = fixed_batch()
    generator_before = snapshot(trainer.generator.trainable_variables)
    discriminator_before = snapshot(trainer.discriminator.trainable_variables)
    moving_before = snapshot(trainer.discriminator.non_trainable_variables)
    vgg_before = snapshot(trainer.perceptual.weights)

    trainer.generator_step(
        tf.constant(batch["image"]), tf.constant(batch["mask"]), tf.constant(batch["bbox"]), tf.constant(2.0)
    )

    generator_kernels = kernels_changed(generator_before, trainer.generator.trainable_variables)
    assert generator_kernels and all(generator_kernels)
    assert not any(changed(discriminator_before, trainer.discriminator.trainable_variables))
    assert not any(changed(vgg_before, trainer.perceptual.weights))
    # D runs in training mode in the G step: its BatchNorm moving statistics move (as in PyTorch).
    assert all(changed(moving_before, trainer.discriminator.non_trainable_variables))
    assert int(trainer.g_optimizer.iterations) == 1 and int(trainer.d_optimizer.iterations) == 0


def test_discriminator_step_updates_discriminator_only(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    batch = fixed_batch()
    generator_before = snapshot(trainer.generator.weights)
    discriminator_before = snapshot(trainer.discriminator.trainable_variables)
    vgg_before = snapshot(trainer.perceptual.weights)
    fake = tf.constant(np.flip(batch["image"], axis=1).copy())

    per_example = trainer.discriminator_step(
        tf.constant(batch["image"]), fake, tf.constant(batch["bbox"]), tf.constant(2.0)
    )

    assert per_example.shape == (2,)
    discriminator_kernels = kernels_changed(discriminator_before, trainer.discriminator.trainable_variables)
    assert discriminator_kernels and all(discriminator_kernels)
    assert not any(changed(generator_before, trainer.generator.weights))
    assert not any(changed(vgg_before, trainer.perceptual.weights))
    assert int(trainer.d_optimizer.iterations) == 1 and int(trainer.g_optimizer.iterations) == 0


def test_discriminator_loss_is_ragan_on_the_logits_of_real_and_fake(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    batch = fixed_batch()
    image = tf.constant(batch["image"])
    fake = tf.constant(np.flip(batch["image"], axis=2).copy())
    # Logits as the step sees them (training-mode BatchNorm), then the NumPy RaGAN formula.
    real = trainer.discriminator([numpy_crops(image, batch["bbox"]), image], training=True)[0].numpy()[:, 0]
    fake_logits = trainer.discriminator([numpy_crops(fake, batch["bbox"]), fake], training=True)[0].numpy()[:, 0]

    def bce(logit, label):
        return np.maximum(logit, 0) - logit * label + np.log1p(np.exp(-np.abs(logit)))

    expected = 0.5 * (bce(real - fake_logits.mean(), 1.0) + bce(fake_logits - real.mean(), 0.0))
    per_example = trainer.discriminator_step(image, fake, tf.constant(batch["bbox"]), tf.constant(2.0))
    np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-5)


def test_predict_returns_the_composite_and_evaluate_reports_its_metrics(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    batch = fixed_batch()
    inputs = {"image": batch["image"], "mask": batch["mask"]}
    predicted = trainer.predict(inputs, batch_size=2, verbose=0)

    known = batch["mask"][..., 0] == 0
    np.testing.assert_array_equal(predicted[known], batch["image"][known])
    assert np.any(predicted[~known] != batch["image"][~known])

    results = trainer.evaluate(tf.data.Dataset.from_tensors(inputs), return_dict=True, verbose=0)
    assert set(TEST_METRICS) <= set(results)
    assert results["l1"] == pytest.approx(np.abs(predicted - batch["image"]).mean(), rel=1e-5)
    unit_error = ((predicted + 1) / 2 - (batch["image"] + 1) / 2) ** 2
    psnr = np.mean([10 * np.log10(1.0 / e.mean()) for e in unit_error])
    assert results["psnr"] == pytest.approx(psnr, rel=1e-4)
    assert 0.0 < results["ssim"] < 1.0


def test_batches_must_be_dicts_with_the_training_keys(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    batch = fixed_batch()
    with pytest.raises(TypeError, match="dict batches"):
        trainer.train_step((batch["image"], batch["mask"], batch["bbox"]))
    with pytest.raises(KeyError, match="bbox"):
        trainer.train_step({"image": batch["image"], "mask": batch["mask"]})


def test_learning_rate_halves_after_each_decay_step():
    schedule = learning_rate_schedule(TrainConfig(learning_rate=1e-3, lr_decay_steps=[3, 5], lr_decay_factor=0.5))
    # `step` counts the updates made so far: updates 1..3 use 1e-3, updates 4..5 use 5e-4, then 2.5e-4.
    rates = [float(schedule(step)) for step in range(8)]
    np.testing.assert_allclose(rates, [1e-3] * 3 + [5e-4] * 2 + [2.5e-4] * 3, rtol=1e-6)
    constant = learning_rate_schedule(TrainConfig(learning_rate=2e-4, lr_decay_steps=[]))
    np.testing.assert_allclose([float(constant(step)) for step in (0, 1, 10**6)], [2e-4] * 3, rtol=1e-6)


def test_rate_variable_follows_the_schedule_as_an_optimizer_given_the_schedule(tiny_trainer, tiny_config):
    """New runs keep the rate in a variable set from the schedule; Keras' own schedule handling is the reference."""
    batch = fixed_batch()
    weights = {}
    for rate_variable in (True, False):
        keras.utils.set_random_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
            trainer = build_trainer(tiny_config(loss=LOSS, lr_decay_steps=[2, 3], lr_decay_factor=0.1), rate_variable=rate_variable)
        assert isinstance(trainer.g_optimizer.learning_rate, keras.Variable) == rate_variable
        for _ in range(4):
            trainer.train_step(batch)
        weights[rate_variable] = [w.numpy() for w in trainer.generator.weights + trainer.discriminator.weights]
        if rate_variable:  # update 4 used the twice-decayed rate
            np.testing.assert_allclose(float(trainer.d_optimizer.learning_rate), 1e-3 * 0.01, rtol=1e-6)
    for with_variable, with_schedule in zip(weights[True], weights[False]):
        np.testing.assert_allclose(with_variable, with_schedule, rtol=1e-5, atol=1e-7)


def test_build_trainer_builds_two_adam_optimizers_from_the_config(tiny_trainer, tiny_config):
    trainer = tiny_trainer(loss=LOSS, beta_1=0.3, beta_2=0.9)
    for optimizer, network in ((trainer.g_optimizer, trainer.generator), (trainer.d_optimizer, trainer.discriminator)):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert optimizer.built
        assert optimizer.beta_1 == 0.3 and optimizer.beta_2 == 0.9
        # One first and one second moment per trainable weight, plus the iteration counter and rate.
        assert len(optimizer.variables) == 2 * len(network.trainable_variables) + 2
    assert trainer.perceptual.trainable_variables == []
    assert trainer.local_size == HALF

    cfg = tiny_config(loss=LOSS)
    cfg.perceptual.network = "lpips_vgg16"  # the offline VGG16 (random here: weights none)
    assert build_trainer(cfg).perceptual.name == "lpips_vgg16_features"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_losses_in_float32(policy, tiny_trainer):
    try:
        keras.mixed_precision.set_global_policy(policy)
        trainer = tiny_trainer(loss=LOSS)
        logs = trainer.train_step(fixed_batch())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert trainer.generator.compute_dtype == policy.removeprefix("mixed_")
    # float16 needs loss scaling (its gradients underflow otherwise); bfloat16 has float32's range.
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    assert isinstance(getattr(trainer.g_optimizer, "inner_optimizer", trainer.g_optimizer), TorchAdam)
    assert set(logs) == set(train_metric_names())
    for name, value in logs.items():
        assert value.dtype == tf.float32 and math.isfinite(float(value)), name


def test_fit_on_the_data_pipeline(tmp_path, tiny_trainer, write_images):
    from dmfn_tf.data import build_dataset

    write_images(tmp_path, count=4)
    data_cfg = DataConfig(source="folder", path=str(tmp_path), mask="random_box", mask_delta=8)
    dataset = build_dataset(data_cfg, SIZE, batch_size=2, seed=0)

    history = tiny_trainer(loss=LOSS).fit(dataset, steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(math.isfinite(values[-1]) for values in history.values())



def test_optimizers_place_epsilon_as_configured_and_reference_init_is_applied(tiny_trainer, tiny_config):
    trainer = tiny_trainer(adam_epsilon=3e-8)
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        assert isinstance(optimizer, TorchAdam) and optimizer.epsilon == 3e-8
    keras_placed = make_optimizer(TrainConfig(adam_epsilon=1e-7, adam_epsilon_convention="keras"), "adam")
    assert type(keras_placed) is keras.optimizers.Adam and keras_placed.epsilon == 1e-7

    cfg = tiny_config()
    cfg.model.init = "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
        trainer = build_trainer(cfg)
    # PyTorch's default Linear init (the authors' Dense layers): uniform within 1/sqrt(fan_in).
    logit = trainer.discriminator.get_layer("logit")
    bound = 1 / math.sqrt(logit.kernel.shape[0])
    assert np.abs(logit.kernel.numpy()).max() <= bound and np.abs(logit.bias.numpy()).max() <= bound
    assert np.all(logit.bias.numpy() != 0)
    # N(0, 0.02) generator convs with zero bias, not Glorot.
    kernel = trainer.generator.get_layer("dec1_conv").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.003 and np.all(trainer.generator.get_layer("dec1_conv").bias.numpy() == 0)


def test_local_perceptual_region_feeds_the_box_crops_to_the_perceptual_terms(tiny_trainer):
    loss = LossConfig(lambda_vgg=2.0, eta_dis_fm=0.5, mu_adv=0.1, gamma_align=3.0, perceptual_region="local")
    trainer = tiny_trainer(loss=loss)
    batch = fixed_batch()
    image, mask = tf.constant(batch["image"]), tf.constant(batch["mask"])
    output = composite(trainer.generator(generator_input(image, mask)), image, mask)
    real_crop, fake_crop = numpy_crops(image, batch["bbox"]), numpy_crops(output, batch["bbox"])
    vgg_real, vgg_fake = trainer.perceptual(real_crop), trainer.perceptual(fake_crop)
    expected = {
        "self_guided": losses.self_guided_regression_loss_per_example(fake_crop, real_crop, vgg_real, vgg_fake, mode=loss.guidance),
        "vgg_fm": losses.vgg_feature_matching_loss_per_example(vgg_real, vgg_fake),
        "align": losses.geometrical_alignment_loss_per_example(vgg_real[3], vgg_fake[3]),
        "l1": losses.l1_loss_per_example(output, image),
    }
    _, terms = trainer.generator_step(image, mask, tf.constant(batch["bbox"]), tf.constant(2.0))
    for name, value in expected.items():
        assert float(tf.reduce_mean(terms[name])) == pytest.approx(float(tf.reduce_mean(value)), rel=1e-4, abs=1e-6), name


def test_averaged_generator_holds_the_moving_average_and_gives_the_weights_back(tiny_trainer):
    momentum = 0.9
    trainer = tiny_trainer(loss=LOSS, ema_momentum=momentum)
    batch = fixed_batch()
    variables = trainer.generator.trainable_variables
    average = None
    for _ in range(3):
        trainer.generator_step(
            tf.constant(batch["image"]), tf.constant(batch["mask"]), tf.constant(batch["bbox"]), tf.constant(2.0)
        )
        weights = snapshot(variables)
        # The first update starts the average at the weights (Keras' momentum is 0 on the first step).
        average = weights if average is None else [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
    trained = snapshot(variables)
    with trainer.averaged_generator() as generator:
        for value, expected in zip(snapshot(generator.trainable_variables), average):
            np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
        assert any(not np.allclose(a, w) for a, w in zip(average, trained))
    for value, expected in zip(snapshot(variables), trained):
        np.testing.assert_array_equal(value, expected)


def test_without_ema_the_averaged_generator_is_the_generator(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS)
    with trainer.averaged_generator() as generator:
        assert generator is trainer.generator


def test_an_exact_reconstruction_logs_a_finite_psnr():
    from dmfn_tf.training.trainer import MAX_LOGGED_PSNR, _psnr_per_example

    white = tf.ones((2, 8, 8, 3))
    psnr = _psnr_per_example(white, white).numpy()
    assert np.all(psnr == MAX_LOGGED_PSNR)
    assert float(_psnr_per_example(white * 0.5, white)[0]) == pytest.approx(20 * math.log10(1 / 0.25), rel=1e-5)


@dataclasses.dataclass
class _LossConfigWithToyTerm(LossConfig):
    """`LossConfig` plus the toy term's weight, as a new term with its own weight adds a field."""

    zeta_colour: float = 4.0


@pytest.fixture
def toy_loss_term():
    """The toy generator term `colour` (|mean colour error| per image, weighed by `zeta_colour`), for one test."""

    @losses.generator_loss_term("colour", weight_key="zeta_colour")
    def colour(inputs, loss_cfg):
        return tf.abs(tf.reduce_mean(inputs.output - inputs.target, axis=[1, 2, 3]))

    yield colour
    del losses.GENERATOR_LOSS_TERMS["colour"]


def test_a_registered_loss_term_is_trained_weighed_and_logged(tiny_trainer, toy_loss_term):
    loss_cfg = _LossConfigWithToyTerm(**dataclasses.asdict(LOSS))
    trainer = tiny_trainer(loss=loss_cfg)
    history = trainer.fit(as_dataset(fixed_batch()), steps_per_epoch=1, epochs=2, verbose=0).history
    assert "colour" in train_metric_names() and set(history) == set(train_metric_names())
    last = {name: values[-1] for name, values in history.items()}
    assert last["colour"] > 0
    # The paper's five weighted terms, written out, plus the toy's weight times its value.
    without_toy = (last["l1"] + LOSS.lambda_vgg * (last["self_guided"] + last["vgg_fm"]) + LOSS.eta_dis_fm * last["dis_fm"]
                   + LOSS.mu_adv * last["adv_g"] + LOSS.gamma_align * last["align"])
    assert last["g_total"] == pytest.approx(without_toy + 4.0 * last["colour"], rel=1e-5)
    with pytest.raises(ConfigError, match="loss.zeta_colour: must be >= 0"):
        _LossConfigWithToyTerm(zeta_colour=-1.0).validate()
