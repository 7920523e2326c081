"""Fault tolerance: a training process killed with SIGKILL mid-epoch, then resumed, ends exactly where an
uninterrupted run ends."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.training.checkpoints import CHECKPOINT_PREFIX, list_checkpoints, read_latest
from dmfn_tf.training.run import epoch_segments

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TOTAL_STEPS = 8
STEPS_PER_EPOCH = 5
CHECKPOINT_EVERY = 3  # the first checkpoint (step 3) falls in the middle of the first epoch
# Wall-clock limits of the subprocesses, generous for a loaded 2-core machine.
RUN_TIMEOUT_S = 240


def write_images(folder, count=6, seed=1):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for i in range(count):
        height, width = 64 + 8 * (i % 2), 70 + 6 * i
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        phases = rng.uniform(0, 2 * np.pi, 3)
        image = np.stack([np.sin(7 * x + phases[0]), np.cos(3 * y + phases[1]), np.sin(5 * (x - y) + phases[2])], -1)
        Image.fromarray(((image + 1) * 127.5).astype(np.uint8)).save(folder / f"photo_{i}.png")
    return folder


def train_command(images, out, *extra):
    return [
        sys.executable, "-m", "dmfn_tf", "train", "--config", str(PROJECT_ROOT / "configs" / "tiny.yaml"),
        "--data", str(images), "--out", str(out), "--steps", str(TOTAL_STEPS),
        "--set", "train.deterministic=true",
        "--set", f"train.steps_per_epoch={STEPS_PER_EPOCH}",
        "--set", f"train.checkpoint_every={CHECKPOINT_EVERY}",
        *extra,
    ]  # fmt: skip


def run_to_completion(command):
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def final_checkpoint_tensors(out):
    """Every tensor of the last checkpoint, read with TensorFlow's own reader: G, D, both optimizers, step."""
    (step, path), *_ = reversed(list_checkpoints(out / "checkpoints"))
    assert step == TOTAL_STEPS == read_latest(out / "checkpoints")["step"]
    reader = tf.train.load_checkpoint(os.path.join(path, CHECKPOINT_PREFIX))
    names = [name for name in reader.get_variable_to_shape_map() if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    return {name: reader.get_tensor(name) for name in names}


@pytest.mark.parametrize(
    "start, total, per_epoch, expected",
    [
        (0, 8, 5, [(0, 2, 5, 0)]),
        (3, 8, 5, [(0, 1, 2, 3), (1, 2, 5, 5)]),
        (5, 15, 5, [(1, 3, 5, 5)]),
        (7, 23, 5, [(1, 2, 3, 7), (2, 5, 5, 10)]),
        (2, 4, 10, [(0, 1, 2, 2)]),
        (8, 8, 5, []),
    ],
)
def test_epoch_segments_cover_the_remaining_steps_once(start, total, per_epoch, expected):
    segments = epoch_segments(start, total, per_epoch)
    assert segments == expected
    # `StopAtStep` ends the last call at `total`.
    covered = [
        step
        for initial, epochs, steps, first in segments
        for step in range(first, min(first + (epochs - initial) * steps, total))
    ]
    assert covered == list(range(start, total))
    # Epochs fall where an uninterrupted run has them: every full-length call starts at a boundary.
    assert all(first == initial * per_epoch for initial, _, steps, first in segments if steps == per_epoch)


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    images = write_images(tmp_path / "photos")
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"

    run_to_completion(train_command(images, uninterrupted))

    process = subprocess.Popen(
        train_command(images, interrupted), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while read_latest(interrupted / "checkpoints") is None:
            assert process.poll() is None, "the training process ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = read_latest(interrupted / "checkpoints")["step"]
    assert killed_at < TOTAL_STEPS, "the process finished before it could be killed"

    resumed = run_to_completion(train_command(images, interrupted, "--resume"))
    assert f"Resuming {interrupted} from step {killed_at} of {TOTAL_STEPS}" in resumed.stdout

    expected = final_checkpoint_tensors(uninterrupted)
    actual = final_checkpoint_tensors(interrupted)
    assert sorted(actual) == sorted(expected)
    # What must be there for an exact resume: the step, one G and one D update per step, BatchNorm statistics.
    assert expected["step/.ATTRIBUTES/VARIABLE_VALUE"] == TOTAL_STEPS
    for optimizer in ("g_optimizer", "d_optimizer"):
        assert expected[f"{optimizer}/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == TOTAL_STEPS
    assert any("moving_mean" in name for name in expected)
    worst = 0.0
    for name, value in expected.items():
        if np.issubdtype(value.dtype, np.floating):
            worst = max(worst, float(np.max(np.abs(actual[name] - value), initial=0.0)))
        else:
            np.testing.assert_array_equal(actual[name], value, err_msg=name)
    print(f"killed after the checkpoint of step {killed_at}; max |difference| of all saved tensors: {worst:g}")
    assert worst <= 1e-6
