"""`dmfn train --config FILE`: train DMFN, with atomic checkpoints, `--resume`, and TensorBoard logs.

Example:

```
dmfn train --config configs/tiny.yaml --data photos/ --out runs/tiny --steps 20 --set model.nf=8
dmfn train --config configs/tiny.yaml --data photos/ --out runs/tiny --steps 40 --resume
```
"""

from __future__ import annotations

import os

from dmfn_tf.config import DISTRIBUTION_STRATEGIES

DEFAULT_RUNS_DIR = "runs"


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
    parser.add_argument("--strategy", choices=DISTRIBUTION_STRATEGIES, help="distribution strategy (default: train.strategy)")
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
    from dmfn_tf.config import load_config, parse_overrides

    # Every override reaches the configuration here, checked like the file's values, before
    # TensorFlow is imported; `train` uses (and records) exactly this configuration.
    overrides = parse_overrides(args.overrides)
    for key, value in (("data.path", args.data), ("train.total_steps", args.steps), ("train.strategy", args.strategy)):
        if value is not None:
            overrides[key] = value
    cfg = load_config(args.config, overrides)

    from dmfn_tf.training.run import train
    from dmfn_tf.training.run_directory import RunDirectory

    result = train(cfg, args.out or os.path.join(DEFAULT_RUNS_DIR, cfg.name), resume=args.resume, log_every=args.log_every)
    print(f"Trained to step {result.final_step}; generator: {RunDirectory(result.out_dir).generator_path}")
    return 0
