"""`train.warmup_steps`: the reconstruction warm-up of `DMFNTrainer` (no discriminator terms in G's objective)."""

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.config import LossConfig, TrainConfig
from dmfn_tf.errors import ConfigError

SIZE = 64
# Non-default weights, so that each term's weight shows in the total.
LOSS = LossConfig(lambda_vgg=2.0, eta_dis_fm=0.5, mu_adv=0.1, gamma_align=3.0)


def batches():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    mask = np.zeros((2, SIZE, SIZE, 1), "float32")
    mask[:, 16:48, 16:48] = 1.0
    bbox = np.array([[16, 16, 32, 32], [10, 20, 32, 32]], "int32")
    return tf.data.Dataset.from_tensors({"image": image, "mask": mask, "bbox": bbox}).repeat()


def one_step_logs(trainer):
    history = trainer.fit(batches(), epochs=1, steps_per_epoch=1, verbose=0)
    return {name: values[-1] for name, values in history.history.items()}


def reconstruction_total(logs):
    return logs["l1"] + LOSS.lambda_vgg * (logs["self_guided"] + logs["vgg_fm"]) + LOSS.gamma_align * logs["align"]


def full_total(logs):
    return reconstruction_total(logs) + LOSS.eta_dis_fm * logs["dis_fm"] + LOSS.mu_adv * logs["adv_g"]


def test_discriminator_terms_have_zero_weight_during_warmup_only(tiny_trainer):
    trainer = tiny_trainer(loss=LOSS, warmup_steps=2)
    for step in range(3):
        logs = one_step_logs(trainer)
        # The D terms are still computed and logged: only their weight changes.
        assert logs["dis_fm"] > 0 and logs["adv_g"] > 0
        expected = reconstruction_total(logs) if step < 2 else full_total(logs)
        assert logs["g_total"] == pytest.approx(expected, rel=1e-5), step
        assert abs(full_total(logs) - reconstruction_total(logs)) > 1e-3 * logs["g_total"]


@pytest.mark.parametrize("warmup_steps, same_update", [(1, True), (0, False)])
def test_generator_update_ignores_the_discriminator_during_warmup(tiny_trainer, warmup_steps, same_update):
    # Two trainers with the same G and different D: during the warm-up G's first update is the same.
    first, second = (tiny_trainer(loss=LOSS, warmup_steps=warmup_steps) for _ in range(2))
    rng = np.random.default_rng(1)
    for variable in second.discriminator.trainable_variables:
        if variable.path.endswith("kernel"):
            variable.assign(rng.normal(0.0, 0.05, variable.shape).astype("float32"))
    # One eager step each (`fit`'s traced step is the previous test's): tracing a train step costs a
    # minute on a loaded CPU, the eager step seconds.
    batch = next(iter(batches()))
    first.train_step(batch)
    second.train_step(batch)
    equal = [np.allclose(a, b, atol=1e-7) for a, b in zip(first.generator.weights, second.generator.weights)]
    assert all(equal) == same_update


def test_negative_warmup_is_refused():
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(warmup_steps=-1).validate()
