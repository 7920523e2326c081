"""Tests of `dmfn_tf.training.run_directory`: the layout of a run and the rules for (re)starting one."""

import json
import os
import pathlib

import pytest

from dmfn_tf.config import apply_overrides, load_config
from dmfn_tf.errors import ConfigError, UserError
from dmfn_tf.model_io import GENERATOR_FILE, resolve_generator_path
from dmfn_tf.training.checkpoints import LATEST_FILE
from dmfn_tf.training.run_directory import RESUMABLE_CHANGES, RunDirectory

TINY_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _with_checkpoint(run, step):
    os.makedirs(run.checkpoint_dir, exist_ok=True)
    pathlib.Path(run.checkpoint_dir, LATEST_FILE).write_text(json.dumps({"step": step, "checkpoint": f"ckpt-{step}"}))


def test_layout_paths_and_the_generator_file_model_io_reads(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.path == str(tmp_path / "run")
    assert (run.config_path, run.checkpoint_dir, run.log_dir) == tuple(
        str(tmp_path / "run" / name) for name in ("config.yaml", "checkpoints", "logs")
    )
    assert run.generator_path == str(tmp_path / "run" / GENERATOR_FILE)
    assert not os.path.exists(run.path)  # nothing is created until written
    pathlib.Path(run.path).mkdir()
    pathlib.Path(run.generator_path).write_bytes(b"")
    assert resolve_generator_path(run.path) == run.generator_path


def test_config_is_saved_atomically_and_reads_back_equal(tmp_path):
    run = RunDirectory(tmp_path / "new" / "run")
    cfg = load_config(TINY_CONFIG, {"train.lr_decay_steps": [3, 7], "loss.mu_adv": 0.5})
    run.save_config(cfg)
    assert load_config(run.config_path) == cfg
    assert os.listdir(run.path) == ["config.yaml"]  # no temporary file left beside it


def test_latest_step_reads_the_checkpoint_pointer(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.latest_step() == 0
    _with_checkpoint(run, 12)
    assert run.latest_step() == 12


def test_a_fresh_directory_can_always_start(tmp_path):
    cfg = load_config(TINY_CONFIG)
    for resume in (False, True):
        RunDirectory(tmp_path / "fresh").check_can_start(cfg, resume)


def test_a_run_is_refused_without_resume_and_with_a_changed_computation(tmp_path):
    run = RunDirectory(tmp_path)
    cfg = load_config(TINY_CONFIG)
    run.save_config(cfg)
    _with_checkpoint(run, 5)
    with pytest.raises(UserError, match="already holds a training run; pass --resume"):
        run.check_can_start(cfg, resume=False)
    run.check_can_start(cfg, resume=True)

    # Every key not listed as resumable is refused, and named with both values.
    for key, value in (("model.nf", 16), ("loss.mu_adv", 0.5), ("train.beta_1", 0.9), ("data.mask", "free_form")):
        assert key not in RESUMABLE_CHANGES
        with pytest.raises(ConfigError, match=rf"differs from .*config\.yaml in {key} \(.* -> {value!r}\)"):
            run.check_can_start(apply_overrides(cfg, {key: value}), resume=True)
    # The run's length, bookkeeping and the data's location may change.
    resumable = {"train.total_steps": 99, "train.strategy": "mirrored", "data.path": "elsewhere", "name": "renamed",
                 "train.learning_rate": 1e-3, "train.lr_decay_steps": [7], "train.lr_decay_factor": 0.1}
    assert set(resumable) <= set(RESUMABLE_CHANGES)
    run.check_can_start(apply_overrides(cfg, resumable), resume=True)


def test_resuming_a_run_that_predates_a_setting_names_the_value_it_continues_with(tmp_path, caplog):
    run = RunDirectory(tmp_path)
    cfg = load_config(TINY_CONFIG)
    run.save_config(cfg)
    _with_checkpoint(run, 5)
    with caplog.at_level("WARNING", logger="dmfn_tf"):
        run.check_can_start(cfg, resume=True)
    assert not caplog.records  # a run saved by this version records every setting
    text = pathlib.Path(run.config_path).read_text()
    pathlib.Path(run.config_path).write_text(text.replace("  adam_epsilon: 1.0e-08\n", ""))
    assert "adam_epsilon" not in pathlib.Path(run.config_path).read_text().replace("adam_epsilon_convention", "")
    with caplog.at_level("WARNING", logger="dmfn_tf"):
        run.check_can_start(cfg, resume=True)
    assert "does not record train.adam_epsilon=1e-08" in caplog.text
