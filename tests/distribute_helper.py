"""Subprocess side of `tests/distribute_test.py` (not a test module itself).

Distributed set-ups need a fresh process: logical CPU devices must be configured before TensorFlow
initialises its devices, and a multi-worker strategy reads `TF_CONFIG` once. Each command trains a
tiny DMFN and writes what the test compares to an `.npz` file:

- `mirrored OUT.npz`: the same two SGD steps on one device and under `MirroredStrategy` over two
  logical CPUs, from the same initial weights, with the same global batches.
- `worker INDEX PORT0,PORT1 OUT.npz`: one worker of a two-worker `MultiWorkerMirroredStrategy`.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

IMAGE_SIZE = 64
GLOBAL_BATCH = 4
STEPS = 2


def tiny_config():
    from dmfn_tf.config import ExperimentConfig, ModelConfig, PerceptualConfig, TrainConfig

    return ExperimentConfig(
        model=ModelConfig(nf=4, n_blocks=1, image_size=IMAGE_SIZE),
        perceptual=PerceptualConfig(weights="none"),
        train=TrainConfig(batch_size=GLOBAL_BATCH, learning_rate=1e-3, lr_decay_steps=[1000], sync_batchnorm=True),
    )


def batches(seed=0):
    """`STEPS` different global batches; boxes and images differ per example, so the replicas'
    sub-batches have different logit means and BatchNorm statistics."""
    rng = np.random.default_rng(seed)
    half = IMAGE_SIZE // 2
    result = []
    for _ in range(STEPS):
        image = np.tanh(rng.normal(size=(GLOBAL_BATCH, IMAGE_SIZE, IMAGE_SIZE, 3))).astype("float32")
        mask = np.zeros((GLOBAL_BATCH, IMAGE_SIZE, IMAGE_SIZE, 1), "float32")
        bbox = np.zeros((GLOBAL_BATCH, 4), "int32")
        for i in range(GLOBAL_BATCH):
            top, left = rng.integers(0, IMAGE_SIZE - half + 1, size=2)
            bbox[i] = (top, left, half, half)
            mask[i, top + 2 : top + half - 2, left + 3 : left + half - 1] = 1.0
        result.append({"image": image, "mask": mask, "bbox": bbox})
    return result


def dataset():
    import tensorflow as tf

    items = batches()
    return tf.data.Dataset.from_tensor_slices({key: np.stack([b[key] for b in items]) for key in items[0]})


def network_weight_names(trainer):
    return [v.path for v in trainer.generator.weights + trainer.discriminator.weights]


def network_weights(trainer):
    return [np.asarray(v) for v in trainer.generator.weights + trainer.discriminator.weights]


def with_sgd(trainer, strategy, g_learning_rate=1e-4, d_learning_rate=1.0):
    """Recompiles with plain SGD, whose update is linear in the gradient.

    Adam divides each gradient component by its magnitude, so it turns the float noise in the
    mathematically zero gradients of the biases in front of InstanceNorm / BatchNorm (which affect
    no output) into steps of the size of the learning rate, and a weight comparison would measure
    that noise instead of the distribution arithmetic. The rates make both networks' weights move
    by much more than the tolerance of the comparison (D's gradients are small at initialisation).
    """
    import keras

    with strategy.scope():
        trainer.compile(
            g_optimizer=keras.optimizers.SGD(g_learning_rate), d_optimizer=keras.optimizers.SGD(d_learning_rate)
        )
        trainer.build_optimizers()
    return trainer


def mirrored(out_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from dmfn_tf.training.distribute import fit, make_strategy
    from dmfn_tf.training.trainer import build_trainer

    cfg = tiny_config()
    keras.utils.set_random_seed(0)
    single = with_sgd(build_trainer(cfg), tf.distribute.get_strategy())
    strategy = make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    replicated = with_sgd(build_trainer(cfg, strategy), strategy)
    for name in ("generator", "discriminator", "perceptual"):
        getattr(replicated, name).set_weights(getattr(single, name).get_weights())
    initial = network_weights(single)

    logs = {}
    for label, trainer in (("single", single), ("mirrored", replicated)):
        history = fit(trainer, dataset(), epochs=1, steps_per_epoch=STEPS, verbose=0)
        logs[label] = json.dumps({k: v[-1] for k, v in history.history.items()})
    np.savez(
        out_path,
        replicas=strategy.num_replicas_in_sync,
        names=network_weight_names(single),
        logs_single=logs["single"],
        logs_mirrored=logs["mirrored"],
        **{f"initial_{i}": w for i, w in enumerate(initial)},
        **{f"single_{i}": w for i, w in enumerate(network_weights(single))},
        **{f"mirrored_{i}": w for i, w in enumerate(network_weights(replicated))},
    )


def worker(index, ports, out_path):
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports.split(",")]},
            "task": {"type": "worker", "index": int(index)},
        }
    )
    import keras

    from dmfn_tf.training.distribute import fit, make_strategy
    from dmfn_tf.training.trainer import build_trainer

    strategy = make_strategy("multi_worker")
    # Different seeds per worker: the strategy must broadcast worker 0's initial values.
    keras.utils.set_random_seed(int(index))
    trainer = build_trainer(tiny_config(), strategy)
    initial = network_weights(trainer)
    history = fit(trainer, dataset().repeat(), epochs=2, steps_per_epoch=1, verbose=0)
    np.savez(
        out_path,
        replicas=strategy.num_replicas_in_sync,
        logs=json.dumps(history.history),
        **{f"initial_{i}": w for i, w in enumerate(initial)},
        **{f"final_{i}": w for i, w in enumerate(network_weights(trainer))},
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"mirrored": mirrored, "worker": worker}[command](*args)
