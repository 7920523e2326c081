"""Tests of `dmfn_tf.training.distribute`: strategies, and training under them.

The data-parallel runs happen in subprocesses (`tests/distribute_helper.py`): logical CPU devices
must be configured before TensorFlow initialises, and each worker of a multi-worker strategy is
its own process.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.errors import ConfigError, UserError
from dmfn_tf.training import distribute
from dmfn_tf.training.distribute import StrategyError, custom_loop_fit, fit, make_strategy
from dmfn_tf.training.trainer import train_metric_names

HELPER = os.path.join(os.path.dirname(__file__), "distribute_helper.py")
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300
TOLERANCE = 1e-5

sys.path.insert(0, os.path.dirname(__file__))
import distribute_helper  # noqa: E402  (the helper's tiny configuration and batches)


def helper_environment():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    env.pop("TF_CONFIG", None)
    return env


def weights(archive, prefix):
    count = len([key for key in archive.files if key.startswith(f"{prefix}_")])
    return [archive[f"{prefix}_{i}"] for i in range(count)]


def max_difference(first, second):
    assert len(first) == len(second) > 0
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_mirrored_step_equals_one_device_step_on_the_global_batch(tmp_path):
    out = tmp_path / "mirrored.npz"
    result = subprocess.run(
        [sys.executable, HELPER, "mirrored", str(out)],
        cwd=PROJECT_ROOT,
        env=helper_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    archive = np.load(out)
    assert int(archive["replicas"]) == 2
    initial, single, mirrored = weights(archive, "initial"), weights(archive, "single"), weights(archive, "mirrored")
    names = list(archive["names"])
    # Both runs trained: every kernel moved by far more than the tolerance ...
    kernels = [i for i, name in enumerate(names) if name.endswith("kernel")]
    assert min(float(np.max(np.abs(single[i] - initial[i]))) for i in kernels) > 50 * TOLERANCE
    # ... and ended with the same generator and discriminator (moving statistics included).
    assert max_difference(single, mirrored) <= TOLERANCE
    logs_single, logs_mirrored = json.loads(str(archive["logs_single"])), json.loads(str(archive["logs_mirrored"]))
    assert set(logs_single) == set(train_metric_names())
    for name in train_metric_names():
        assert logs_mirrored[name] == pytest.approx(logs_single[name], rel=1e-5), name


def test_two_workers_train_to_identical_weights(tmp_path):
    ports = ",".join(str(port) for port in free_ports(2))
    outputs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, HELPER, "worker", str(i), ports, str(outputs[i])],
            cwd=PROJECT_ROOT,
            env=helper_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errors = [worker.communicate(timeout=TIMEOUT_S)[1] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, error in zip(workers, errors):
        assert worker.returncode == 0, error[-4000:]

    first, second = np.load(outputs[0]), np.load(outputs[1])
    assert int(first["replicas"]) == 2
    # Seeded differently, the workers start from worker 0's values, train, and stay identical.
    assert max_difference(weights(first, "initial"), weights(second, "initial")) == 0.0
    assert max_difference(weights(first, "final"), weights(second, "final")) <= TOLERANCE
    assert max_difference(weights(first, "initial"), weights(first, "final")) > 50 * TOLERANCE
    history = json.loads(str(first["logs"]))
    assert history == json.loads(str(second["logs"]))
    assert set(history) == set(train_metric_names()) and all(len(v) == 2 for v in history.values())


class RecordingCallback(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(f"batch_begin {batch}")

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(f"batch_end {batch} {sorted(logs) == sorted(train_metric_names())}")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch} {sorted(logs) == sorted(train_metric_names())}")

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_custom_loop_matches_keras_fit_and_drives_callbacks_the_same_way(tiny_trainer):
    runs = {}
    for label, train in (("keras", fit), ("custom", custom_loop_fit)):
        trainer = tiny_trainer(seed=3, batch_size=distribute_helper.GLOBAL_BATCH)
        recorder = RecordingCallback()
        history = train(
            trainer, distribute_helper.dataset().repeat(), epochs=3, steps_per_epoch=2, initial_epoch=1,
            callbacks=[recorder], verbose=0,
        )
        runs[label] = (history.history, recorder.events, distribute_helper.network_weights(trainer))

    keras_history, keras_events, keras_weights = runs["keras"]
    custom_history, custom_events, custom_weights = runs["custom"]
    assert custom_events == keras_events
    assert keras_events == [
        "train_begin",
        "epoch_begin 1", "batch_begin 0", "batch_end 0 True", "batch_begin 1", "batch_end 1 True", "epoch_end 1 True",
        "epoch_begin 2", "batch_begin 0", "batch_end 0 True", "batch_begin 1", "batch_end 1 True", "epoch_end 2 True",
        "train_end",
    ]
    assert set(custom_history) == set(keras_history) == set(train_metric_names())
    for name in train_metric_names():
        np.testing.assert_allclose(custom_history[name], keras_history[name], rtol=1e-5, err_msg=name)
    assert max_difference(keras_weights, custom_weights) <= TOLERANCE


def test_make_strategy_default_and_unknown_names():
    assert make_strategy("default") is tf.distribute.get_strategy()
    assert not distribute.is_multi_worker(make_strategy("default"))
    with pytest.raises(ConfigError, match="unknown strategy 'horovod'"):
        make_strategy("horovod")
    with pytest.raises(ConfigError, match="only be given for 'mirrored'"):
        make_strategy("default", devices=["/cpu:0"])


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "no 'task'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "does not name an entry"),
    ],
)
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(StrategyError, match=message) as raised:
        make_strategy("multi_worker")
    assert isinstance(raised.value, UserError)
