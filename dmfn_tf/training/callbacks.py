"""Keras callbacks of `dmfn train`: checkpoints, the non-finite loss guard, and TensorBoard logs.

Each callback counts global training steps from the step the run started at (0, or the restored
checkpoint's step), one per `on_train_batch_end` (`fit` runs one step per call: the trainer is
compiled with the default `steps_per_execution=1`). The counters survive several `fit` calls, which
is how `dmfn_tf.training.run` splits a resumed partial epoch from the full ones.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from dmfn_tf.atomic_files import write_text_atomically
from dmfn_tf.data.skip_tally import skipped_files
from dmfn_tf.inpaint.contract import composite, inpaint_float
from dmfn_tf.model_io import save_model_atomically
from dmfn_tf.model_metadata import ModelMetadata
from dmfn_tf.training.checkpoints import TrainingCheckpointer


def non_finite_terms(logs: dict | None) -> list[str]:
    """Names of the logged values that are NaN or infinite, in the order of `logs`.

    Args:
        logs: the `logs` dict a Keras callback receives (name -> scalar).
    """
    return [name for name, value in (logs or {}).items() if not math.isfinite(float(value))]


def _plugin_metadata(plugin_name: str) -> summary_pb2.SummaryMetadata:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin_name
    return metadata


# TensorFlow 2.21 no longer installs TensorBoard, whose package implements `tf.summary.scalar` and
# `tf.summary.image`. `tf.summary.write` is TensorFlow's own; with the plugin names below it writes
# the records those functions write (a float32 scalar; `[width, height, PNG...]` strings), which
# TensorBoard displays as scalars and images.
SCALAR_METADATA = _plugin_metadata("scalars")
IMAGE_METADATA = _plugin_metadata("images")


def write_scalar(tag: str, value: float) -> None:
    """Writes a scalar summary with the default writer and step (`writer.as_default(step=...)`).

    Args:
        tag: the summary's name, e.g. "train/l1".
        value: a number.
    """
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=SCALAR_METADATA)


def write_image(tag: str, image) -> None:
    """Writes one image summary with the default writer and step.

    Args:
        tag: the summary's name.
        image: `[H, W, 3]` floats in [0, 1].
    """
    pixels = tf.image.convert_image_dtype(tf.convert_to_tensor(image, tf.float32), tf.uint8, saturate=True)
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    record = tf.stack([tf.constant(str(width)), tf.constant(str(height)), tf.io.encode_png(pixels)])
    tf.summary.write(tag, record, metadata=IMAGE_METADATA)


class _StepCallback(keras.callbacks.Callback):
    """Counts global steps and calls `on_step_end(step, logs)` after each one.

    Args:
        initial_step: the global step the run starts at (the restored checkpoint's step).
    """

    def __init__(self, initial_step: int = 0):
        super().__init__()
        self.step = int(initial_step)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.on_step_end(self.step, logs or {})

    def on_step_end(self, step: int, logs: dict) -> None:
        raise NotImplementedError


class NonFiniteLossGuard(_StepCallback):
    """Stops training at the first step whose logs hold a NaN or infinite value.

    After `fit` returns, `failure` is None, or `(step, [names of the non-finite terms])`; the
    caller turns it into an error (`dmfn_tf.training.run.NonFiniteLossError`).

    Args:
        initial_step: the global step the run starts at.
    """

    def __init__(self, initial_step: int = 0):
        super().__init__(initial_step)
        self.failure: tuple[int, list[str]] | None = None

    def on_step_end(self, step, logs):
        terms = non_finite_terms(logs)
        if terms and self.failure is None:
            self.failure = (step, terms)
            self.model.stop_training = True


class StopAtStep(_StepCallback):
    """Ends `fit` after global step `final_step`, in the middle of an epoch if need be.

    Args:
        final_step: the last step to run.
        initial_step: the global step the run starts at.
    """

    def __init__(self, final_step: int, initial_step: int = 0):
        super().__init__(initial_step)
        self.final_step = final_step

    def on_step_end(self, step, logs):
        if step >= self.final_step:
            self.model.stop_training = True


class CheckpointCallback(_StepCallback):
    """Saves a checkpoint (and the generator alone, as a `.keras` file) every `every` steps and at `final_step`.

    A step whose logs hold a non-finite value is never saved, so the latest checkpoint is always
    the last good one.

    Args:
        checkpointer: a `TrainingCheckpointer`.
        every: save when the global step is a multiple of this.
        final_step: also save at this step (the end of the run), whatever `every` says.
        generator_path: where to write the latest generator (`out_dir/generator.keras`), or None.
        initial_step: the global step the run starts at.
        describe: `step -> ModelMetadata`, the description written inside the generator file
            (`dmfn_tf.model_metadata`; the clock is `checkpointer.clock`), or None for a plain file.
    """

    def __init__(
        self,
        checkpointer: TrainingCheckpointer,
        every: int,
        final_step: int,
        generator_path: str | None = None,
        initial_step: int = 0,
        describe: Callable[[int], ModelMetadata] | None = None,
    ):
        super().__init__(initial_step)
        if every < 1:
            raise ValueError(f"checkpoint interval must be at least 1 step, got {every}")
        self.checkpointer = checkpointer
        self.every = every
        self.final_step = final_step
        self.generator_path = generator_path
        self.describe = describe
        self.last_saved_step: int | None = None

    def on_step_end(self, step, logs):
        if non_finite_terms(logs):
            return
        if step % self.every == 0 or step == self.final_step:
            self.checkpointer.save(step)
            if self.generator_path and self.checkpointer.chief:
                metadata = self.describe(step) if self.describe else None
                with self.model.averaged_generator() as generator:
                    save_model_atomically(generator, self.generator_path, metadata=metadata)
            self.last_saved_step = step


class SnapshotCallback(_StepCallback):
    """Keeps `<directory>/generator-<step>.keras` and its `.json` (step, CPU and wall seconds) every `every` steps.

    The generator saved is the moving average when `train.ema_momentum` is on. The snapshots are
    what learning curves are scored from (`scripts/validate_run.py`).

    Args:
        directory: where the snapshots go (created when the first is written).
        clock: the run's `TrainingClock` (the checkpointer's).
        every: steps between snapshots.
        initial_step: the global step the run starts at.
        describe: `step -> ModelMetadata` written inside each snapshot (`dmfn_tf.model_metadata`), or None.
    """

    def __init__(self, directory: str, clock, every: int, initial_step: int = 0,
                 describe: Callable[[int], ModelMetadata] | None = None):
        super().__init__(initial_step)
        self.directory, self.clock, self.every, self.describe = directory, clock, every, describe

    def on_step_end(self, step, logs):
        if non_finite_terms(logs) or step % self.every:
            return
        cpu_seconds, wall_seconds = self.clock.now()
        os.makedirs(self.directory, exist_ok=True)
        stem = os.path.join(self.directory, f"generator-{step:08d}")
        metadata = self.describe(step) if self.describe else None
        with self.model.averaged_generator() as generator:
            save_model_atomically(generator, stem + ".keras", metadata=metadata)
        record = {"step": int(step), "cpu_seconds": round(cpu_seconds, 1), "wall_seconds": round(wall_seconds, 1)}
        write_text_atomically(stem + ".json", json.dumps(record) + "\n")


def inpainting_grid(image, mask, output):
    """One image of rows `masked input | composite output | target`, one row per example, in [0, 1].

    Args:
        image: `[B, H, W, 3]` targets in [-1, 1].
        mask: `[B, H, W, 1]`, 1 = hole (shown white in the input column).
        output: `[B, H, W, 3]` composites in [-1, 1].

    Returns:
        A `[1, B * H, 3 * W, 3]` float32 tensor, as `tf.summary.image` takes it.
    """
    image = tf.cast(image, tf.float32)
    mask = tf.cast(mask, tf.float32)
    masked = composite(1.0, image, mask)  # holes white
    rows = tf.concat([masked, tf.cast(output, tf.float32), image], axis=2)  # [B, H, 3W, 3]
    # Row-major reshape stacks the examples vertically.
    grid = tf.reshape(rows, [1, -1, tf.shape(rows)[2], 3])
    return tf.clip_by_value((grid + 1.0) * 0.5, 0.0, 1.0)


class TensorBoardLogger(_StepCallback):
    """Writes the training scalars and inpainting samples to TensorBoard event files.

    Every `scalar_every` steps: each logged value under `train/<name>` (Keras' running mean since
    the start of the epoch, as `keras.callbacks.TensorBoard` logs it), the learning rates under
    `learning_rate/generator` and `learning_rate/discriminator`, and the data files skipped so far
    under `data/skipped_files` (inside `dmfn_tf.data.skip_tally.counting_skips`, as `train` runs). Every `image_every` steps: the
    grid `masked input | output | target` of a fixed sample batch under `samples`.

    Args:
        log_dir: the directory of the event files (`out_dir/logs`).
        sample_batch: a dict batch with "image" and "mask", inpainted for the image summaries; or None.
        scalar_every: steps between scalar summaries.
        image_every: steps between image summaries.
        initial_step: the global step the run starts at.
    """

    def __init__(
        self, log_dir: str, sample_batch: dict | None, scalar_every: int, image_every: int, initial_step: int = 0
    ):
        super().__init__(initial_step)
        if scalar_every < 1 or image_every < 1:
            raise ValueError(f"logging intervals must be at least 1 step, got {scalar_every} and {image_every}")
        self.log_dir = os.fspath(log_dir)
        self.sample_batch = sample_batch
        self.scalar_every = scalar_every
        self.image_every = image_every
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def on_step_end(self, step, logs):
        if step % self.scalar_every == 0:
            self._write_scalars(step, logs)
        if self.sample_batch is not None and step % self.image_every == 0:
            self._write_samples(step)

    def _write_scalars(self, step, logs):
        learning_rates = {
            "generator": self.model.g_optimizer.learning_rate,
            "discriminator": self.model.d_optimizer.learning_rate,
        }
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                write_scalar(f"train/{name}", value)
            for name, rate in learning_rates.items():
                write_scalar(f"learning_rate/{name}", np.asarray(rate))
            skipped = skipped_files()  # files the data pipeline skipped so far (`counting_skips`)
            if skipped is not None:
                write_scalar("data/skipped_files", skipped)

    def _write_samples(self, step):
        image, mask = self.sample_batch["image"], self.sample_batch["mask"]
        output = inpaint_float(self.model.generator, image, mask)
        with self.writer.as_default(step=step):
            write_image("samples", inpainting_grid(image, mask, output)[0])

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        """Flushes and closes the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
