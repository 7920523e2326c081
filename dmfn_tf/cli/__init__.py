"""The `dmfn` command line.

Each subcommand lives in its own module of this package, which defines `register(subparsers)`
(adding its parser and setting `func`) and imports TensorFlow only inside the function that runs,
so that `dmfn --help` stays fast.

Errors: a `UserError` is printed as one line and exits with status 2, and so are the failures a
user's files or machine cause rather than a bug: any `OSError` (missing file, permission denied,
disk full, file-size limit), an image decoding error and `MemoryError`, each naming the file where
the error knows it. `--debug` (before or after the subcommand) or the environment variable
`DMFN_DEBUG=1` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from dmfn_tf.errors import UserError

# Module names in this package, one per subcommand, in the order `--help` lists them.
SUBCOMMAND_MODULES = ("summary", "train", "evaluate", "inpaint", "export", "convert", "demo", "app")
DEBUG_VARIABLE = "DMFN_DEBUG"
_DEBUG_HELP = f"show the full traceback of an error (or set {DEBUG_VARIABLE}=1)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmfn", description="DMFN image inpainting in TensorFlow / Keras.")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(subparsers)
    for subparser in subparsers.choices.values():
        # SUPPRESS: without the flag after the subcommand, keep the value parsed before it.
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def describe_failure(err: BaseException) -> str | None:
    """One line for a failure caused by the user's files or machine, or None for anything else (a bug).

    Args:
        err: the exception that ended the command.
    """
    wrapped = _user_error_inside(err)
    if wrapped is not None:
        return wrapped
    if isinstance(err, MemoryError):
        return "ran out of memory; lower the pixel budget or the batch size, or use a machine with more memory"
    if isinstance(err, OSError) and err.strerror:
        # e.g. PermissionError(13, "Permission denied", "runs/x/config.yaml")
        files = " -> ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
        return f"{files}: {err.strerror}" if files else err.strerror
    if isinstance(err, OSError) or type(err).__name__ in ("DecompressionBombError", "DecompressionBombWarning"):
        return _first_line(err)  # Pillow's decode errors name the file
    if type(err).__module__.startswith("tensorflow") and type(err).__name__ in (
        "InvalidArgumentError", "DataLossError", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError",
    ):
        return _first_line(err)
    return None


def _user_error_inside(err: BaseException) -> str | None:
    """The message of a `UserError` raised inside a TensorFlow function, which TensorFlow wraps in its own
    error (e.g. `dmfn_tf.data.guarded_reader.DataUnavailable` inside a `tf.data` pipeline), or None."""
    if not type(err).__module__.startswith("tensorflow"):
        return None
    names, pending = set(), [UserError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    pattern = r"\b(?:" + "|".join(re.escape(name) for name in sorted(names)) + r"): (.+)"
    match = re.search(pattern, str(err))
    return match.group(1).strip() if match else None


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{lines[0]} ({type(err).__name__})" if lines else type(err).__name__


def main(argv=None) -> int:
    # TensorFlow's C++ INFO/WARNING lines (oneDNN, converter chatter) drown the command's own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print(f"dmfn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        message = " ".join(str(err).split()) if isinstance(err, UserError) else describe_failure(err)
        if debug or message is None:
            raise
        print(f"dmfn {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
