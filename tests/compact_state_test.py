"""The compact training state (dmfn_tf.training.compact_state): export, import, resume."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.config import load_config
from dmfn_tf.training.checkpoints import CHECKPOINT_PREFIX, read_latest
from dmfn_tf.training.compact_state import CompactStateError, export_compact_state, import_compact_state
from dmfn_tf.training.run import train

TINY_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _config(photos, steps):
    return load_config(TINY_CONFIG, {"data.path": str(photos), "train.total_steps": steps, "train.checkpoint_every": 2,
                                     "train.image_log_every": 100, "train.ema_momentum": 0.5})


def _tensors(run):
    latest = read_latest(run / "checkpoints")
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / latest["checkpoint"] / CHECKPOINT_PREFIX))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map() if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, training_photos):
    run = tmp_path_factory.mktemp("compact") / "run"
    train(_config(training_photos, 4), run, verbose=0)
    return run


def test_the_state_restores_the_generator_exactly_and_the_discriminator_in_float16(trained_run, tmp_path):
    state = tmp_path / "state.npz"
    summary = export_compact_state(trained_run, state)
    assert summary["step"] == 4 and summary["bytes"] == state.stat().st_size
    assert import_compact_state(state, tmp_path / "copy") == 4
    original, copy = _tensors(trained_run), _tensors(tmp_path / "copy")
    assert sorted(original) == sorted(copy)
    d_moments = [key for key in original if key.startswith("d_optimizer/_variables/")]
    assert d_moments
    for key, value in original.items():
        if key in d_moments or key.startswith("d_optimizer/_iterations"):
            assert not np.any(copy[key]), key
        elif key.startswith(("d_optimizer/_trainable_variables/", "discriminator/")):
            np.testing.assert_allclose(copy[key], value, rtol=1e-3, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(copy[key], value, err_msg=key)
    from dmfn_tf.model_metadata import home_relative

    assert (tmp_path / "copy" / "config.yaml").read_text() == home_relative((trained_run / "config.yaml").read_text())


def test_an_imported_run_resumes_and_refuses_to_go_back(trained_run, tmp_path, training_photos):
    state = tmp_path / "state.npz"
    export_compact_state(trained_run, state)
    import_compact_state(state, tmp_path / "copy")
    result = train(_config(training_photos, 6), tmp_path / "copy", resume=True, verbose=0)
    assert (result.initial_step, result.final_step) == (4, 6)
    with pytest.raises(CompactStateError, match="already holds step 6"):
        import_compact_state(state, tmp_path / "copy")


def test_the_validation_curve_travels_with_the_state_and_never_overwrites_a_newer_one(trained_run, tmp_path):
    curve = "step,p128_lpips\n2,0.31\n4,0.29\n"
    (trained_run / "validation.csv").write_text(curve)
    try:
        state = tmp_path / "state.npz"
        export_compact_state(trained_run, state)
    finally:
        (trained_run / "validation.csv").unlink()
    import_compact_state(state, tmp_path / "copy")
    assert (tmp_path / "copy" / "validation.csv").read_text() == curve
    assert not (tmp_path / "copy" / "validation_sets.json").exists()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "validation.csv").write_text(curve + "6,0.28\n")
    import_compact_state(state, newer)
    assert (newer / "validation.csv").read_text().endswith("6,0.28\n")


def test_a_damaged_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "state.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CompactStateError, match="state.npz: not a compact training state"):
        import_compact_state(bad, tmp_path / "run")
