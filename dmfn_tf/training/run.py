"""One training run: configuration, data, trainer, callbacks, checkpoints, resumption.

`train(cfg, out_dir, ...)` is what `dmfn train` calls. A run directory looks like this:

```
out_dir/
  config.yaml          the resolved configuration (after --data, --steps and --set)
  generator.keras      the generator of the latest checkpoint (`dmfn inpaint/export --model`)
  checkpoints/
    latest.json        names the latest complete checkpoint
    ckpt-<step>/       generator, discriminator, both optimizers, the global step (last K kept)
  logs/                TensorBoard event files: train/*, learning_rate/*, samples
```

Resuming (`resume=True`) restores the latest checkpoint and continues from its step with the data
pipeline positioned at that step, so the resumed run ends with the same weights as an
uninterrupted one (bit for bit with `train.deterministic: true`).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf
import yaml

from dmfn_tf.config import ExperimentConfig, config_from_dict, load_config
from dmfn_tf.data import build_dataset
from dmfn_tf.errors import ConfigError, UserError
from dmfn_tf.training.callbacks import CheckpointCallback, NonFiniteLossGuard, TensorBoardLogger
from dmfn_tf.atomic_files import remove_stale_temporaries, write_text_atomically
from dmfn_tf.training.checkpoints import TrainingCheckpointer, is_chief, read_latest
from dmfn_tf.training.distribute import fit, make_strategy
from dmfn_tf.training.trainer import build_trainer

CONFIG_FILE = "config.yaml"
GENERATOR_FILE = "generator.keras"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
# Checkpoints kept in `out_dir/checkpoints`.
KEEP_CHECKPOINTS = 3
# Examples in the fixed batch whose inpaintings are logged as images.
SAMPLE_IMAGES = 4
# Settings a resumed run may change: the run's length, bookkeeping, and where the same data lives.
# (A different strategy may change BatchNorm statistics unless train.sync_batchnorm is on.)
RESUMABLE_CHANGES = (
    "name",
    "train.total_steps",
    "train.steps_per_epoch",
    "train.checkpoint_every",
    "train.image_log_every",
    "train.strategy",
    "train.deterministic",
    "data.path",
    "data.tfds_data_dir",
    "data.file_check_cache",
)


class NonFiniteLossError(UserError):
    """A loss became NaN or infinite; the run stopped and its last good checkpoint is kept."""


@dataclasses.dataclass
class TrainingResult:
    """What a finished `train` call did.

    Attributes:
        out_dir: the run directory.
        initial_step: the step the call started at (0, or the restored checkpoint's step).
        final_step: the step reached (`train.total_steps`).
        last_checkpoint: the directory of the latest checkpoint, or None.
    """

    out_dir: str
    initial_step: int
    final_step: int
    last_checkpoint: str | None


def epoch_segments(start_step: int, total_steps: int, steps_per_epoch: int) -> list[tuple[int, int, int, int]]:
    """Splits steps `[start_step, total_steps)` into `fit` calls that keep the epochs of an uninterrupted run.

    A run resumed mid-epoch first finishes that epoch, then runs whole epochs, then a last partial
    epoch if `total_steps` is not a multiple of `steps_per_epoch`.

    Args:
        start_step: the first step to run (steps done so far).
        total_steps: the step to stop at.
        steps_per_epoch: steps per Keras epoch.

    Returns:
        `(initial_epoch, epochs, steps_per_epoch, start_step)` for each `fit` call, in order.

    Example:

    >>> epoch_segments(7, 23, 5)
    [(1, 2, 3, 7), (2, 4, 5, 10), (4, 5, 3, 20)]
    """
    segments = []
    step, epoch = start_step, start_step // steps_per_epoch
    offset = step % steps_per_epoch
    if offset and step < total_steps:
        steps = min(steps_per_epoch - offset, total_steps - step)
        segments.append((epoch, epoch + 1, steps, step))
        step, epoch = step + steps, epoch + 1
    whole_epochs = (total_steps - step) // steps_per_epoch
    if whole_epochs:
        segments.append((epoch, epoch + whole_epochs, steps_per_epoch, step))
        step, epoch = step + whole_epochs * steps_per_epoch, epoch + whole_epochs
    if step < total_steps:
        segments.append((epoch, epoch + 1, total_steps - step, step))
    return segments


def resolve_config(
    cfg: ExperimentConfig, data_path: str | None = None, max_steps: int | None = None
) -> ExperimentConfig:
    """`cfg` with the data path and the run length of the command line applied, validated again.

    Args:
        cfg: the loaded configuration.
        data_path: replaces `data.path` when given.
        max_steps: replaces `train.total_steps` when given.
    """
    values = cfg.to_dict()
    if data_path is not None:
        values["data"]["path"] = os.fspath(data_path)
    if max_steps is not None:
        values["train"]["total_steps"] = max_steps
    if values["train"]["total_steps"] < 1:
        raise ConfigError(f"train.total_steps: must be at least 1, got {values['train']['total_steps']}")
    for key in ("steps_per_epoch", "checkpoint_every", "image_log_every"):
        if values["train"][key] < 1:
            raise ConfigError(f"train.{key}: must be at least 1, got {values['train'][key]}")
    return config_from_dict(values, source="the resolved configuration")


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_resumable(cfg: ExperimentConfig, saved_config_path: str) -> None:
    """Refuses to resume with a configuration that would compute something else than the saved run."""
    saved = _flatten(load_config(saved_config_path).to_dict())
    current = _flatten(cfg.to_dict())
    changed = [
        f"{key} ({saved.get(key)!r} -> {current.get(key)!r})"
        for key in sorted(set(saved) | set(current))
        if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
    ]
    if changed:
        raise ConfigError(
            f"cannot resume: the configuration differs from {saved_config_path} in {', '.join(changed)}; "
            "resume with the same settings or train into another --out directory"
        )


def _sample_batch(cfg: ExperimentConfig):
    """A fixed evaluation batch (the first of the non-training pipeline) for the image summaries."""
    dataset = build_dataset(
        cfg.data,
        cfg.model.image_size,
        min(SAMPLE_IMAGES, cfg.train.batch_size),
        seed=cfg.train.seed,
        repeat=False,
        training=False,
    )
    for batch in dataset.take(1):
        return {"image": batch["image"], "mask": batch["mask"]}
    return None


def train(
    cfg: ExperimentConfig,
    out_dir: str | os.PathLike,
    data_path: str | None = None,
    strategy=None,
    resume: bool = False,
    max_steps: int | None = None,
    log_every: int = 10,
    verbose: int | str = 1,
) -> TrainingResult:
    """Trains DMFN as configured, writing checkpoints, the generator and TensorBoard logs into `out_dir`.

    Args:
        cfg: the experiment configuration (`dmfn_tf.config.load_config`).
        out_dir: the run directory (created if missing; layout in the module docstring).
        data_path: overrides `data.path`.
        strategy: a `tf.distribute.Strategy`, a strategy name ("default", "mirrored",
            "multi_worker"), or None for `train.strategy`.
        resume: continue from the latest checkpoint in `out_dir` (from step 0 if there is none).
            Without it, a directory that already holds a checkpoint is refused.
        max_steps: overrides `train.total_steps`, the step the run ends at.
        log_every: steps between scalar summaries.
        verbose: Keras `fit` verbosity (1: a progress bar per epoch).

    Returns:
        A `TrainingResult`.

    Raises:
        NonFiniteLossError: a loss term became NaN or infinite (the message names the step and the
            terms); the latest checkpoint is then the last good one.
        UserError: bad configuration, missing data, or a checkpoint that does not match.

    Example:

    ```python
    cfg = load_config("configs/tiny.yaml")
    result = train(cfg, "runs/tiny", data_path="photos/", max_steps=20)
    generator = keras.saving.load_model("runs/tiny/generator.keras")
    ```
    """
    cfg = resolve_config(cfg, data_path, max_steps)
    if log_every < 1:
        raise ConfigError(f"log_every: must be at least 1 step, got {log_every}")
    train_cfg = cfg.train
    out_dir = os.fspath(out_dir)
    checkpoint_dir = os.path.join(out_dir, CHECKPOINT_DIR)
    config_path = os.path.join(out_dir, CONFIG_FILE)

    has_checkpoint = read_latest(checkpoint_dir) is not None
    if has_checkpoint and not resume:
        raise UserError(
            f"{out_dir} already holds a training run; pass --resume to continue it, or choose another --out"
        )
    if resume and has_checkpoint and os.path.isfile(config_path):
        _check_resumable(cfg, config_path)

    keras.mixed_precision.set_global_policy(train_cfg.precision)
    keras.utils.set_random_seed(train_cfg.seed)
    if train_cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy or train_cfg.strategy)
    chief = is_chief(strategy)

    # The data first: a missing folder fails here, before the networks are built.
    def dataset_from(step):
        return build_dataset(
            cfg.data,
            cfg.model.image_size,
            train_cfg.batch_size,
            seed=train_cfg.seed,
            start_step=step,
            repeat=True,
            training=True,
        )

    dataset_from(0)
    os.makedirs(out_dir, exist_ok=True)
    if chief:
        remove_stale_temporaries(out_dir)  # e.g. `.generator.keras.tmp-<pid>-*` of a killed run
        write_text_atomically(config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    trainer = build_trainer(cfg, strategy)
    checkpointer = TrainingCheckpointer(
        checkpoint_dir,
        trainer.generator,
        trainer.discriminator,
        trainer.g_optimizer,
        trainer.d_optimizer,
        keep=KEEP_CHECKPOINTS,
        chief=chief,
    )
    initial_step = checkpointer.restore() if resume and has_checkpoint else 0
    total_steps = train_cfg.total_steps
    if initial_step >= total_steps:
        print(f"{out_dir}: already trained to step {initial_step} (train.total_steps = {total_steps}); nothing to do")
        return TrainingResult(out_dir, initial_step, initial_step, checkpointer.latest_path())
    if initial_step:
        print(f"Resuming {out_dir} from step {initial_step} of {total_steps}")
    elif resume:
        print(f"No checkpoint in {checkpoint_dir} yet; training {out_dir} from step 0")

    guard = NonFiniteLossGuard(initial_step)
    saver = CheckpointCallback(
        checkpointer,
        every=train_cfg.checkpoint_every,
        final_step=total_steps,
        generator_path=os.path.join(out_dir, GENERATOR_FILE),
        initial_step=initial_step,
    )
    callbacks = [guard, saver]
    logger = None
    if chief:
        logger = TensorBoardLogger(
            os.path.join(out_dir, LOG_DIR),
            _sample_batch(cfg),
            scalar_every=log_every,
            image_every=train_cfg.image_log_every,
            initial_step=initial_step,
        )
        callbacks.append(logger)

    try:
        for initial_epoch, epochs, steps_per_epoch, start_step in epoch_segments(
            initial_step, total_steps, train_cfg.steps_per_epoch
        ):
            fit(
                trainer,
                dataset_from(start_step),
                initial_epoch=initial_epoch,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                verbose=verbose,
            )
            if guard.failure is not None:
                break
    finally:
        if logger is not None:
            logger.close()

    if guard.failure is not None:
        step, terms = guard.failure
        latest = checkpointer.latest_step()
        kept = (
            f"the last good checkpoint (step {latest}) is kept in {checkpoint_dir}"
            if latest is not None
            else "no checkpoint was written"
        )
        raise NonFiniteLossError(f"non-finite loss at step {step} in {', '.join(terms)}; training stopped and {kept}")
    return TrainingResult(out_dir, initial_step, total_steps, checkpointer.latest_path())
