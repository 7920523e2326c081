"""Training checkpoints that survive crashes and resume a run exactly.

A checkpoint holds everything the next training step depends on: the generator and discriminator
weights (BatchNorm moving statistics included), both optimizers (iteration counts and Adam moments)
and the global step. The step is also the position of the data pipeline, since
`dmfn_tf.data.build_dataset(..., start_step=step)` yields exactly the batches an uninterrupted run
yields from that step on (images, crops and masks are a pure function of `(seed, step)`).

Container: `tf.train.Checkpoint`. It saves exactly the objects named here, with their optimizer
slots, and restores them in place at any step. Keras' `BackupAndRestore` was the alternative; it
saves the weights of one `model` with one `optimizer` and resumes at epoch granularity through its
own metadata, so it would miss the second optimizer or the mid-epoch step, and it writes in place
(a crash while writing can corrupt the only backup).

Atomicity. A checkpoint is written into a hidden temporary directory, every file and the
directory are fsync'ed, and only then is it renamed (`os.replace`, atomic on POSIX) to
`ckpt-<step>`. The pointer file `latest.json` is replaced the same way after the rename, so it
only ever names a complete checkpoint: a crash at any moment leaves the previous latest checkpoint
intact and loadable. Only the last `keep` checkpoints are kept.

Layout of a checkpoint directory:

```
checkpoints/
  latest.json              {"step": 1200, "checkpoint": "ckpt-00001200"}
  ckpt-00001000/ckpt.index, ckpt.data-00000-of-00001
  ckpt-00001200/...
```

Example:

```python
checkpointer = TrainingCheckpointer("runs/tiny/checkpoints", trainer.generator, trainer.discriminator,
                                    trainer.g_optimizer, trainer.d_optimizer, keep=3)
step = checkpointer.restore() if checkpointer.latest_step() is not None else 0
...
checkpointer.save(step)
```
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from dmfn_tf.atomic_files import atomic_path, fsync_path, remove_stale_temporaries, write_text_atomically
from dmfn_tf.errors import UserError
from dmfn_tf.training.clock import TrainingClock

LATEST_FILE = "latest.json"
CHECKPOINT_PREFIX = "ckpt"
_CHECKPOINT_DIR_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")
# Directories of interrupted writes start with this (hidden, never matched as a checkpoint).
_TEMPORARY_PREFIX = f".{CHECKPOINT_PREFIX}-tmp-"


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or does not match the configured model."""


def _fsync_tree(directory: str) -> None:
    for root, _, files in os.walk(directory):
        for name in files:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def read_latest(directory: str | os.PathLike) -> dict | None:
    """The parsed `latest.json` of a checkpoint directory (`{"step", "checkpoint"}`), or None if there is none.

    Args:
        directory: the checkpoint directory.
    """
    path = os.path.join(os.fspath(directory), LATEST_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            latest = json.load(f)
        return {"step": int(latest["step"]), "checkpoint": str(latest["checkpoint"])}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint pointer ({err})") from None


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, str]]:
    """`(step, path)` of every complete checkpoint in `directory`, by increasing step.

    Args:
        directory: the checkpoint directory.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _CHECKPOINT_DIR_PATTERN.match(name)
        if match and os.path.isdir(os.path.join(directory, name)):
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint_reader(directory: str | os.PathLike):
    """A `tf.train.CheckpointReader` of the latest checkpoint in `directory`, or None if there is none.

    Raises:
        CheckpointError: the checkpoint `latest.json` names is missing or unreadable.
    """
    latest = read_latest(directory)
    if latest is None:
        return None
    prefix = os.path.join(os.fspath(directory), latest["checkpoint"], CHECKPOINT_PREFIX)
    try:
        return tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as err:
        raise CheckpointError(f"checkpoint {os.path.dirname(prefix)} is missing or unreadable: {type(err).__name__}") from None


def keeps_rate_variable(directory: str | os.PathLike) -> bool:
    """Whether the latest checkpoint in `directory` holds the generator optimizer's rate as a variable.

    Runs made by this version do (`trainer.make_optimizer(rate_variable=True)`); earlier runs with
    decay steps saved the schedule instead, and must be rebuilt that way to restore. True when there
    is no checkpoint (a new run). Under `mixed_float16` the rate is the wrapped optimizer's (the
    `LossScaleOptimizer` keeps a dummy rate variable of its own).
    """
    reader = latest_checkpoint_reader(directory)
    if reader is None:
        return True
    keys = reader.get_variable_to_shape_map()
    wrapped = any(key.startswith("g_optimizer/inner_optimizer/") for key in keys)
    holder = "g_optimizer/inner_optimizer/" if wrapped else "g_optimizer/"
    return f"{holder}_learning_rate/.ATTRIBUTES/VARIABLE_VALUE" in keys


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this worker writes the run's files: always, except on non-chief workers of a multi-worker strategy.

    Args:
        strategy: the distribution strategy, or None.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    # Without a "chief" job, worker 0 is the chief (the TF_CONFIG convention).
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


class TrainingCheckpointer:
    """Writes and restores atomic training checkpoints (see the module docstring).

    Args:
        directory: where the checkpoints live (created if missing).
        generator: the generator `keras.Model`.
        discriminator: the discriminator `keras.Model`.
        g_optimizer: the generator's optimizer, built (its slots exist) before `restore`.
        d_optimizer: the discriminator's optimizer, built before `restore`.
        keep: how many of the most recent checkpoints to keep (at least 1).
        chief: whether this worker owns the directory. Non-chief workers of a multi-worker run
            still take part in every save (writing into a private temporary directory that is then
            deleted), as `tf.distribute` requires, but never touch the shared files.

    Example:

    ```python
    checkpointer = TrainingCheckpointer(out_dir / "checkpoints", trainer.generator, trainer.discriminator,
                                        trainer.g_optimizer, trainer.d_optimizer)
    checkpointer.save(step=1000)
    step = checkpointer.restore()  # 1000
    ```
    """

    def __init__(
        self, directory, generator, discriminator, g_optimizer, d_optimizer, keep: int = 3, chief: bool = True
    ):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = os.fspath(directory)
        self.keep = keep
        self.chief = chief
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.clock = TrainingClock()
        self._checkpoint = tf.train.Checkpoint(
            generator=generator,
            discriminator=discriminator,
            g_optimizer=g_optimizer,
            d_optimizer=d_optimizer,
            step=self._step,
            clock=self.clock.variable,
        )
        os.makedirs(self.directory, exist_ok=True)
        if self.chief:
            self._remove_interrupted_writes()

    def latest_step(self) -> int | None:
        """The step of the latest complete checkpoint, or None if there is none."""
        latest = read_latest(self.directory)
        return None if latest is None else latest["step"]

    def latest_path(self) -> str | None:
        """The directory of the latest complete checkpoint, or None if there is none."""
        latest = read_latest(self.directory)
        return None if latest is None else os.path.join(self.directory, latest["checkpoint"])

    def save(self, step: int) -> str:
        """Writes the checkpoint of `step` atomically, points `latest.json` at it, and prunes old ones.

        Args:
            step: the number of training steps done (the data position to resume from).

        Returns:
            The directory of the new checkpoint (on non-chief workers: "", nothing is kept).
        """
        step = int(step)
        self._step.assign(step)
        self.clock.stamp()
        temporary = tempfile.mkdtemp(prefix=_TEMPORARY_PREFIX, dir=self.directory)
        try:
            self._checkpoint.write(os.path.join(temporary, CHECKPOINT_PREFIX))
            if not self.chief:
                return ""
            _fsync_tree(temporary)
            name = f"{CHECKPOINT_PREFIX}-{step:08d}"
            final = os.path.join(self.directory, name)
            if os.path.isdir(final):
                # Left by a run that crashed after the rename but before updating the pointer.
                shutil.rmtree(final)
            os.replace(temporary, final)
        finally:
            if os.path.isdir(temporary):
                shutil.rmtree(temporary)
        fsync_path(self.directory)
        write_text_atomically(
            os.path.join(self.directory, LATEST_FILE), json.dumps({"step": step, "checkpoint": name}) + "\n"
        )
        self._prune()
        return final

    def restore(self, path: str | None = None) -> int:
        """Restores every tracked object from a checkpoint (default: the latest) and returns its step.

        Args:
            path: a checkpoint directory (`.../ckpt-<step>`); default the one `latest.json` names.

        Raises:
            CheckpointError: no checkpoint, a missing or unreadable one, or one written for a
                different architecture.
        """
        if path is None:
            path = self.latest_path()
            if path is None:
                raise CheckpointError(f"no checkpoint to restore in {self.directory} ({LATEST_FILE} not found)")
        prefix = os.path.join(os.fspath(path), CHECKPOINT_PREFIX)
        if not os.path.isfile(prefix + ".index"):
            raise CheckpointError(f"checkpoint {path} is missing or incomplete (no {CHECKPOINT_PREFIX}.index)")
        try:
            status = self._checkpoint.read(prefix)
            # Every saved value must find its variable and every variable its value: a checkpoint of
            # another architecture (other nf, n_blocks, block) must not half-load.
            status.assert_consumed()
        # A truncated or damaged ckpt.data fails inside the reader with IndexError, KeyError, ...
        except (AssertionError, ValueError, IndexError, KeyError, TypeError, tf.errors.OpError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"checkpoint {path} does not match the configured model or is damaged: {first_line}"
            ) from None
        self.clock.start()
        return int(self._step.numpy())

    def _prune(self) -> None:
        checkpoints = list_checkpoints(self.directory)
        latest = self.latest_path()
        for _, path in checkpoints[: -self.keep]:
            if os.path.abspath(path) != os.path.abspath(latest or ""):
                shutil.rmtree(path, ignore_errors=True)

    def _remove_interrupted_writes(self) -> None:
        remove_stale_temporaries(self.directory)  # latest.json temporaries
        for name in os.listdir(self.directory):
            if name.startswith(_TEMPORARY_PREFIX):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
