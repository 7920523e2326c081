"""`dmfn export`: write a trained generator in a registered export format (`dmfn_tf.serving.export`).

The formats, their files and their options are those of `dmfn_tf.serving.export.EXPORT_FORMATS`
(SavedModel for TF Serving, TFLite models, a `.keras` file), which `--format`'s choices and help
list; outputs go under `--out` (default `saved_models/`). Formats that describe themselves carry the
model's description (`dmfn_tf.model_metadata`: trained size, architecture, input convention,
provenance); the fixed TFLite size defaults to the model's trained size (`dmfn_tf.model_io.trained_size`).
Existing outputs are only replaced with `--overwrite`; an incomplete leftover (a 0-byte file, a
SavedModel folder without `saved_model.pb`) is replaced without it. Every output is written under a
temporary name beside it and renamed into place (`dmfn_tf.atomic_files`): an interrupted export
keeps the previous file or folder, and `--overwrite` replaces a SavedModel folder whole, never
merging old and new files. `--name` must be a plain file name (no folder, `..` or control characters).
"""

from __future__ import annotations

import os

from dmfn_tf.cli import model_option
from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS
from dmfn_tf.serving.export import DEFAULT_NAME, EXPORT_FORMATS, TFLITE_QUANTIZATIONS, planned_paths

# Longest --name: the longest file name it becomes ("<name>_dynamic_float16.tflite") stays under 255 bytes.
MAX_NAME_LENGTH = 200


def _format_help() -> str:
    help_text = "; ".join(f"{name}: {export_format.help}" for name, export_format in EXPORT_FORMATS.items())
    return help_text.replace("%", "%%")  # argparse formats help with %


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help=f"export a generator for serving ({', '.join(EXPORT_FORMATS)})")
    model_option.add_argument(parser)
    parser.add_argument("--format", required=True, choices=tuple(EXPORT_FORMATS), help=_format_help())
    parser.add_argument("--out", default="saved_models", help="output folder (default: saved_models/)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"base name of the exported files (default: {DEFAULT_NAME})")
    parser.add_argument("--version", type=int, default=1, help="SavedModel version folder for TF Serving (default: 1)")
    parser.add_argument("--size", type=int,
                        help="side of the fixed-size TFLite model (default: the model's trained size, else 256)")
    parser.add_argument(
        "--quantization", nargs="+", choices=TFLITE_QUANTIZATIONS, default=list(TFLITE_QUANTIZATIONS),
        help="TFLite variants to write (default: all three)",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
        help=f"SavedModel: largest batch x height x width per request (default {DEFAULT_MAX_PIXELS:,})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing exported files")
    parser.set_defaults(func=run)


def _format_options(args) -> dict:
    """The options of the chosen format, from the flags of the same names."""
    return {option: getattr(args, option) for option in EXPORT_FORMATS[args.format].flags}


def check_plain_name(name: str) -> str:
    """`name` if it is a plain file name: not empty, no folder separator, not `.` or `..`, no control characters.

    Raises:
        UserError: otherwise (the message shows the name with `repr`, so a NUL or newline is visible).
    """
    separators = {"/", "\\", os.sep, os.altsep or "/"}
    if (not name or name in (".", "..") or any(c in separators for c in name) or len(name.encode()) > MAX_NAME_LENGTH
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise UserError(f"--name must be a plain file name (no folder, '..' or control characters, at most "
                        f"{MAX_NAME_LENGTH} bytes), got {name!r}")
    return name


# What a SavedModel folder holds besides `saved_model.pb`.
_SAVED_MODEL_PARTS = {"variables", "assets", "assets.extra", "fingerprint.pb"}


def _is_leftover(path: str) -> bool:
    """An incomplete output of an interrupted export: a 0-byte file, or a folder holding SavedModel parts
    but no `saved_model.pb` (any other folder is the user's, and is kept)."""
    if os.path.isdir(path) and not os.path.islink(path):
        return set(os.listdir(path)) <= _SAVED_MODEL_PARTS
    return os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == 0


def _validate(args) -> None:
    from dmfn_tf.inpaint.contract import SIZE_MULTIPLE

    if args.size <= 0 or args.size % SIZE_MULTIPLE:
        raise UserError(f"--size must be a positive multiple of {SIZE_MULTIPLE}, got {args.size}")
    if args.max_pixels <= 0:
        raise UserError(f"--max-pixels must be positive, got {args.max_pixels}")
    if args.version < 0:
        raise UserError(f"--version must be a non-negative integer, got {args.version}")
    check_plain_name(args.name)
    paths = planned_paths(args.format, args.out, args.name, **_format_options(args))
    existing = [path for path in paths if os.path.lexists(path) and not _is_leftover(path)]
    if existing and not args.overwrite:
        raise UserError(f"{existing[0]} already exists; pass --overwrite to replace it")


def _default_size(args) -> None:
    """`--size` left out: the model's trained size for formats with a size (256 where it records none)."""
    from dmfn_tf.inpaint.strategies import DEFAULT_TRAINED_SIZE
    from dmfn_tf.model_io import trained_size

    if args.size is None:
        sized = "size" in EXPORT_FORMATS[args.format].flags
        args.size = (trained_size(args.model) or DEFAULT_TRAINED_SIZE) if sized else DEFAULT_TRAINED_SIZE


def run(args) -> int:
    from dmfn_tf.model_io import load_generator, model_metadata
    from dmfn_tf.serving.export import export

    _default_size(args)
    _validate(args)
    model = model_option.model_or_shipped(args)
    metadata = model_metadata(model) if EXPORT_FORMATS[args.format].describes_itself else None
    paths = export(load_generator(model), args.format, args.out, name=args.name, metadata=metadata,
                   **_format_options(args))
    for path in paths:
        print(f"wrote {path}")
    return 0
