"""The layout of a training run directory, and the rules for starting or resuming a run in one.

```
run/
  config.yaml          the configuration the run uses (command-line overrides applied)
  generator.keras      the generator of the latest checkpoint (`dmfn inpaint/export --model run/`), describing
                       itself: trained size, architecture, run, step, CPU hours, recipe (`dmfn_tf.model_metadata`)
  checkpoints/
    latest.json        names the latest complete checkpoint
    ckpt-<step>/       generator, discriminator, both optimizers, the global step (last K kept)
  logs/                TensorBoard event files: train/*, learning_rate/*, samples
  snapshots/           generator-<step>.keras + .json (step, CPU and wall seconds), every
                       `train.snapshot_every` steps: what learning curves are scored from
  .lock                held (flock) by the process training here (`dmfn_tf.training.run_lock`)
```

Example:

```python
run = RunDirectory("runs/tiny")
run.check_can_start(cfg, resume=True)  # refuses a changed architecture, loss or recipe
run.save_config(cfg)
```
"""

from __future__ import annotations

import logging
import os

from dmfn_tf.config import ExperimentConfig, keys_in_file, load_config, save_config
from dmfn_tf.errors import ConfigError, UserError
from dmfn_tf.model_io import GENERATOR_FILE, RUN_CONFIG_FILE
from dmfn_tf.training.checkpoints import read_latest

logger = logging.getLogger("dmfn_tf")

CONFIG_FILE = RUN_CONFIG_FILE
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
SNAPSHOT_DIR = "snapshots"
# Settings a resumed run may change: the run's length, bookkeeping, and where the same data lives.
# (A different strategy may change BatchNorm statistics unless train.sync_batchnorm is on.)
RESUMABLE_CHANGES = (
    "name",
    "train.total_steps",
    "train.steps_per_epoch",
    "train.checkpoint_every",
    "train.image_log_every",
    "train.snapshot_every",
    # A campaign continued over days sets its learning-rate schedule as it goes (docs/training_on_cpu.md):
    # the trainer sets the optimizers' rate from the schedule at every step, none of it is state.
    "train.learning_rate",
    "train.lr_decay_steps",
    "train.lr_decay_factor",
    "train.strategy",
    "train.deterministic",
    "data.path",
    "data.tfds_data_dir",
    "data.file_check_cache",
)


class RunDirectory:
    """The paths of one run directory (layout in the module docstring); nothing is created until written.

    Args:
        path: the run directory.

    Attributes:
        path, config_path, checkpoint_dir, generator_path, log_dir, snapshot_dir: `str` paths.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.config_path = os.path.join(self.path, CONFIG_FILE)
        self.checkpoint_dir = os.path.join(self.path, CHECKPOINT_DIR)
        self.generator_path = os.path.join(self.path, GENERATOR_FILE)
        self.log_dir = os.path.join(self.path, LOG_DIR)
        self.snapshot_dir = os.path.join(self.path, SNAPSHOT_DIR)

    def latest_step(self) -> int:
        """The step of the latest complete checkpoint (`checkpoints/latest.json`), 0 when there is none."""
        latest = read_latest(self.checkpoint_dir)
        return 0 if latest is None else int(latest["step"])

    def check_can_start(self, cfg: ExperimentConfig, resume: bool) -> None:
        """Refuses to overwrite a run without `resume`, or to resume it with a configuration that computes something else.

        Args:
            cfg: the configuration the new process would train with.
            resume: whether the process continues the run.

        Raises:
            UserError: the directory holds a run and `resume` is False.
            ConfigError: the saved configuration differs in a key not in `RESUMABLE_CHANGES`.
        """
        if not self.latest_step():
            return
        if not resume:
            raise UserError(
                f"{self.path} already holds a training run; pass --resume to continue it, or choose another --out"
            )
        if not os.path.isfile(self.config_path):
            return
        saved = load_config(self.config_path).to_flat_dict()
        current = cfg.to_flat_dict()
        changed = [
            f"{key} ({saved.get(key)!r} -> {current.get(key)!r})"
            for key in sorted(set(saved) | set(current))
            if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
        ]
        if changed:
            raise ConfigError(
                f"cannot resume: the configuration differs from {self.config_path} in {', '.join(changed)}; "
                "resume with the same settings or train into another --out directory"
            )
        # A run started by an older version has no record of settings added since; comparing their
        # defaults would pass silently, so say which values the run now continues with.
        unrecorded = [f"{key}={current[key]!r}" for key in sorted(set(current) - keys_in_file(self.config_path))
                      if key not in RESUMABLE_CHANGES]
        if unrecorded:
            logger.warning(
                "%s does not record %s (settings added after the run started); the run continues with these values",
                self.config_path, ", ".join(unrecorded),
            )

    def save_config(self, cfg: ExperimentConfig) -> None:
        """Writes `config.yaml` atomically (creating the directory)."""
        save_config(cfg, self.config_path)
