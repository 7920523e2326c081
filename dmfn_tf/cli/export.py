"""`dmfn export`: write a trained generator as a SavedModel (TF Serving), TFLite models or a `.keras` file.

Outputs under `--out` (default `saved_models/`):
- `saved_model`: `<out>/<name>/<version>/`, the layout TF Serving's `--model_base_path=<out>/<name>` expects.
- `tflite`: `<out>/<name>_<size>_<quantization>.tflite` (fixed size) and
  `<out>/<name>_dynamic_<quantization>.tflite` for each requested quantisation.
- `keras`: `<out>/<name>.keras`.
The SavedModel and `.keras` outputs carry the model's description (`dmfn_tf.model_metadata`:
trained size, architecture, input convention, provenance); the fixed TFLite size defaults to the
model's trained size (`dmfn_tf.model_io.trained_size`).
Existing outputs are only replaced with `--overwrite`; an incomplete leftover (a 0-byte file, a
SavedModel folder without `saved_model.pb`) is replaced without it. Every output is written under a
temporary name beside it and renamed into place (`dmfn_tf.atomic_files`): an interrupted export
keeps the previous file or folder, and `--overwrite` replaces a SavedModel folder whole, never
merging old and new files. `--name` must be a plain file name (no folder, `..` or control characters).
"""

from __future__ import annotations

import os

from dmfn_tf.atomic_files import atomic_path, remove_stale_temporaries
from dmfn_tf.cli import model_option
from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS

FORMATS = ("saved_model", "tflite", "keras")
QUANTIZATIONS = ("float32", "float16", "int8")
# Longest --name: the longest file name it becomes ("<name>_dynamic_float16.tflite") stays under 255 bytes.
MAX_NAME_LENGTH = 200


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a generator for serving (SavedModel, TFLite, .keras)")
    model_option.add_argument(parser)
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", default="saved_models", help="output folder (default: saved_models/)")
    parser.add_argument("--name", default="dmfn", help="base name of the exported files (default: dmfn)")
    parser.add_argument("--version", type=int, default=1, help="SavedModel version folder for TF Serving (default: 1)")
    parser.add_argument("--size", type=int,
                        help="side of the fixed-size TFLite model (default: the model's trained size, else 256)")
    parser.add_argument(
        "--quantization", nargs="+", choices=QUANTIZATIONS, default=list(QUANTIZATIONS),
        help="TFLite variants to write (default: all three)",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
        help=f"SavedModel: largest batch x height x width per request (default {DEFAULT_MAX_PIXELS:,})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing exported files")
    parser.set_defaults(func=run)


def _tflite_variants(args) -> list[tuple[str, int | None, str]]:
    """`(path, size or None for dynamic, quantization)` of each TFLite model to write."""
    return [
        (os.path.join(args.out, f"{args.name}_{size or 'dynamic'}_{quantization}.tflite"), size, quantization)
        for size in (args.size, None)
        for quantization in args.quantization
    ]


def _planned_paths(args) -> list[str]:
    if args.format == "saved_model":
        return [os.path.join(args.out, args.name, str(args.version))]
    if args.format == "keras":
        return [os.path.join(args.out, f"{args.name}.keras")]
    return [path for path, _, _ in _tflite_variants(args)]


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


def _validate(args) -> list[str]:
    from dmfn_tf.inpaint.contract import SIZE_MULTIPLE

    if args.size <= 0 or args.size % SIZE_MULTIPLE:
        raise UserError(f"--size must be a positive multiple of {SIZE_MULTIPLE}, got {args.size}")
    if args.max_pixels <= 0:
        raise UserError(f"--max-pixels must be positive, got {args.max_pixels}")
    if args.version < 0:
        raise UserError(f"--version must be a non-negative integer, got {args.version}")
    check_plain_name(args.name)
    paths = _planned_paths(args)
    existing = [path for path in paths if os.path.lexists(path) and not _is_leftover(path)]
    if existing and not args.overwrite:
        raise UserError(f"{existing[0]} already exists; pass --overwrite to replace it")
    return paths


def _default_size(args) -> None:
    """`--size` left out: the model's trained size for TFLite (256 where it records none)."""
    from dmfn_tf.inpaint.strategies import DEFAULT_TRAINED_SIZE
    from dmfn_tf.model_io import trained_size

    if args.size is None:
        args.size = (trained_size(args.model) or DEFAULT_TRAINED_SIZE) if args.format == "tflite" else DEFAULT_TRAINED_SIZE


def run(args) -> int:
    from dmfn_tf.model_io import load_generator, model_metadata

    _default_size(args)
    paths = _validate(args)
    model = model_option.model_or_shipped(args)
    metadata = model_metadata(model) if args.format != "tflite" else None
    generator = load_generator(model)
    os.makedirs(args.out, exist_ok=True)
    for folder in {os.path.dirname(path) for path in paths}:
        remove_stale_temporaries(folder)  # what a killed export left
    if args.format == "saved_model":
        from dmfn_tf.serving.saved_model_export import export_saved_model

        export_saved_model(generator, paths[0], max_pixels=args.max_pixels, metadata=metadata)
    elif args.format == "keras":
        from dmfn_tf.serving.keras_export import export_keras

        export_keras(generator, paths[0], metadata=metadata)
    else:
        from dmfn_tf.serving.tflite_export import convert_to_tflite

        for path, size, quantization in _tflite_variants(args):
            content = convert_to_tflite(generator, size=size, quantization=quantization)
            with atomic_path(path, suffix=".tflite") as temporary, open(temporary, "wb") as file:
                file.write(content)
    for path in paths:
        print(f"wrote {path}")
    return 0
