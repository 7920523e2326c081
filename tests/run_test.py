"""Tests of `dmfn_tf.training.run`: the run directory a training run fills, its logs, non-finite
losses, and a run killed with SIGKILL mid-epoch then resumed, which ends exactly where an
uninterrupted run ends."""

import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image
from tensorflow.core.util import event_pb2

from dmfn_tf.config import apply_overrides, load_config, save_config
from dmfn_tf.data import build_dataset
from dmfn_tf.errors import UserError
from dmfn_tf.models.losses import GENERATOR_LOSS_TERMS, generator_total_loss
from dmfn_tf.training import run as run_module
from dmfn_tf.training.checkpoints import CHECKPOINT_PREFIX, TrainingCheckpointer, list_checkpoints, read_latest
from dmfn_tf.training.run import NonFiniteLossError, epoch_segments, train
from dmfn_tf.training.trainer import build_trainer, train_metric_names

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_CONFIG = PROJECT_ROOT / "configs" / "tiny.yaml"
STEPS = 4
# Keys the run below overrides; every other key of tiny.yaml must reach config.yaml.
OVERRIDDEN = {("train", "total_steps"), ("train", "checkpoint_every"), ("train", "image_log_every")}
# The killed-and-resumed run.
TOTAL_STEPS = 8
STEPS_PER_EPOCH = 5
CHECKPOINT_EVERY = 3  # the first checkpoint (step 3) falls in the middle of the first epoch
# Wall-clock limits of the subprocesses, generous for a loaded 2-core machine.
RUN_TIMEOUT_S = 240


def tiny_run_config(photos, **train):
    """configs/tiny.yaml on `photos`, with `train` keys overridden."""
    return load_config(TINY_CONFIG, {"data.path": str(photos), **{f"train.{k}": v for k, v in train.items()}})


def read_events(log_dir):
    """{tag: {step: tensor value}} from every event file under `log_dir`."""
    values = {}
    for path in pathlib.Path(log_dir).rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = (tf.make_ndarray(value.tensor), value.metadata)
    return values


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, training_photos):
    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = tiny_run_config(training_photos, total_steps=STEPS, checkpoint_every=3, image_log_every=2)
    result = train(cfg, out, log_every=1, verbose=0)
    assert (result.initial_step, result.final_step) == (0, STEPS)
    return out


def test_run_directory_layout_and_resolved_config(run_dir, training_photos):
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "checkpoints", "config.yaml", "generator.keras", "logs"]
    # Saved at step 3 (checkpoint_every) and at the end of the run.
    assert [step for step, _ in list_checkpoints(run_dir / "checkpoints")] == [3, STEPS]
    assert read_latest(run_dir / "checkpoints")["step"] == STEPS

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    tiny = yaml.safe_load(TINY_CONFIG.read_text())
    for section, values in tiny.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if (section, key) not in OVERRIDDEN:
                    assert saved[section][key] == value, f"{section}.{key}"
    assert saved["train"]["total_steps"] == STEPS
    assert saved["train"]["checkpoint_every"] == 3
    assert saved["train"]["image_log_every"] == 2
    assert saved["data"]["path"] == str(training_photos)
    assert load_config(run_dir / "config.yaml").model.nf == 8


def test_scalars_of_every_loss_term_and_learning_rates(run_dir):
    events = read_events(run_dir / "logs")
    cfg = load_config(run_dir / "config.yaml")
    for metric in train_metric_names():
        assert sorted(events[f"train/{metric}"]) == list(range(1, STEPS + 1)), metric
    for step in range(1, STEPS + 1):
        logged = {metric: float(events[f"train/{metric}"][step][0]) for metric in train_metric_names()}
        assert all(np.isfinite(list(logged.values())))
        # The logged terms are the right ones: the total is their weighted sum. Running means are
        # linear, so this holds for Keras' epoch averages too.
        terms = {name: logged[name] for name in GENERATOR_LOSS_TERMS}
        np.testing.assert_allclose(logged["g_total"], generator_total_loss(terms, cfg.loss), rtol=1e-5)
        for network in ("generator", "discriminator"):
            value, metadata = events[f"learning_rate/{network}"][step]
            assert metadata.plugin_data.plugin_name == "scalars"
            np.testing.assert_allclose(float(value), cfg.train.learning_rate, rtol=1e-6)


def test_image_summaries_show_masked_input_output_and_target(run_dir):
    events = read_events(run_dir / "logs")
    assert sorted(events["samples"]) == [2, 4]
    record, metadata = events["samples"][4]
    assert metadata.plugin_data.plugin_name == "images"
    width, height = int(record[0]), int(record[1])
    grid = np.asarray(Image.open(io.BytesIO(record[2]))).astype(np.float64)
    cfg = load_config(run_dir / "config.yaml")
    size, rows = cfg.model.image_size, min(4, cfg.train.batch_size)
    assert (height, width) == grid.shape[:2] == (rows * size, 3 * size)

    # The fixed sample batch, rebuilt independently of the callback.
    batch = next(iter(build_dataset(cfg.data, size, rows, seed=cfg.train.seed, repeat=False, training=False)))
    target = (batch["image"].numpy() + 1.0) * 127.5
    hole = batch["mask"].numpy()[..., 0] > 0.5
    for row in range(rows):
        cells = grid[row * size : (row + 1) * size].reshape(size, 3, size, 3).transpose(1, 0, 2, 3)
        masked, output, truth = cells
        np.testing.assert_allclose(truth, target[row], atol=1.0)
        assert np.all(masked[hole[row]] == 255)
        np.testing.assert_allclose(masked[~hole[row]], target[row][~hole[row]], atol=1.0)
        # The output is the composite: the known pixels are the target's.
        np.testing.assert_allclose(output[~hole[row]], target[row][~hole[row]], atol=1.0)


def test_generator_file_is_the_latest_checkpoint_generator(run_dir):
    loaded = keras.saving.load_model(run_dir / "generator.keras")
    trainer = build_trainer(load_config(run_dir / "config.yaml"))
    checkpointer = TrainingCheckpointer(
        run_dir / "checkpoints", trainer.generator, trainer.discriminator, trainer.g_optimizer, trainer.d_optimizer
    )
    assert checkpointer.restore() == STEPS
    assert len(loaded.weights) == len(trainer.generator.weights)
    for saved, restored in zip(loaded.weights, trainer.generator.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    assert loaded(np.zeros((1, 64, 64, 4), np.float32)).shape == (1, 64, 64, 3)


def test_generator_file_describes_the_run(run_dir, monkeypatch):
    from dmfn_tf.inpaint import planner
    from dmfn_tf.cli import main
    from dmfn_tf.model_metadata import read_model_metadata

    metadata = read_model_metadata(str(run_dir / "generator.keras"))
    cfg = load_config(run_dir / "config.yaml")
    assert metadata.trained_size == cfg.model.image_size == 64
    assert metadata.architecture.generator_kwargs() == cfg.model.generator_kwargs()
    assert (metadata.provenance.made_by, metadata.provenance.run, metadata.provenance.step) == ("dmfn train", "tiny", STEPS)
    assert 0 < metadata.provenance.cpu_hours < 1
    assert load_config_text(metadata.provenance.config_yaml) == cfg
    # ... so the run inpaints at its trained size with no flag.
    sizes = []
    check_size = planner.check_size
    monkeypatch.setattr(planner, "check_size",
                        lambda height, width, options, *a, **kw: sizes.append(options.trained_size) or check_size(height, width, options, *a, **kw))
    Image.fromarray(np.zeros((40, 44, 3), np.uint8)).save(run_dir.parent / "photo.png")
    Image.fromarray(np.full((40, 44), 255, np.uint8)).save(run_dir.parent / "mask.png")
    assert main(["inpaint", "--model", str(run_dir), "--image", str(run_dir.parent / "photo.png"),
                 "--mask", str(run_dir.parent / "mask.png"), "--out", str(run_dir.parent / "out")]) == 0
    assert sizes == [64]


def load_config_text(text):
    from dmfn_tf.config import config_from_dict

    return config_from_dict(yaml.safe_load(text))


def test_resume_of_a_finished_run_does_nothing(run_dir, capsys):
    cfg = load_config(run_dir / "config.yaml")
    result = train(cfg, run_dir, resume=True)
    assert (result.initial_step, result.final_step) == (STEPS, STEPS)
    assert f"already trained to step {STEPS}" in capsys.readouterr().out


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, training_photos, monkeypatch):
    poisoned_step_index = 2  # the third update, after the checkpoint of step 2
    real_build_dataset = run_module.build_dataset

    def build_poisoned_dataset(*args, start_step=0, training=True, **kwargs):
        dataset = real_build_dataset(*args, start_step=start_step, training=training, **kwargs)
        if not training:
            return dataset

        def poison(index, batch):
            image = batch["image"]
            bad = tf.equal(start_step + index, poisoned_step_index)
            return {**batch, "image": tf.where(bad, tf.fill(tf.shape(image), np.nan), image)}

        return dataset.enumerate().map(poison)

    monkeypatch.setattr(run_module, "build_dataset", build_poisoned_dataset)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as raised:
        train(tiny_run_config(training_photos, total_steps=6, checkpoint_every=2), out, verbose=0)
    line = str(raised.value)
    assert "non-finite loss at step 3" in line
    assert "g_total" in line and "d_loss" in line
    assert "last good checkpoint (step 2)" in line
    assert read_latest(out / "checkpoints")["step"] == 2
    assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [2]
    generator = keras.saving.load_model(out / "generator.keras")
    assert all(np.all(np.isfinite(w.numpy())) for w in generator.weights)


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


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path, training_photos):
    images = training_photos
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
        if name.startswith("clock/"):  # the training clock measures time, not state: it differs by design
            assert actual[name][0] > 0 and value[0] > 0
            continue
        if np.issubdtype(value.dtype, np.floating):
            worst = max(worst, float(np.max(np.abs(actual[name] - value), initial=0.0)))
        else:
            np.testing.assert_array_equal(actual[name], value, err_msg=name)
    print(f"killed after the checkpoint of step {killed_at}; max |difference| of all saved tensors: {worst:g}")
    assert worst <= 1e-6



def _weights_at_first_fit(monkeypatch):
    """Replaces `fit` by a recorder of the generator's weights when training would begin (no step runs)."""
    seen = []

    def record(trainer, *args, **kwargs):
        seen.append(trainer.generator.get_weights())

    monkeypatch.setattr(run_module, "fit", record)
    return seen


def _assert_same_weights(found, expected):
    assert len(found) == len(expected)
    for a, b in zip(found, expected):
        np.testing.assert_array_equal(a, b)


def test_init_generator_sets_step_zero_weights(tmp_path, training_photos, monkeypatch):
    from dmfn_tf.models.generator import build_generator

    keras.utils.set_random_seed(123)  # weights unlike those the run's own seed draws
    pretrained = build_generator(**load_config(TINY_CONFIG).model.generator_kwargs())
    pretrained.save(tmp_path / "pretrained.keras")
    seen = _weights_at_first_fit(monkeypatch)
    cfg = tiny_run_config(training_photos)
    train(apply_overrides(cfg, {"model.init_generator": str(tmp_path / "pretrained.keras")}), tmp_path / "run", verbose=0)
    _assert_same_weights(seen[0], pretrained.get_weights())
    train(cfg, tmp_path / "no_init", verbose=0)  # the same run without the init file: its own random weights
    assert not np.array_equal(seen[1][0], pretrained.get_weights()[0])


def test_init_generator_is_not_read_on_resume(run_dir, tmp_path, monkeypatch):
    from dmfn_tf.model_io import load_generator

    resumed = tmp_path / "run"
    shutil.copytree(run_dir, resumed)
    # The run as if it had been started with an init file; the file is now garbage, so reading it would fail.
    (tmp_path / "pretrained.keras").write_bytes(b"not a model any more")
    cfg = load_config(resumed / "config.yaml", {"model.init_generator": str(tmp_path / "pretrained.keras")})
    save_config(cfg, resumed / "config.yaml")
    seen = _weights_at_first_fit(monkeypatch)
    train(apply_overrides(cfg, {"train.total_steps": STEPS + 1}), resumed, resume=True, verbose=0)
    _assert_same_weights(seen[0], load_generator(str(run_dir)).get_weights())

def test_init_generator_of_another_architecture_is_refused(tmp_path, training_photos, tiny_generator_file):
    from dmfn_tf.errors import ConfigError

    cfg = load_config(TINY_CONFIG, {"data.path": str(training_photos), "model.init_generator": tiny_generator_file})
    with pytest.raises(ConfigError, match=r"model.init_generator: .*generator.keras has another architecture"):
        train(cfg, tmp_path / "run", verbose=0)
    with pytest.raises(UserError, match="nowhere.keras: no such model file"):
        train(apply_overrides(cfg, {"model.init_generator": str(tmp_path / "nowhere.keras")}), tmp_path / "run2", verbose=0)


def test_snapshots_record_step_and_a_clock_that_continues_over_resume(tmp_path, training_photos):
    out = tmp_path / "snap"
    cfg = tiny_run_config(training_photos, total_steps=4, checkpoint_every=2, snapshot_every=2, ema_momentum=0.5)
    train(cfg, out, verbose=0)
    first = json.loads((out / "snapshots" / "generator-00000004.json").read_text())
    train(tiny_run_config(training_photos, total_steps=6, checkpoint_every=2, snapshot_every=2, ema_momentum=0.5),
          out, resume=True, verbose=0)
    names = sorted(path.name for path in (out / "snapshots").iterdir())
    assert names == [f"generator-{step:08d}.{ext}" for step in (2, 4, 6) for ext in ("json", "keras")]
    records = [json.loads((out / "snapshots" / f"generator-{step:08d}.json").read_text()) for step in (2, 4, 6)]
    assert [r["step"] for r in records] == [2, 4, 6]
    # The resumed process starts from the checkpoint's clock (step 4), not from zero.
    assert 0 < records[0]["cpu_seconds"] <= first["cpu_seconds"] < records[2]["cpu_seconds"]
    assert records[2]["wall_seconds"] > first["wall_seconds"]
    # Each snapshot describes itself: its step and the run's CPU time when it was written.
    from dmfn_tf.model_metadata import read_model_metadata

    for step, record in zip((2, 4, 6), records):
        provenance = read_model_metadata(str(out / "snapshots" / f"generator-{step:08d}.keras")).provenance
        assert provenance.step == step and abs(provenance.cpu_hours * 3600 - record["cpu_seconds"]) < 2
    # generator.keras is the averaged generator of the last checkpoint, as the last snapshot is.
    snapshot_model = keras.saving.load_model(out / "snapshots" / "generator-00000006.keras")
    latest = keras.saving.load_model(out / "generator.keras")
    for a, b in zip(snapshot_model.get_weights(), latest.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_decay_steps_can_be_added_to_a_run_trained_at_a_constant_rate(tmp_path, training_photos):
    out = tmp_path / "run"
    train(tiny_run_config(training_photos, total_steps=2, checkpoint_every=2, lr_decay_steps=[]), out, verbose=0)
    decayed = tiny_run_config(training_photos, total_steps=4, checkpoint_every=2, lr_decay_steps=[3], lr_decay_factor=0.25)
    assert train(decayed, out, resume=True, verbose=0).final_step == 4
    reader = tf.train.load_checkpoint(str(out / "checkpoints" / read_latest(out / "checkpoints")["checkpoint"] / CHECKPOINT_PREFIX))
    rate = decayed.train.learning_rate
    # Update 4 (after boundary 3) used the decayed rate, in both optimizers; config.yaml records the new steps.
    for optimizer in ("g_optimizer", "d_optimizer"):
        assert reader.get_tensor(f"{optimizer}/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE") == pytest.approx(rate * 0.25)
    assert load_config(out / "config.yaml").train.lr_decay_steps == [3]
    # And back to a constant rate.
    constant = tiny_run_config(training_photos, total_steps=5, checkpoint_every=5, lr_decay_steps=[])
    assert train(constant, out, resume=True, verbose=0).final_step == 5


def test_a_run_saved_with_its_schedule_in_the_optimizer_still_resumes(tmp_path, training_photos):
    """Checkpoints of earlier versions hold no rate variable: the run is rebuilt the way it was saved."""
    from dmfn_tf.training.run_directory import RunDirectory

    out = tmp_path / "run"
    cfg = tiny_run_config(training_photos, total_steps=3, checkpoint_every=3, lr_decay_steps=[2])
    trainer = build_trainer(cfg, rate_variable=False)
    RunDirectory(out).save_config(cfg)
    TrainingCheckpointer(out / "checkpoints", trainer.generator, trainer.discriminator,
                         trainer.g_optimizer, trainer.d_optimizer).save(step=1)
    assert train(cfg, out, resume=True, verbose=0).final_step == 3


def test_a_resume_that_fails_leaves_the_runs_settings_as_they_were(run_dir, tmp_path, training_photos):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)  # a finished run of STEPS steps
    before = (out / "config.yaml").read_text()
    checkpoint = out / "checkpoints" / read_latest(out / "checkpoints")["checkpoint"]
    (checkpoint / f"{CHECKPOINT_PREFIX}.data-00000-of-00001").write_bytes(b"damaged")
    resumed = tiny_run_config(training_photos, total_steps=STEPS + 2, checkpoint_every=2, lr_decay_steps=[STEPS + 1])
    with pytest.raises(UserError, match="damaged"):
        train(resumed, out, resume=True, verbose=0)
    assert (out / "config.yaml").read_text() == before
