"""The `dmfn` command line.

Each subcommand lives in its own module of this package, which defines `register(subparsers)`
(adding its parser and setting `func`) and imports TensorFlow only inside the function that runs,
so that `dmfn --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dmfn_tf.errors import UserError

# Module names in this package, one per subcommand, in the order `--help` lists them.
SUBCOMMAND_MODULES = ("summary", "train", "evaluate", "inpaint", "export", "convert", "demo", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmfn", description="DMFN image inpainting in TensorFlow / Keras.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    # TensorFlow's C++ INFO/WARNING lines (oneDNN, converter chatter) drown the command's own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except UserError as err:
        print(f"dmfn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dmfn {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
