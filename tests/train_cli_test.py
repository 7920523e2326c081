"""`dmfn train` (`dmfn_tf.cli.train`): the command line reaches the configuration the run records;
bad values and refused run directories are one-line errors with exit code 2."""

import pathlib
import subprocess
import sys

import pytest

from dmfn_tf.cli import main
from dmfn_tf.config import load_config, save_config
from dmfn_tf.training import run as run_module
from dmfn_tf.training.checkpoints import read_latest
from dmfn_tf.training.run_directory import RunDirectory

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_CONFIG = PROJECT_ROOT / "configs" / "tiny.yaml"
FINISHED_STEP = 4


def train_args(images, out, *extra):
    return ["train", "--config", str(TINY_CONFIG), "--data", str(images), "--out", str(out), *extra]


def only_error_line(capsys):
    """The one line `dmfn train` wrote to stderr (and asserts it wrote nothing else)."""
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dmfn train: ")
    return line


@pytest.fixture
def finished_run(tmp_path, training_photos):
    """A run directory as a finished tiny run leaves it, as far as the refusals read it: config and pointer."""
    run = RunDirectory(tmp_path / "tiny")
    save_config(load_config(TINY_CONFIG, {"data.path": str(training_photos)}), run.config_path)
    pathlib.Path(run.checkpoint_dir).mkdir()
    pathlib.Path(run.checkpoint_dir, "latest.json").write_text(
        f'{{"step": {FINISHED_STEP}, "checkpoint": "ckpt-{FINISHED_STEP:08d}"}}'
    )
    return pathlib.Path(run.path)


def test_command_line_values_reach_the_recorded_config_and_the_strategy_used(tmp_path, training_photos, monkeypatch):
    used = []
    real_make_strategy = run_module.make_strategy

    def recording_make_strategy(name, *args, **kwargs):
        strategy = real_make_strategy(name, *args, **kwargs)
        used.append((name, type(strategy).__name__))
        return strategy

    monkeypatch.setattr(run_module, "make_strategy", recording_make_strategy)
    out = tmp_path / "run"
    args = train_args(
        training_photos, out, "--steps", "1", "--strategy", "mirrored", "--set", "train.strategy=default",
        "--set", "train.checkpoint_every=1", "--set", "model.n_blocks=1",
    )  # fmt: skip
    assert main(args) == 0
    assert used == [("mirrored", "MirroredStrategy")]
    recorded = load_config(out / "config.yaml")
    assert recorded.train.strategy == "mirrored"  # --strategy wins over --set, as the run used it
    assert (recorded.train.total_steps, recorded.train.checkpoint_every) == (1, 1)
    assert (recorded.model.n_blocks, recorded.data.path) == (1, str(training_photos))
    assert read_latest(out / "checkpoints")["step"] == 1


def test_existing_run_is_not_overwritten_without_resume(finished_run, training_photos, capsys):
    before = (finished_run / "config.yaml").read_text()
    assert main(train_args(training_photos, finished_run, "--steps", "6")) == 2
    line = only_error_line(capsys)
    assert "already holds a training run" in line and "--resume" in line
    assert (finished_run / "config.yaml").read_text() == before
    assert read_latest(finished_run / "checkpoints")["step"] == FINISHED_STEP


def test_resume_with_another_architecture_names_the_changed_key(finished_run, training_photos, capsys):
    args = train_args(training_photos, finished_run, "--resume", "--set", "model.n_blocks=3")
    assert main(args) == 2
    assert "model.n_blocks (2 -> 3)" in only_error_line(capsys)


@pytest.mark.parametrize(
    "assignment, named",
    [
        ("model.nff=8", "model.nff"),
        ("model.nf=eight", "model.nf"),
        ("train.total_steps", "key=value"),
        ("train.lr_decay_steps=[1, x]", "train.lr_decay_steps[1]"),
        ("train.learning_rate=.nan", "train.learning_rate"),
        ("train.beta_1=7", "train.beta_1"),
        ("model.nf=*a", "anchors and aliases"),
    ],
)
def test_bad_set_override_is_a_one_line_error(tmp_path, training_photos, capsys, assignment, named):
    args = train_args(training_photos, tmp_path / "run", "--set", assignment)
    assert main(args) == 2
    assert named in only_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_bad_set_value_exits_2_with_one_line_from_the_command(tmp_path, training_photos):
    args = train_args(training_photos, tmp_path / "run", "--set", "train.lr_decay_steps=[1, x]")
    result = subprocess.run(
        [sys.executable, "-m", "dmfn_tf", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dmfn train: error: {TINY_CONFIG} + command line: key 'train.lr_decay_steps[1]' expects int, got str 'x'"
    ]
    assert not (tmp_path / "run").exists()


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert main(train_args(missing, tmp_path / "run")) == 2
    assert str(missing) in only_error_line(capsys)


def _logged_scalars(log_dir, tag):
    """(step, value) of every `tag` scalar in the run's TensorBoard event files."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    found = []
    for path in sorted(pathlib.Path(log_dir).rglob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            found += [(event.step, float(tf.make_ndarray(value.tensor))) for value in event.summary.value
                      if value.tag == tag]
    return found


def test_the_run_ends_with_the_count_of_skipped_files_and_logs_it(tmp_path, training_photos, capsys):
    import os
    import shutil

    photos = tmp_path / "photos"
    shutil.copytree(training_photos, photos)
    listed = len(os.listdir(photos))
    (photos / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(photos / "fifo.png")
    (photos / "junk.jpg").write_bytes(b"not a photo")
    out = tmp_path / "run"
    assert main(train_args(photos, out, "--steps", "1", "--log-every", "1", "--set", "model.n_blocks=1")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"skipped 3 unusable file(s) of {listed + 3} (see the warnings above)" in lines, lines
    assert _logged_scalars(out / "logs", "data/skipped_files") == [(1, 3.0)]
