"""`dmfn train --config FILE`: train DMFN, with atomic checkpoints, `--resume`, and TensorBoard logs.

Example:

```
dmfn train --config configs/tiny.yaml --data photos/ --out runs/tiny --steps 20 --set model.nf=8
dmfn train --config configs/tiny.yaml --data photos/ --out runs/tiny --steps 40 --resume
```
"""

from __future__ import annotations

import os

import yaml

from dmfn_tf.config import STRATEGIES
from dmfn_tf.errors import ConfigError

DEFAULT_RUNS_DIR = "runs"


def parse_overrides(assignments: list[str] | None) -> dict:
    """Turns `["model.nf=8", "train.lr_decay_steps=[10, 20]"]` into the nested dict `load_config` merges.

    Values are read as YAML (`8` is an int, `true` a bool, `[10, 20]` a list), so they are checked
    against the configuration's types exactly like values in the file.

    Args:
        assignments: the `--set` arguments, each `dotted.key=value`.

    Example:

    >>> parse_overrides(["model.nf=8", "data.crop=center"])
    {'model': {'nf': 8}, 'data': {'crop': 'center'}}
    """
    overrides: dict = {}
    for assignment in assignments or []:
        key, separator, text = assignment.partition("=")
        key = key.strip()
        if not separator or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set expects key=value with a dotted key such as model.nf=8, got {assignment!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: value {text!r} is not valid YAML") from None
        *sections, leaf = key.split(".")
        node = overrides
        for section in sections:
            child = node.setdefault(section, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {section!r} was already set to a value, not a section")
            node = child
        node[leaf] = value
    return overrides


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train DMFN (checkpoints, --resume, TensorBoard logs)",
        description="Train DMFN as a configuration file describes. The run directory receives the resolved "
        "config.yaml, atomic checkpoints (checkpoints/), the latest generator.keras and TensorBoard logs (logs/).",
    )
    parser.add_argument("--config", required=True, help="experiment YAML file (configs/*.yaml)")
    parser.add_argument("--data", help="training images (a folder or a list file); overrides data.path")
    parser.add_argument("--out", help=f"run directory (default: {DEFAULT_RUNS_DIR}/<config name>)")
    parser.add_argument("--strategy", choices=STRATEGIES, help="distribution strategy (default: train.strategy)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--steps", type=int, help="total training steps of the run; overrides train.total_steps")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override one configuration value, e.g. --set model.nf=8 (repeatable; checked like YAML keys)",
    )
    parser.add_argument("--log-every", type=int, default=10, help="steps between TensorBoard scalar summaries")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dmfn_tf.config import load_config

    # Configuration errors are reported before TensorFlow is imported.
    cfg = load_config(args.config, parse_overrides(args.overrides))

    from dmfn_tf.training.run import train

    out_dir = args.out or os.path.join(DEFAULT_RUNS_DIR, cfg.name)
    result = train(
        cfg,
        out_dir,
        data_path=args.data,
        strategy=args.strategy,
        resume=args.resume,
        max_steps=args.steps,
        log_every=args.log_every,
    )
    from dmfn_tf.model_io import GENERATOR_FILE

    print(f"Trained to step {result.final_step}; generator: {os.path.join(result.out_dir, GENERATOR_FILE)}")
    return 0
