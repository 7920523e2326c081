"""One entry point for every export format: `export(generator, format, out, **options)`.

The formats live in one registry, `EXPORT_FORMATS` (name -> `ExportFormat`). `dmfn export` takes
its `--format` choices and help from it and the demo exports through `export`, so both write the
same files under the same names. Built in:

- `saved_model`: `<out>/<name>/<version>/`, the layout TF Serving's `--model_base_path=<out>/<name>`
  expects (`dmfn_tf.serving.saved_model_export`); options `version`, `max_pixels`.
- `tflite`: `<out>/<name>_<size>_<quantization>.tflite` (fixed size) and, unless `dynamic=False`,
  `<out>/<name>_dynamic_<quantization>.tflite` (`dmfn_tf.serving.tflite_export`); options `size`,
  `quantization` (a list), `dynamic`.
- `keras`: `<out>/<name>.keras` (`dmfn_tf.serving.keras_export`).

Adding a format is one module that writes it plus one `register_export_format(ExportFormat(...))`
call here: `paths` names what it writes (known before the model is loaded, so the CLI can refuse
to overwrite), `write` writes each path atomically (under a temporary name, renamed into place:
`dmfn_tf.atomic_files`), and `flags` lists the `dmfn export` flags it reads. This module imports
no TensorFlow, so `dmfn --help` stays fast: the writers import their modules when they run.

Example:

```python
paths = export(generator, "tflite", "saved_models", size=128, quantization=["float16"])
# -> ['saved_models/dmfn_128_float16.tflite', 'saved_models/dmfn_dynamic_float16.tflite']
```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dmfn_tf.atomic_files import atomic_path, remove_stale_temporaries

# TFLite variants (`dmfn_tf.serving.tflite_export`): float32, float16 weights, dynamic-range int8.
TFLITE_QUANTIZATIONS = ("float32", "float16", "int8")
DEFAULT_NAME = "dmfn"


@dataclass(frozen=True)
class ExportFormat:
    """One way of writing a generator out.

    Args:
        name: what `--format` and `export` call it.
        help: one line for `dmfn export --help`.
        paths: `(out, name, **options) -> [path, ...]`, every file or folder the export writes.
        write: `(generator, paths, metadata, **options)`, writes each of `paths` atomically.
        flags: the `dmfn export` flags (by destination name, e.g. `max_pixels`) whose values the
            CLI passes on as keyword options of the same names; `export` callers may pass others.
        describes_itself: its outputs carry the model's description (`dmfn_tf.model_metadata`);
            `write` gets None otherwise.
    """

    name: str
    help: str
    paths: Callable[..., list[str]]
    write: Callable[..., None]
    flags: tuple[str, ...] = ()
    describes_itself: bool = False


EXPORT_FORMATS: dict[str, ExportFormat] = {}


def register_export_format(export_format: ExportFormat) -> ExportFormat:
    """Adds `export_format` to `EXPORT_FORMATS` under its name (a second one of the same name is refused)."""
    if export_format.name in EXPORT_FORMATS:
        raise ValueError(f"export format {export_format.name!r} is already registered")
    EXPORT_FORMATS[export_format.name] = export_format
    return export_format


def export_format(name: str) -> ExportFormat:
    """The registered format `name`; a `ValueError` naming the known ones otherwise."""
    if name not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {name!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    return EXPORT_FORMATS[name]


def planned_paths(format: str, out: str, name: str = DEFAULT_NAME, **options) -> list[str]:
    """What `export` with the same arguments writes, without writing anything."""
    return export_format(format).paths(out, name, **options)


def export(generator, format: str, out: str, *, name: str = DEFAULT_NAME, metadata=None, **options) -> list[str]:
    """Writes `generator` in a registered format under the folder `out`.

    Args:
        generator: a DMFN generator.
        format: a name in `EXPORT_FORMATS`.
        out: the output folder (created if missing); leftovers of a killed export there are removed.
        name: the base name of the files written.
        metadata: the generator's `dmfn_tf.model_metadata.ModelMetadata`, for formats that carry it.
        **options: the format's own options (see the module docstring).

    Returns:
        The paths written, as `planned_paths` names them.
    """
    chosen = export_format(format)
    paths = chosen.paths(out, name, **options)
    for folder in dict.fromkeys(os.path.dirname(path) for path in paths):
        os.makedirs(folder, exist_ok=True)
        remove_stale_temporaries(folder)
    chosen.write(generator, paths, metadata if chosen.describes_itself else None, **options)
    return paths


def _saved_model_paths(out: str, name: str, version: int = 1, max_pixels: int | None = None) -> list[str]:
    return [os.path.join(out, name, str(version))]


def _write_saved_model(generator, paths, metadata, version: int = 1, max_pixels: int | None = None) -> None:
    from dmfn_tf.serving.saved_model_export import export_saved_model

    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    export_saved_model(generator, paths[0], metadata=metadata, **limit)


def _tflite_variants(size: int = 256, quantization: Sequence[str] = TFLITE_QUANTIZATIONS,
                     dynamic: bool = True) -> list[tuple[int | None, str]]:
    """`(size, or None for a dynamic model; quantization)` of each TFLite model to write."""
    return [(variant_size, variant) for variant_size in ((size, None) if dynamic else (size,)) for variant in quantization]


def _tflite_paths(out: str, name: str, **options) -> list[str]:
    return [os.path.join(out, f"{name}_{size or 'dynamic'}_{variant}.tflite") for size, variant in _tflite_variants(**options)]


def _write_tflite(generator, paths, metadata, **options) -> None:
    from dmfn_tf.serving import tflite_export

    for path, (size, quantization) in zip(paths, _tflite_variants(**options)):
        content = tflite_export.convert_to_tflite(generator, size=size, quantization=quantization)
        with atomic_path(path, suffix=".tflite") as temporary, open(temporary, "wb") as file:
            file.write(content)


def _keras_paths(out: str, name: str) -> list[str]:
    return [os.path.join(out, f"{name}.keras")]


def _write_keras(generator, paths, metadata) -> None:
    from dmfn_tf.serving.keras_export import export_keras

    export_keras(generator, paths[0], metadata=metadata)


register_export_format(ExportFormat(
    "saved_model", "a self-contained SavedModel for TF Serving: <out>/<name>/<version>/",
    _saved_model_paths, _write_saved_model, flags=("version", "max_pixels"), describes_itself=True,
))
register_export_format(ExportFormat(
    "tflite", "TFLite models, fixed size and dynamic, per quantisation: <out>/<name>_<size|dynamic>_<quantization>.tflite",
    _tflite_paths, _write_tflite, flags=("size", "quantization"),
))
register_export_format(ExportFormat(
    "keras", "a .keras file for Keras users: <out>/<name>.keras",
    _keras_paths, _write_keras, describes_itself=True,
))
