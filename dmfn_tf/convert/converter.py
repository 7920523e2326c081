"""Converting the authors' PyTorch checkpoints into Keras model files (`dmfn convert`).

The models are built by `dmfn_tf.convert.reference`. Both checkpoints are read and checked before
any file is written, so a failed conversion leaves no half-written output behind; each file is
written atomically. Serving formats are `dmfn export`'s job (`dmfn export --model <out_dir>`).

Example:

```python
record = convert_checkpoint("DMFN_celeba_G.pth", out_dir="converted/celeba")
```
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Mapping

import numpy as np

from dmfn_tf.atomic_files import atomic_path, write_text_atomically
from dmfn_tf.convert.reference import (
    REFERENCE_TRAINED_SIZE,
    discriminator_from_state,
    generator_from_state,
    read_reference_state_dict,
    reference_metadata,
)
from dmfn_tf.errors import UserError
from dmfn_tf.model_io import GENERATOR_FILE, save_model_atomically

GENERATOR_WEIGHTS_FILE = "generator.weights.h5"
DISCRIMINATOR_FILE = "discriminator.keras"
DISCRIMINATOR_WEIGHTS_FILE = "discriminator.weights.h5"
RECORD_FILE = "conversion.json"


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


def _save(model, out_dir: str, model_file: str, weights_file: str, metadata=None) -> None:
    save_model_atomically(model, os.path.join(out_dir, model_file), metadata=metadata)
    with atomic_path(os.path.join(out_dir, weights_file), suffix=".weights.h5") as temporary:
        model.save_weights(temporary)


def convert_checkpoint(
    generator_path: str | os.PathLike,
    discriminator_path: str | os.PathLike | None = None,
    *,
    out_dir: str | os.PathLike,
) -> dict:
    """Converts the authors' generator (and optionally discriminator) checkpoint into Keras files.

    Writes to `out_dir`: `generator.keras` (describing itself: trained at 256², or at the
    discriminator's image size when one is given; `dmfn_tf.model_metadata`) and `generator.weights.h5`; with a discriminator,
    `discriminator.keras` and `discriminator.weights.h5`; and `conversion.json`, which records each source
    file's absolute path, SHA-256, tensor count and dtypes (float16 checkpoints are widened to
    float32), the inferred configuration and the files written. Nothing is written unless both
    checkpoints read and match their models.

    Args:
        generator_path: the generator checkpoint (`.pth`/`.pt` or `.npz`, reference tensor names).
        discriminator_path: the discriminator checkpoint, or None.
        out_dir: the output directory (created if missing; files in it are overwritten).

    Returns:
        The record written to `conversion.json`.

    Example:

    ```python
    record = convert_checkpoint("latest_G.pth", "latest_D.pth", out_dir="converted/celeba")
    record["generator"]["config"]
    # -> {'nf': 64, 'n_blocks': 8, 'block': 'official'}
    ```
    """
    out_dir = os.fspath(out_dir)
    generator_path = os.fspath(generator_path)
    generator_state = read_reference_state_dict(generator_path)
    generator, generator_config = generator_from_state(generator_state, generator_path)
    if discriminator_path is not None:
        discriminator_path = os.fspath(discriminator_path)
        discriminator_state = read_reference_state_dict(discriminator_path)
        discriminator, discriminator_config = discriminator_from_state(discriminator_state, discriminator_path)

    _prepare_out_dir(out_dir)
    record = {
        "generator": _checkpoint_record(
            generator_path, generator_state, generator_config, [GENERATOR_FILE, GENERATOR_WEIGHTS_FILE]
        )
    }
    trained = discriminator_config["image_size"] if discriminator_path is not None else REFERENCE_TRAINED_SIZE
    metadata = reference_metadata(generator_path, generator_config, record["generator"]["sha256"], trained)
    _save(generator, out_dir, GENERATOR_FILE, GENERATOR_WEIGHTS_FILE, metadata)
    if discriminator_path is not None:
        _save(discriminator, out_dir, DISCRIMINATOR_FILE, DISCRIMINATOR_WEIGHTS_FILE)
        record["discriminator"] = _checkpoint_record(
            discriminator_path, discriminator_state, discriminator_config, [DISCRIMINATOR_FILE, DISCRIMINATOR_WEIGHTS_FILE]
        )
    write_text_atomically(os.path.join(out_dir, RECORD_FILE), json.dumps(record, indent=2) + "\n")
    return record
