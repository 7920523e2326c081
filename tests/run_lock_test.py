"""One training process per run folder: the second gets one line and exit 2; a crash never leaves it locked (issue 19)."""

import os
import signal
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT
from dmfn_tf.cli import main
from dmfn_tf.training.run_lock import LOCK_FILE, RunLocked, hold_run_lock, lock_file_name

HOLDER = """
import sys
from dmfn_tf.training.run_lock import hold_run_lock
with hold_run_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def _holder(directory):
    """A separate process holding the run folder's lock until its stdin is closed."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_holder_is_refused_and_the_lock_is_released_after(tmp_path):
    run = tmp_path / "run"
    with hold_run_lock(run) as path:
        assert path == str(run / LOCK_FILE) and open(path).read().strip() == str(os.getpid())
        with pytest.raises(RunLocked, match=f"{run}: another process .process {os.getpid()}. is training in this run folder"):
            with hold_run_lock(run):
                pass
    with hold_run_lock(run):  # released at the end of the block
        pass


def test_a_second_dmfn_train_on_the_same_out_is_one_line_and_exit_2(tmp_path, training_photos, capsys):
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        code = main(["train", "--config", str(PROJECT_ROOT / "configs" / "tiny.yaml"), "--data", str(training_photos),
                     "--out", str(run), "--steps", "1"])
    finally:
        holder.communicate("\n", timeout=60)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err == (f"dmfn train: error: {run}: another process (process {holder.pid}) is training in this run "
                   "folder; wait for it to finish or choose another --out")
    assert os.listdir(run) == [LOCK_FILE]  # nothing of the second run was written


def test_a_killed_holder_leaves_no_lock(tmp_path):
    run = tmp_path / "run"
    holder = _holder(run)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    with hold_run_lock(run):
        pass


def test_multi_worker_tasks_lock_files_of_their_own(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert lock_file_name("multi_worker") == ".lock-worker-1"
    assert lock_file_name("default") == LOCK_FILE
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}')
    assert lock_file_name("multi_worker") == LOCK_FILE
