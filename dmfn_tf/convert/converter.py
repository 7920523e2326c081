"""Converting the authors' PyTorch checkpoints into Keras models and files.

The architecture is read off the checkpoint itself (`infer_generator_config`,
`infer_discriminator_config`), the Keras models are built to match, and the tensors are loaded
all-or-nothing through `official_mapping`. Both checkpoints are read and checked before any file
is written, so a failed conversion leaves no half-written output behind.

TensorFlow is imported inside the functions only: `dmfn_tf.convert` stays importable without it.

Example:

```python
from dmfn_tf.convert import load_generator_from_reference

generator = load_generator_from_reference("DMFN_celeba_G.pth")  # a keras.Model
```
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Mapping, Sequence

import numpy as np

from dmfn_tf.convert.official_mapping import (
    infer_discriminator_config,
    infer_generator_config,
    load_reference_discriminator_weights,
    load_reference_generator_weights,
)
from dmfn_tf.convert.torch_checkpoint import load_state_dict
from dmfn_tf.errors import UserError

GENERATOR_FILE = "generator.keras"
GENERATOR_WEIGHTS_FILE = "generator.weights.h5"
DISCRIMINATOR_FILE = "discriminator.keras"
DISCRIMINATOR_WEIGHTS_FILE = "discriminator.weights.h5"
RECORD_FILE = "conversion.json"
# Version folder "1" under "saved_model/": the layout TF Serving's `--model_base_path=<out_dir>/saved_model` expects.
SAVED_MODEL_DIRECTORY = os.path.join("saved_model", "1")
EXPORT_FORMATS = ("saved_model", "tflite")
# `torch.nn.DataParallel` prefixes every name with this; the authors unwrap before saving, others may not.
_DATA_PARALLEL_PREFIX = "module."


def read_reference_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a reference checkpoint (`.pth`/`.pt` or `.npz`) as NumPy arrays in PyTorch layout.

    Names saved from a `DataParallel` wrapper (all starting with `module.`) lose that prefix.

    Args:
        path: the checkpoint file.

    Returns:
        tensor name -> array, in the file's order.
    """
    state = load_state_dict(path)
    if state and all(name.startswith(_DATA_PARALLEL_PREFIX) for name in state):
        state = {name[len(_DATA_PARALLEL_PREFIX):]: value for name, value in state.items()}
    return state


def _looks_like_discriminator(state: Mapping[str, np.ndarray]) -> bool:
    return "global_model.0.conv.weight" in state


def _looks_like_generator(state: Mapping[str, np.ndarray]) -> bool:
    return "encoder.0.conv.weight" in state


def _generator_from_state(state: Mapping[str, np.ndarray], source: str):
    from dmfn_tf.models.generator import build_generator

    if _looks_like_discriminator(state) and not _looks_like_generator(state):
        raise UserError(f"{source}: this is a DMFN discriminator checkpoint, not a generator (pass it as the discriminator)")
    config = infer_generator_config(state, source=source)
    generator = build_generator(**config)
    load_reference_generator_weights(generator, state, source=source)
    return generator, config


def _discriminator_from_state(state: Mapping[str, np.ndarray], source: str):
    from dmfn_tf.models.discriminator import build_discriminator

    if _looks_like_generator(state) and not _looks_like_discriminator(state):
        raise UserError(f"{source}: this is a DMFN generator checkpoint, not a discriminator")
    config = infer_discriminator_config(state, source=source)
    discriminator = build_discriminator(**config)
    load_reference_discriminator_weights(discriminator, state, source=source)
    return discriminator, config


def load_generator_from_reference(path: str | os.PathLike):
    """Builds a Keras generator from one of the authors' generator checkpoints.

    `nf`, the number of blocks and the block variant come from the checkpoint.

    Args:
        path: a `.pth`/`.pt` file written by `torch.save`, or an `.npz` with the same tensor names.

    Returns:
        The generator `keras.Model` (input `[B, H, W, 4]`, output `[B, H, W, 3]`).

    Raises:
        UserError: the file is unreadable or not a DMFN generator checkpoint; a
            `CheckpointMismatchError` lists every missing, unexpected or mis-shaped tensor.

    Example:

    >>> generator = load_generator_from_reference("latest_G.pth")
    >>> generator.count_params()
    9037443
    """
    source = os.fspath(path)
    return _generator_from_state(read_reference_state_dict(source), source)[0]


def load_discriminator_from_reference(path: str | os.PathLike):
    """Builds a Keras discriminator from one of the authors' discriminator checkpoints.

    `nf` and the image size come from the checkpoint; BatchNorm statistics are loaded with the
    weights.

    Args:
        path: a `.pth`/`.pt` file written by `torch.save`, or an `.npz` with the same tensor names.

    Returns:
        The discriminator `keras.Model` (inputs `[local_crop, image]`, outputs `(logit, features)`).

    Example:

    >>> discriminator = load_discriminator_from_reference("latest_D.pth")
    """
    source = os.fspath(path)
    return _discriminator_from_state(read_reference_state_dict(source), source)[0]


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 digest of a file, read in chunks.

    Args:
        path: the file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_export_request(export_formats: Sequence[str], tflite_size: int | None, tflite_quantization: str) -> None:
    unknown = [name for name in export_formats if name not in EXPORT_FORMATS]
    if unknown:
        raise UserError(f"unknown export format(s) {', '.join(unknown)}; expected some of {', '.join(EXPORT_FORMATS)}")
    if "tflite" in export_formats:
        from dmfn_tf.serving.tflite_export import QUANTIZATIONS

        if tflite_size is not None and (not isinstance(tflite_size, int) or tflite_size <= 0 or tflite_size % 4):
            raise UserError(f"TFLite size must be a positive multiple of 4 (or dynamic: None), got {tflite_size!r}")
        if tflite_quantization not in QUANTIZATIONS:
            raise UserError(f"unknown TFLite quantization {tflite_quantization!r}; expected one of {', '.join(QUANTIZATIONS)}")


def _prepare_out_dir(out_dir: str) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"{out_dir}: exists and is not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out_dir}: cannot create the output directory ({err.strerror})") from None


def _checkpoint_record(path: str, state: Mapping[str, np.ndarray], config: dict, files: list[str]) -> dict:
    return {
        "source": os.path.abspath(path),
        "sha256": file_sha256(path),
        "tensors": len(state),
        "source_dtypes": sorted({str(value.dtype) for value in state.values()}),
        "config": config,
        "files": files,
    }


def _export(generator, out_dir: str, export_formats: Sequence[str], tflite_size: int | None, tflite_quantization: str) -> dict:
    """Writes the requested serving formats of the generator; returns format -> path relative to `out_dir`."""
    written = {}
    if "saved_model" in export_formats:
        from dmfn_tf.serving.saved_model_export import export_saved_model

        export_saved_model(generator, os.path.join(out_dir, SAVED_MODEL_DIRECTORY))
        written["saved_model"] = SAVED_MODEL_DIRECTORY
    if "tflite" in export_formats:
        from dmfn_tf.serving.tflite_export import convert_to_tflite

        name = f"generator_{tflite_size or 'dynamic'}_{tflite_quantization}.tflite"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(convert_to_tflite(generator, size=tflite_size, quantization=tflite_quantization))
        written["tflite"] = name
    return written


def convert_checkpoint(
    generator_path: str | os.PathLike,
    discriminator_path: str | os.PathLike | None = None,
    *,
    out_dir: str | os.PathLike,
    export_formats: Sequence[str] = (),
    tflite_size: int | None = 256,
    tflite_quantization: str = "float32",
) -> dict:
    """Converts the authors' generator (and optionally discriminator) checkpoint into Keras files.

    Writes to `out_dir`: `generator.keras` and `generator.weights.h5`; with a discriminator,
    `discriminator.keras` and `discriminator.weights.h5`; the requested exports (`saved_model/1/`,
    `generator_<size>_<quantization>.tflite`, see `dmfn_tf.serving`); and `conversion.json`, which records each source
    file's absolute path, SHA-256, tensor count and dtypes (float16 checkpoints are widened to
    float32), the inferred configuration and the files written. Nothing is written unless both
    checkpoints read and match their models.

    Args:
        generator_path: the generator checkpoint (`.pth`/`.pt` or `.npz`, reference tensor names).
        discriminator_path: the discriminator checkpoint, or None.
        out_dir: the output directory (created if missing; files in it are overwritten).
        export_formats: any of "saved_model" and "tflite".
        tflite_size: the TFLite model's fixed square input side, or None for any size.
        tflite_quantization: "float32", "float16" or "int8" (dynamic range).

    Returns:
        The record written to `conversion.json`.

    Example:

    >>> record = convert_checkpoint("latest_G.pth", "latest_D.pth", out_dir="converted/celeba")
    >>> record["generator"]["config"]
    {'nf': 64, 'n_blocks': 8, 'block': 'official'}
    """
    out_dir = os.fspath(out_dir)
    export_formats = tuple(export_formats)
    _check_export_request(export_formats, tflite_size, tflite_quantization)

    generator_path = os.fspath(generator_path)
    generator_state = read_reference_state_dict(generator_path)
    generator, generator_config = _generator_from_state(generator_state, generator_path)
    if discriminator_path is not None:
        discriminator_path = os.fspath(discriminator_path)
        discriminator_state = read_reference_state_dict(discriminator_path)
        discriminator, discriminator_config = _discriminator_from_state(discriminator_state, discriminator_path)

    _prepare_out_dir(out_dir)
    generator.save(os.path.join(out_dir, GENERATOR_FILE))
    generator.save_weights(os.path.join(out_dir, GENERATOR_WEIGHTS_FILE))
    record = {
        "generator": _checkpoint_record(
            generator_path, generator_state, generator_config, [GENERATOR_FILE, GENERATOR_WEIGHTS_FILE]
        )
    }
    if discriminator_path is not None:
        discriminator.save(os.path.join(out_dir, DISCRIMINATOR_FILE))
        discriminator.save_weights(os.path.join(out_dir, DISCRIMINATOR_WEIGHTS_FILE))
        record["discriminator"] = _checkpoint_record(
            discriminator_path, discriminator_state, discriminator_config, [DISCRIMINATOR_FILE, DISCRIMINATOR_WEIGHTS_FILE]
        )
    record["exports"] = _export(generator, out_dir, export_formats, tflite_size, tflite_quantization)
    with open(os.path.join(out_dir, RECORD_FILE), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    return record
