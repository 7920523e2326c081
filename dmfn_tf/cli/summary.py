"""`dmfn summary --config FILE`: parameter counts and the generator's multiply-accumulates."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("summary", help="print parameter and MAC counts of a configuration")
    parser.add_argument("--config", required=True, help="experiment YAML file (configs/*.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dmfn_tf.config import load_config
    from dmfn_tf.models.summary import summarize

    cfg = load_config(args.config)
    figures = summarize(cfg)
    if args.json:
        print(json.dumps(figures))
        return 0
    size = figures["image_size"]
    print(f"DMFN configuration {cfg.name!r} ({args.config})")
    print(f"  generator ({figures['block']} blocks, nf {figures['nf']}, {figures['n_blocks']} blocks): "
          f"{figures['generator_parameters']:,} parameters")
    print(f"  one DMFB ({4 * figures['nf']} channels):  {figures['dmfb_parameters']:,} parameters")
    print(f"  discriminator ({size}²):  {figures['discriminator_parameters_trainable']:,} trainable parameters")
    macs = figures["generator_macs"]
    print(f"  generator forward at {size}²:  {macs:,} multiply-accumulates ({macs / 1e9:.2f} G, {2 * macs / 1e9:.1f} GFLOP)")
    return 0
