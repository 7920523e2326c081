"""One training run: configuration, data, trainer, callbacks, checkpoints, resumption.

`train(cfg, out_dir, ...)` is what `dmfn train` calls, with the command line already applied to
`cfg` (`dmfn_tf.config.apply_overrides`); the run directory's layout is `RunDirectory`'s.

Resuming (`resume=True`) restores the latest checkpoint and continues from its step with the data
pipeline positioned at that step, so the resumed run ends with the same weights as an
uninterrupted one (bit for bit with `train.deterministic: true`).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from dmfn_tf.config import ExperimentConfig
from dmfn_tf.data import build_dataset
from dmfn_tf.data.skip_tally import counting_skips
from dmfn_tf.errors import ConfigError, UserError
from dmfn_tf.atomic_files import remove_stale_temporaries
from dmfn_tf.model_io import load_generator, resolve_generator_path
from dmfn_tf.model_metadata import metadata_from_config
from dmfn_tf.training.callbacks import (
    CheckpointCallback,
    NonFiniteLossGuard,
    SnapshotCallback,
    StopAtStep,
    TensorBoardLogger,
)
from dmfn_tf.training.checkpoints import TrainingCheckpointer, is_chief, keeps_rate_variable
from dmfn_tf.training.distribute import fit, make_strategy
from dmfn_tf.training.run_directory import RunDirectory
from dmfn_tf.training.run_lock import hold_run_lock, lock_file_name
from dmfn_tf.training.trainer import build_trainer

# Checkpoints kept in `out_dir/checkpoints`.
KEEP_CHECKPOINTS = 3
# Examples in the fixed batch whose inpaintings are logged as images.
SAMPLE_IMAGES = 4


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

    A run resumed mid-epoch first finishes that epoch in a call of its own; one more call runs the
    remaining epochs, the last of which `StopAtStep` ends at `total_steps` if that is mid-epoch.
    So a run that starts at an epoch boundary is one `fit` call on one dataset.

    Args:
        start_step: the first step to run (steps done so far).
        total_steps: the step to stop at.
        steps_per_epoch: steps per Keras epoch.

    Returns:
        `(initial_epoch, epochs, steps_per_epoch, start_step)` for each `fit` call, in order.

    Example:

    ```python
    epoch_segments(7, 23, 5)
    # -> [(1, 2, 3, 7), (2, 5, 5, 10)]
    ```
    """
    segments = []
    step, epoch = start_step, start_step // steps_per_epoch
    offset = step % steps_per_epoch
    if offset and step < total_steps:
        steps = min(steps_per_epoch - offset, total_steps - step)
        segments.append((epoch, epoch + 1, steps, step))
        step, epoch = step + steps, epoch + 1
    if step < total_steps:
        segments.append((epoch, -(-total_steps // steps_per_epoch), steps_per_epoch, step))
    return segments


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


def initialise_generator(generator: keras.Model, source: str) -> None:
    """Copies the weights of a generator file into `generator` (a fine-tuning run's step 0).

    Args:
        generator: the run's generator.
        source: `model.init_generator`: "shipped", a `.keras` file, a run directory or a `.pth`.

    Raises:
        ConfigError: the file's generator has another architecture (nf, blocks, block variant).
    """
    path = resolve_generator_path(source)
    pretrained = load_generator(path)
    found, expected = [tuple(w.shape) for w in pretrained.weights], [tuple(w.shape) for w in generator.weights]
    if found != expected:
        raise ConfigError(f"model.init_generator: {path} has another architecture than model.nf, model.n_blocks "
                          "and model.block describe (its weights do not match)")
    generator.set_weights(pretrained.get_weights())
    print(f"Generator initialised from {path}", flush=True)


def train(
    cfg: ExperimentConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    log_every: int = 10,
    verbose: int | str = 1,
    callbacks: list | None = None,
) -> TrainingResult:
    """Trains DMFN as configured, writing checkpoints, the generator and TensorBoard logs into `out_dir`.

    Args:
        cfg: the experiment configuration, command-line overrides applied (`load_config` /
            `apply_overrides`); it is recorded as `config.yaml` and used unchanged, including
            `train.strategy`.
        out_dir: the run directory (created if missing; layout in `RunDirectory`).
        resume: continue from the latest checkpoint in `out_dir` (from step 0 if there is none).
            Without it, a directory that already holds a checkpoint is refused.
        log_every: steps between scalar summaries.
        verbose: Keras `fit` verbosity (1: a progress bar per epoch).
        callbacks: more Keras callbacks, run after the run's own (e.g. a validation curve).

    Returns:
        A `TrainingResult`.

    Raises:
        NonFiniteLossError: a loss term became NaN or infinite (the message names the step and the
            terms); the latest checkpoint is then the last good one.
        UserError: bad configuration, missing data, or a checkpoint that does not match.
        RunLocked: another process is training in `out_dir` (`dmfn_tf.training.run_lock`).

    Example:

    ```python
    cfg = load_config("configs/tiny.yaml", {"data.path": "photos/", "train.total_steps": 20})
    result = train(cfg, "runs/tiny")
    generator = keras.saving.load_model("runs/tiny/generator.keras")
    ```
    """
    with hold_run_lock(out_dir, lock_file_name(cfg.train.strategy)), counting_skips() as skips:  # RunLocked
        result = _train(cfg, out_dir, resume, log_every, verbose, callbacks)
    print(skips.summary(), flush=True)  # also TensorBoard's data/skipped_files (TensorBoardLogger)
    return result


def _train(cfg, out_dir, resume, log_every, verbose, callbacks) -> TrainingResult:
    """`train` once the run lock is held: checks, data, trainer, restored state, then the `fit` calls."""
    if log_every < 1:
        raise ConfigError(f"log_every: must be at least 1 step, got {log_every}")
    run = RunDirectory(out_dir)
    run.check_can_start(cfg, resume)
    start_step = run.latest_step() if resume else 0
    strategy = _set_up_runtime(cfg.train)
    chief = is_chief(strategy)

    # The data first: a missing folder fails here, before the networks are built.
    first_dataset = _training_dataset(cfg, start_step)
    if not start_step and cfg.model.init_generator:
        resolve_generator_path(cfg.model.init_generator)  # a wrong path fails before the networks are built
    if chief:
        remove_stale_temporaries(out_dir)  # e.g. `.generator.keras.tmp-<pid>-*` of a killed run

    trainer = build_trainer(cfg, strategy, rate_variable=keeps_rate_variable(run.checkpoint_dir))
    checkpointer = TrainingCheckpointer(
        run.checkpoint_dir,
        trainer.generator,
        trainer.discriminator,
        trainer.g_optimizer,
        trainer.d_optimizer,
        keep=KEEP_CHECKPOINTS,
        chief=chief,
    )
    initial_step = _restore_or_initialise(cfg, trainer, checkpointer, start_step)
    if chief:
        run.save_config(cfg)  # after the restore: a run that cannot resume keeps the settings it had
    total_steps = cfg.train.total_steps
    if initial_step >= total_steps:
        print(f"{run.path}: already trained to step {initial_step} (train.total_steps = {total_steps}); nothing to do")
        return TrainingResult(run.path, initial_step, initial_step, checkpointer.latest_path())
    if initial_step:
        print(f"Resuming {run.path} from step {initial_step} of {total_steps}")
    elif resume:
        print(f"No checkpoint in {run.checkpoint_dir} yet; training {run.path} from step 0")

    guard = NonFiniteLossGuard(initial_step)
    own_callbacks, logger = _run_callbacks(cfg, run, checkpointer, initial_step, chief, log_every)
    try:
        _fit_segments(trainer, cfg, first_dataset, initial_step, [guard, *own_callbacks, *(callbacks or [])], guard,
                      verbose)
    finally:
        if logger is not None:
            logger.close()
    _raise_if_failed(guard, run, checkpointer)
    return TrainingResult(run.path, initial_step, total_steps, checkpointer.latest_path())


def _set_up_runtime(train_cfg) -> tf.distribute.Strategy:
    """Sets the precision policy, the seeds and (if asked) determinism; returns the distribution strategy."""
    keras.mixed_precision.set_global_policy(train_cfg.precision)
    keras.utils.set_random_seed(train_cfg.seed)
    if train_cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    return make_strategy(train_cfg.strategy)


def _training_dataset(cfg: ExperimentConfig, start_step: int) -> tf.data.Dataset:
    """The endless, shuffled training pipeline positioned at `start_step`."""
    return build_dataset(
        cfg.data,
        cfg.model.image_size,
        cfg.train.batch_size,
        seed=cfg.train.seed,
        start_step=start_step,
        repeat=True,
        training=True,
    )


def _restore_or_initialise(cfg: ExperimentConfig, trainer, checkpointer: TrainingCheckpointer, start_step: int) -> int:
    """Restores the latest checkpoint of a resumed run, or starts a fine-tuning run from `model.init_generator`.

    Returns:
        The step training continues from (0 for a new run).
    """
    initial_step = checkpointer.restore() if start_step else 0
    if not initial_step and cfg.model.init_generator:
        initialise_generator(trainer.generator, cfg.model.init_generator)
    return initial_step


def _run_callbacks(cfg: ExperimentConfig, run: RunDirectory, checkpointer, initial_step: int, chief: bool,
                   log_every: int) -> tuple[list, TensorBoardLogger | None]:
    """The run's own callbacks after the loss guard, in order: checkpoints, the stop, snapshots, TensorBoard.

    Returns:
        `(callbacks, logger)`; `logger` (the TensorBoard writer, on the chief only) must be closed.
    """
    train_cfg = cfg.train

    def describe(step):  # what the generator files say about themselves (dmfn_tf.model_metadata)
        return metadata_from_config(cfg, "dmfn train", run.path, step, checkpointer.clock.now()[0])

    saver = CheckpointCallback(
        checkpointer,
        every=train_cfg.checkpoint_every,
        final_step=train_cfg.total_steps,
        generator_path=run.generator_path,
        initial_step=initial_step,
        describe=describe,
    )
    callbacks = [saver, StopAtStep(train_cfg.total_steps, initial_step)]
    if chief and train_cfg.snapshot_every:
        callbacks.append(SnapshotCallback(run.snapshot_dir, checkpointer.clock, train_cfg.snapshot_every, initial_step,
                                          describe=describe))
    logger = None
    if chief:
        logger = TensorBoardLogger(
            run.log_dir,
            _sample_batch(cfg),
            scalar_every=log_every,
            image_every=train_cfg.image_log_every,
            initial_step=initial_step,
        )
        callbacks.append(logger)
    return callbacks, logger


def _fit_segments(trainer, cfg: ExperimentConfig, first_dataset, initial_step: int, callbacks: list,
                  guard: NonFiniteLossGuard, verbose) -> None:
    """Runs the `fit` calls of `epoch_segments`, stopping after one that hit a non-finite loss.

    A run resumed mid-epoch needs a second pipeline for its second call, positioned at the next epoch.
    """
    for initial_epoch, epochs, steps_per_epoch, segment_start in epoch_segments(
        initial_step, cfg.train.total_steps, cfg.train.steps_per_epoch
    ):
        fit(
            trainer,
            first_dataset if segment_start == initial_step else _training_dataset(cfg, segment_start),
            initial_epoch=initial_epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
        if guard.failure is not None:
            break


def _raise_if_failed(guard: NonFiniteLossGuard, run: RunDirectory, checkpointer: TrainingCheckpointer) -> None:
    """Raises `NonFiniteLossError` if the guard stopped the run, naming the step, the terms and what was kept."""
    if guard.failure is None:
        return
    step, terms = guard.failure
    latest = checkpointer.latest_step()
    kept = (
        f"the last good checkpoint (step {latest}) is kept in {run.checkpoint_dir}"
        if latest is not None
        else "no checkpoint was written"
    )
    raise NonFiniteLossError(f"non-finite loss at step {step} in {', '.join(terms)}; training stopped and {kept}")
