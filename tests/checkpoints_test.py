"""Atomic training checkpoints: round trip, crashes while writing, keep-last-K, architecture mismatch."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.models.generator import build_generator
from dmfn_tf.training import checkpoints
from dmfn_tf.training.checkpoints import (
    CheckpointError,
    TrainingCheckpointer,
    is_chief,
    list_checkpoints,
    read_latest,
)
from dmfn_tf.model_io import save_model_atomically

IMAGE_SIZE = 64


class Parts:
    """A tiny generator and discriminator with their Adam optimizers, as a trainer holds them."""

    def __init__(self, nf=4, n_blocks=1, seed=0):
        keras.utils.set_random_seed(seed)
        self.generator = build_generator(nf=nf, n_blocks=n_blocks)
        self.discriminator = build_discriminator(nf=nf, image_size=IMAGE_SIZE)
        self.g_optimizer = keras.optimizers.Adam(1e-3, beta_1=0.5)
        self.d_optimizer = keras.optimizers.Adam(1e-3, beta_1=0.5)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def checkpointer(self, directory, keep=3):
        return TrainingCheckpointer(
            directory, self.generator, self.discriminator, self.g_optimizer, self.d_optimizer, keep=keep
        )

    def variables(self):
        return (
            self.generator.weights
            + self.discriminator.weights  # BatchNorm moving statistics included
            + self.g_optimizer.variables
            + self.d_optimizer.variables
        )

    def snapshot(self):
        return [np.array(v.numpy()) for v in self.variables()]

    def train_once(self):
        """One real update of each network, so that the Adam moments and BatchNorm statistics move."""
        images = tf.random.uniform((2, IMAGE_SIZE, IMAGE_SIZE, 3), -1.0, 1.0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(self.generator(tf.concat([images, images[..., :1]], -1), training=True)))
        grads = tape.gradient(loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        with tf.GradientTape() as tape:
            logit, _ = self.discriminator([images[:, : IMAGE_SIZE // 2, : IMAGE_SIZE // 2], images], training=True)
            loss = tf.reduce_mean(logit)
        grads = tape.gradient(loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

    def scramble(self):
        for variable in self.variables():
            variable.assign(tf.cast(tf.random.uniform(variable.shape, 5.0, 6.0), variable.dtype))


def assert_same(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


@pytest.fixture(scope="module")
def parts():
    return Parts()


def test_round_trip_restores_weights_optimizer_state_and_step(parts, tmp_path):
    parts.train_once()
    saved = parts.snapshot()
    assert int(parts.g_optimizer.iterations) >= 1
    checkpointer = parts.checkpointer(tmp_path)
    path = checkpointer.save(step=5)

    assert os.path.basename(path) == "ckpt-00000005"
    assert read_latest(tmp_path) == {"step": 5, "checkpoint": "ckpt-00000005"}
    parts.scramble()
    assert not np.array_equal(parts.snapshot()[0], saved[0])
    assert checkpointer.restore() == 5
    assert_same(parts.snapshot(), saved)


def test_checkpoint_holds_every_variable_by_tensorflow_reader(parts, tmp_path):
    """Independent of our restore: TF's reader sees one saved tensor per variable, the step and the clock among them."""
    checkpointer = parts.checkpointer(tmp_path)
    path = checkpointer.save(step=3)
    reader = tf.train.load_checkpoint(os.path.join(path, checkpoints.CHECKPOINT_PREFIX))
    shapes = reader.get_variable_to_shape_map()
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    saved_sizes = sorted(int(np.prod(s)) for k, s in shapes.items() if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
    own_sizes = sorted([int(np.prod(v.shape)) for v in parts.variables()] + [1, 2])  # + the step and the clock
    assert saved_sizes == own_sizes
    cpu_seconds, wall_seconds = reader.get_tensor("clock/.ATTRIBUTES/VARIABLE_VALUE")
    assert 0 < cpu_seconds and 0 < wall_seconds


def _crash_in_tensorflow_write(monkeypatch, checkpointer):
    """The process dies half-way through writing the tensors: a truncated data file, then an error."""
    real_write = checkpointer._checkpoint.write

    def write_half(prefix):
        real_write(prefix)
        data_file = next(f for f in os.listdir(os.path.dirname(prefix)) if ".data-" in f)
        with open(os.path.join(os.path.dirname(prefix), data_file), "r+b") as f:
            f.truncate(os.path.getsize(f.name) // 2)
        raise OSError("simulated crash while writing the checkpoint")

    monkeypatch.setattr(checkpointer._checkpoint, "write", write_half)


def _crash_at_rename(monkeypatch, checkpointer):
    real_replace = os.replace

    def replace(source, destination):
        if os.path.isdir(source):
            raise OSError("simulated crash at the rename")
        real_replace(source, destination)

    monkeypatch.setattr(checkpoints.os, "replace", replace)


def _crash_while_writing_pointer(monkeypatch, checkpointer):
    real_fsync = os.fsync

    def fsync(descriptor):
        if os.readlink(f"/proc/self/fd/{descriptor}").split(os.sep)[-1].startswith(f".{checkpoints.LATEST_FILE}"):
            raise OSError("simulated crash while writing latest.json")
        real_fsync(descriptor)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to recognise the pointer file's descriptor")
    monkeypatch.setattr(checkpoints.os, "fsync", fsync)


@pytest.mark.parametrize("crash", [_crash_in_tensorflow_write, _crash_at_rename, _crash_while_writing_pointer])
def test_crash_while_saving_keeps_previous_latest_checkpoint(parts, tmp_path, monkeypatch, crash):
    checkpointer = parts.checkpointer(tmp_path)
    checkpointer.save(step=1)
    good = parts.snapshot()
    parts.train_once()
    crash(monkeypatch, checkpointer)
    with pytest.raises(OSError, match="simulated crash"):
        checkpointer.save(step=2)
    monkeypatch.undo()

    assert read_latest(tmp_path)["step"] == 1
    assert not any(name.startswith(f".{checkpoints.LATEST_FILE}") for name in os.listdir(tmp_path))
    # A fresh process (a new checkpointer) restores the previous checkpoint, bit for bit.
    parts.scramble()
    fresh = parts.checkpointer(tmp_path)
    assert fresh.restore() == 1
    assert_same(parts.snapshot(), good)
    assert [step for step, _ in list_checkpoints(tmp_path)] in ([1], [1, 2])


def test_leftover_temporary_directory_is_ignored_and_cleaned(parts, tmp_path):
    checkpointer = parts.checkpointer(tmp_path)
    checkpointer.save(step=4)
    leftover = tmp_path / ".ckpt-tmp-killed"
    leftover.mkdir()
    (leftover / "ckpt.index").write_bytes(b"partial")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [4]
    parts.checkpointer(tmp_path)
    assert not leftover.exists()


def test_keeps_only_the_last_k_checkpoints(parts, tmp_path):
    checkpointer = parts.checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30, 40):
        checkpointer.save(step)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [30, 40]
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000030", "ckpt-00000040", "latest.json"]
    assert checkpointer.latest_step() == 40
    assert checkpointer.restore(os.path.join(tmp_path, "ckpt-00000030")) == 30


def test_restore_without_checkpoint_is_a_clear_error(parts, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to restore"):
        parts.checkpointer(tmp_path).restore()


def test_restore_into_another_architecture_is_refused(parts, tmp_path):
    parts.checkpointer(tmp_path).save(step=7)
    other = Parts(nf=4, n_blocks=2)
    with pytest.raises(CheckpointError, match="does not match the configured model"):
        other.checkpointer(tmp_path).restore()


def test_unreadable_pointer_is_a_clear_error(parts, tmp_path):
    (tmp_path / checkpoints.LATEST_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="latest.json: unreadable"):
        read_latest(tmp_path)
    (tmp_path / checkpoints.LATEST_FILE).write_text(json.dumps({"step": 9, "checkpoint": "ckpt-00000009"}))
    with pytest.raises(CheckpointError, match="missing or incomplete"):
        parts.checkpointer(tmp_path).restore()


def test_generator_file_survives_a_crash_while_saving(parts, tmp_path, monkeypatch):
    path = tmp_path / "generator.keras"
    save_model_atomically(parts.generator, path)
    expected = [w.numpy() for w in parts.generator.weights]

    def save_half(filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a zip file")
        raise OSError("simulated crash while saving the model")

    monkeypatch.setattr(parts.generator, "save", save_half)
    with pytest.raises(OSError, match="simulated crash"):
        save_model_atomically(parts.generator, path)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["generator.keras"]
    loaded = keras.saving.load_model(path)
    assert_same([w.numpy() for w in loaded.weights], expected)


def test_only_the_chief_worker_owns_the_files():
    def resolver(task_type, task_id, jobs):
        cluster = {job: [f"host{i}:1" for i in range(2)] for job in jobs}
        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
        )

    class Strategy:
        def __init__(self, cluster_resolver):
            self.cluster_resolver = cluster_resolver

    assert is_chief(None)
    assert is_chief(tf.distribute.get_strategy())
    assert is_chief(Strategy(resolver("worker", 0, ["worker"])))
    assert not is_chief(Strategy(resolver("worker", 1, ["worker"])))
    assert is_chief(Strategy(resolver("chief", 0, ["chief", "worker"])))
    assert not is_chief(Strategy(resolver("worker", 0, ["chief", "worker"])))


def test_truncated_checkpoint_data_is_a_one_line_checkpoint_error(parts, tmp_path):
    path = parts.checkpointer(tmp_path).save(step=5)
    (data_file,) = [name for name in os.listdir(path) if name.startswith("ckpt.data")]
    full = open(os.path.join(path, data_file), "rb").read()
    for size in (len(full) // 2, 10):
        with open(os.path.join(path, data_file), "wb") as f:
            f.write(full[:size])
        with pytest.raises(CheckpointError, match="does not match the configured model or is damaged") as raised:
            parts.checkpointer(tmp_path).restore()
        assert "\n" not in str(raised.value)


def test_temporary_files_of_a_killed_write_are_removed_at_the_next_start(parts, tmp_path):
    import subprocess
    import sys

    # A process killed (SIGKILL) inside the pointer's atomic write leaves its temporary file behind.
    script = (
        "import os, sys\n"
        "from dmfn_tf.atomic_files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as temporary:\n"
        "    open(temporary, 'w').write('{\"step\": 1, \"chec')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / checkpoints.LATEST_FILE)],
                   env=dict(os.environ, PYTHONPATH=os.getcwd()))
    (stale,) = os.listdir(tmp_path)
    assert stale.startswith(f".{checkpoints.LATEST_FILE}.tmp-")
    parts.checkpointer(tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_a_checkpoint_says_whether_it_keeps_the_rate_in_a_variable(tmp_path, tiny_config, precision):
    """Under mixed_float16 the LossScaleOptimizer has a dummy rate variable of its own: the wrapped one decides."""
    import warnings

    from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
    from dmfn_tf.training.checkpoints import keeps_rate_variable
    from dmfn_tf.training.trainer import build_trainer

    assert keeps_rate_variable(tmp_path / "none")  # a new run
    for rate_variable in (True, False):
        keras.mixed_precision.set_global_policy(precision)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
                trainer = build_trainer(tiny_config(lr_decay_steps=[5]), rate_variable=rate_variable)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        directory = tmp_path / f"{precision}_{rate_variable}"
        TrainingCheckpointer(directory, trainer.generator, trainer.discriminator, trainer.g_optimizer,
                             trainer.d_optimizer).save(step=1)
        assert keeps_rate_variable(directory) == rate_variable
