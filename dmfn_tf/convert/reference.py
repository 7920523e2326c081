"""Reading the authors' PyTorch checkpoints into Keras models (no files written).

The architecture is read off the checkpoint itself (`infer_generator_config`,
`infer_discriminator_config`), the Keras model is built to match, and the tensors are loaded
all-or-nothing through `official_mapping`. TensorFlow is imported inside the functions only.

Example:

```python
from dmfn_tf.convert.reference import load_generator_from_reference

generator = load_generator_from_reference("DMFN_celeba_G.pth")  # a keras.Model
```
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from dmfn_tf.convert.official_mapping import (
    infer_discriminator_config,
    infer_generator_config,
    load_reference_discriminator_weights,
    load_reference_generator_weights,
)
from dmfn_tf.convert.torch_checkpoint import load_state_dict
from dmfn_tf.errors import UserError
from dmfn_tf.model_metadata import Architecture, InputConvention, ModelMetadata, Provenance

# The side of the crops the authors trained every published model on (CelebA-HQ, Places2, Paris
# StreetView, FFHQ: 256² images, the shared spec's training recipe and the configs/ of each dataset).
REFERENCE_TRAINED_SIZE = 256
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


def generator_from_state(state: Mapping[str, np.ndarray], source: str):
    from dmfn_tf.models.generator import build_generator

    if _looks_like_discriminator(state) and not _looks_like_generator(state):
        raise UserError(f"{source}: this is a DMFN discriminator checkpoint, not a generator (pass it as the discriminator)")
    config = infer_generator_config(state, source=source)
    generator = build_generator(**config)
    load_reference_generator_weights(generator, state, source=source)
    return generator, config


def discriminator_from_state(state: Mapping[str, np.ndarray], source: str):
    from dmfn_tf.models.discriminator import build_discriminator

    if _looks_like_generator(state) and not _looks_like_discriminator(state):
        raise UserError(f"{source}: this is a DMFN generator checkpoint, not a discriminator")
    config = infer_discriminator_config(state, source=source)
    discriminator = build_discriminator(**config)
    load_reference_discriminator_weights(discriminator, state, source=source)
    return discriminator, config


def reference_metadata(path: str | os.PathLike, config: Mapping, digest: str = "",
                       trained_size: int = REFERENCE_TRAINED_SIZE) -> ModelMetadata:
    """The description of a generator made from the authors' checkpoint at `path` (`dmfn_tf.model_metadata`).

    Args:
        path: the checkpoint; only its file name is recorded, never its folder.
        config: its `infer_generator_config` (nf, n_blocks, block).
        digest: its SHA-256, where computed.
        trained_size: the side of their training images (their discriminator's `image_size` where known).
    """
    checksum = f" (SHA-256 {digest})" if digest else ""
    provenance = Provenance(made_by="dmfn convert", data=f"the authors' published checkpoint "
                            f"{os.path.basename(os.fspath(path))}{checksum}, trained on {trained_size}x{trained_size} images")
    architecture = Architecture(int(config["nf"]), int(config["n_blocks"]), str(config["block"]))
    return ModelMetadata(trained_size, architecture, provenance, InputConvention())


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

    ```python
    generator = load_generator_from_reference("latest_G.pth")
    generator.count_params()
    # -> 9037443
    ```
    """
    source = os.fspath(path)
    return generator_from_state(read_reference_state_dict(source), source)[0]


def load_discriminator_from_reference(path: str | os.PathLike):
    """Builds a Keras discriminator from one of the authors' discriminator checkpoints.

    `nf` and the image size come from the checkpoint; BatchNorm statistics are loaded with the
    weights.

    Args:
        path: a `.pth`/`.pt` file written by `torch.save`, or an `.npz` with the same tensor names.

    Returns:
        The discriminator `keras.Model` (inputs `[local_crop, image]`, outputs `(logit, features)`).

    Example:

    ```python
    discriminator = load_discriminator_from_reference("latest_D.pth")
    ```
    """
    source = os.fspath(path)
    return discriminator_from_state(read_reference_state_dict(source), source)[0]
