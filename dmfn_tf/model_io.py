"""Generator files: loading a generator from whatever a user points at, and saving one safely.

Loading (`load_generator`) accepts a `.keras` generator file, a directory holding `GENERATOR_FILE`
(a training run or a conversion's output), or one of the authors' generator checkpoints
(`.pth`/`.pt`, or `.npz` with the same tensor names), read by `dmfn_tf.convert.reference` without
PyTorch and mapped onto a generator of the checkpoint's shape. Saving (`save_model_atomically`)
replaces a `.keras` file only once the new one is complete.
"""

from __future__ import annotations

import os

from dmfn_tf.atomic_files import atomic_path
from dmfn_tf.errors import UserError

# The generator file of a training run or conversion directory.
GENERATOR_FILE = "generator.keras"
REFERENCE_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".npz")


class ModelLoadError(UserError):
    """A model path is missing, unreadable, or does not hold a DMFN generator."""


def resolve_generator_path(path: str) -> str:
    """The file `load_generator` reads for `path` (a run directory resolves to its generator file).

    Args:
        path: a `.keras` file, a run directory, or a `.pth`/`.npz` reference checkpoint.
    """
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such model file or run directory")
    if os.path.isdir(path):
        candidate = os.path.join(path, GENERATOR_FILE)
        if not os.path.isfile(candidate):
            raise ModelLoadError(f"{path}: a run directory must contain {GENERATOR_FILE}, this one does not")
        return candidate
    suffix = os.path.splitext(path)[1].lower()
    if suffix != ".keras" and suffix not in REFERENCE_CHECKPOINT_SUFFIXES:
        raise ModelLoadError(
            f"{path}: unsupported model file {suffix or '(no suffix)'}; expected a .keras generator, a run "
            f"directory or a reference checkpoint ({', '.join(REFERENCE_CHECKPOINT_SUFFIXES)})"
        )
    return path


def _check_is_generator(model, source: str):
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(f"{source}: not a DMFN generator (expected one input and one output)")
    in_channels, out_channels = inputs[0].shape[-1], outputs[0].shape[-1]
    if in_channels != 4 or out_channels != 3:
        raise ModelLoadError(
            f"{source}: not a DMFN generator (input has {in_channels} channels, output {out_channels}; expected 4 and 3)"
        )
    return model


def load_generator(path: str):
    """Loads a DMFN generator as a `keras.Model`.

    `.keras` files are loaded with Keras' safe mode on (no arbitrary code from the file); this
    package's custom layers are registered by importing `dmfn_tf.models.generator`.

    Args:
        path: a `.keras` generator file, a training run directory holding `generator.keras`, or a
            reference checkpoint (`.pth`, `.pt`, `.npz`).

    Returns:
        The generator: input `[B, H, W, 4]`, output `[B, H, W, 3]`.

    Example:

    >>> generator = load_generator("runs/celeba_hq")  # reads runs/celeba_hq/generator.keras
    """
    source = resolve_generator_path(path)  # before importing Keras: bad paths fail fast

    import keras

    import dmfn_tf.models.generator  # noqa: F401  (registers the custom layers with Keras)

    if source.lower().endswith(REFERENCE_CHECKPOINT_SUFFIXES):
        from dmfn_tf.convert.reference import load_generator_from_reference

        return _check_is_generator(load_generator_from_reference(source), source)
    try:
        model = keras.saving.load_model(source, compile=False)
    except Exception as err:  # Keras raises ValueError, TypeError, OSError, zipfile errors, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{source}: not a loadable Keras model file ({reason[:300]})") from None
    return _check_is_generator(model, source)


def save_model_atomically(model, path: str | os.PathLike) -> None:
    """Saves a Keras model as a `.keras` file, replacing `path` only once the new file is complete.

    Args:
        model: the `keras.Model` to save.
        path: the destination, ending in `.keras`.

    Example:

    ```python
    save_model_atomically(trainer.generator, "runs/tiny/generator.keras")
    generator = load_generator("runs/tiny")
    ```
    """
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"a Keras model file must end in .keras, got {path}")
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)


def default_model_path() -> str | None:
    """The generator commands use when no model is named; None until a pretrained model ships with the package."""
    return None
