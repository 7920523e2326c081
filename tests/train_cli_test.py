"""`dmfn train`: run directory, TensorBoard logs, generator.keras, one-line errors, non-finite losses."""

import io
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image
from tensorflow.core.util import event_pb2

from dmfn_tf.cli import main
from dmfn_tf.config import load_config, parse_overrides
from dmfn_tf.data import build_dataset
from dmfn_tf.errors import ConfigError
from dmfn_tf.models.losses import GENERATOR_LOSS_TERMS, generator_total_loss
from dmfn_tf.training import run as run_module
from dmfn_tf.training.checkpoints import TrainingCheckpointer, list_checkpoints, read_latest
from dmfn_tf.training.trainer import TRAIN_METRICS, build_trainer

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_CONFIG = PROJECT_ROOT / "configs" / "tiny.yaml"
STEPS = 4
# Keys the run below sets on the command line; every other key of tiny.yaml must reach config.yaml.
OVERRIDDEN = {("train", "total_steps"), ("train", "checkpoint_every"), ("train", "image_log_every")}


def write_images(folder, count=6, seed=0):
    """Small smooth colour images of varied sizes: the random crop and resize have work to do."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height, width = 64 + 8 * (i % 3), 72 + 4 * i
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        phases = rng.uniform(0, 2 * np.pi, 3)
        image = np.stack([np.sin(6 * x + phases[0]), np.cos(5 * y + phases[1]), np.sin(4 * (x + y) + phases[2])], -1)
        Image.fromarray(((image + 1) * 127.5).astype(np.uint8)).save(folder / f"photo_{i}.png")
    return folder


def read_events(log_dir):
    """{tag: {step: tensor value}} from every event file under `log_dir`."""
    values = {}
    for path in pathlib.Path(log_dir).rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = (tf.make_ndarray(value.tensor), value.metadata)
    return values


def train_args(images, out, *extra):
    return ["train", "--config", str(TINY_CONFIG), "--data", str(images), "--out", str(out), *extra]


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("dmfn train")]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("run") / "tiny"
    code = main(
        train_args(
            images, out, "--steps", str(STEPS), "--set", "train.checkpoint_every=3", "--set", "train.image_log_every=2",
            "--log-every", "1",
        )
    )  # fmt: skip
    assert code == 0
    return out


def test_run_directory_layout_and_resolved_config(run_dir, images):
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.yaml", "generator.keras", "logs"]
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
    assert saved["data"]["path"] == str(images)
    assert load_config(run_dir / "config.yaml").model.nf == 8


def test_scalars_of_every_loss_term_and_learning_rates(run_dir):
    events = read_events(run_dir / "logs")
    cfg = load_config(run_dir / "config.yaml")
    for metric in TRAIN_METRICS:
        assert sorted(events[f"train/{metric}"]) == list(range(1, STEPS + 1)), metric
    for step in range(1, STEPS + 1):
        logged = {metric: float(events[f"train/{metric}"][step][0]) for metric in TRAIN_METRICS}
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


def test_existing_run_is_not_overwritten_without_resume(run_dir, images, capsys):
    args = train_args(images, run_dir, "--steps", "6")
    assert main(args) == 2
    (line,) = error_lines(capsys)
    assert "already holds a training run" in line and "--resume" in line
    assert read_latest(run_dir / "checkpoints")["step"] == STEPS


def test_resume_with_another_architecture_names_the_changed_key(run_dir, images, capsys):
    args = train_args(images, run_dir, "--resume", "--set", "model.n_blocks=3")
    assert main(args) == 2
    (line,) = error_lines(capsys)
    assert "model.n_blocks (2 -> 3)" in line


def test_resume_of_a_finished_run_does_nothing(run_dir, images, capsys):
    args = train_args(images, run_dir, "--resume", "--steps", str(STEPS))
    assert main(args) == 0
    assert f"already trained to step {STEPS}" in capsys.readouterr().out


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
def test_bad_set_override_is_a_one_line_error(tmp_path, images, capsys, assignment, named):
    args = train_args(images, tmp_path / "run", "--set", assignment)
    assert main(args) == 2
    (line,) = capsys.readouterr().err.splitlines()  # one line, nothing else on stderr
    assert line.startswith("dmfn train") and named in line
    assert not (tmp_path / "run").exists()


def test_bad_set_value_exits_2_with_one_line_from_the_command(tmp_path, images):
    command = [sys.executable, "-m", "dmfn_tf", *train_args(images, tmp_path / "run", "--set", "train.lr_decay_steps=[1, x]")]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dmfn train: error: {TINY_CONFIG} + command line: key 'train.lr_decay_steps[1]' expects int, got str 'x'"
    ]
    assert not (tmp_path / "run").exists()


def test_the_strategy_used_is_the_one_config_yaml_records(tmp_path, images, monkeypatch):
    used = []
    real_make_strategy = run_module.make_strategy

    def recording_make_strategy(name, *args, **kwargs):
        strategy = real_make_strategy(name, *args, **kwargs)
        used.append((name, type(strategy).__name__))
        return strategy

    monkeypatch.setattr(run_module, "make_strategy", recording_make_strategy)
    out = tmp_path / "run"
    assert main(train_args(images, out, "--steps", "1", "--strategy", "mirrored", "--set", "train.strategy=default")) == 0
    assert used == [("mirrored", "MirroredStrategy")]
    assert load_config(out / "config.yaml").train.strategy == "mirrored"


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    args = train_args(missing, tmp_path / "run")
    assert main(args) == 2
    (line,) = error_lines(capsys)
    assert str(missing) in line


def test_parse_overrides_reads_yaml_values():
    assignments = ["model.nf=8", "train.lr_decay_steps=[10, 20]", "train.deterministic=true", "data.crop=center"]
    assert parse_overrides(assignments) == {
        "model.nf": 8,
        "train.lr_decay_steps": [10, 20],
        "train.deterministic": True,
        "data.crop": "center",
    }
    with pytest.raises(ConfigError, match="'model' is a value, not a section"):
        load_config(TINY_CONFIG, parse_overrides(["model=1", "model.nf=8"]))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, images, monkeypatch, capsys):
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
    args = train_args(images, out, "--steps", "6", "--set", "train.checkpoint_every=2")
    assert main(args) == 2
    (line,) = error_lines(capsys)
    assert "non-finite loss at step 3" in line
    assert "g_total" in line and "d_loss" in line
    assert "last good checkpoint (step 2)" in line
    assert read_latest(out / "checkpoints")["step"] == 2
    assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [2]
    generator = keras.saving.load_model(out / "generator.keras")
    assert all(np.all(np.isfinite(w.numpy())) for w in generator.weights)
