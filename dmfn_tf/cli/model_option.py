"""`--model` of the commands that run a generator: optional, the shipped model when omitted."""

from __future__ import annotations

import sys

MODEL_HELP = (".keras generator, run directory, reference .pth/.npz, or 'shipped' "
              "(the default: the model that ships with the package)")


def add_argument(parser, help: str = MODEL_HELP) -> None:
    """Adds an optional `--model`."""
    parser.add_argument("--model", help=help)


def model_or_shipped(args) -> str:
    """`args.model`, or the shipped model's file, announced on stderr (a missing file is a UserError)."""
    from dmfn_tf.model_io import SHIPPED, default_model_path

    if args.model is not None and args.model != SHIPPED:
        return args.model
    path = default_model_path()
    print(f"using the shipped model {path}", file=sys.stderr, flush=True)
    return path
