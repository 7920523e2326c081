"""Generator files: loading a generator from whatever a user points at, and saving one safely.

Loading (`load_generator`) accepts a `.keras` generator file, a directory holding `GENERATOR_FILE`
(a training run or a conversion's output), or one of the authors' generator checkpoints
(`.pth`/`.pt`, or `.npz` with the same tensor names), read by `dmfn_tf.convert.reference` without
PyTorch and mapped onto a generator of the checkpoint's shape. No path, or the word `SHIPPED`
("shipped"), names the model that ships with the package (`default_model_path`). Saving
(`save_model_atomically`) replaces a `.keras` file only once the new one is complete, with the
model's description (`dmfn_tf.model_metadata.ModelMetadata`) inside it when one is given.

`trained_size(path)` is the side of the crops a model was trained on, which the high-resolution
strategies scale windows to, read from what the model says about itself: its file's description;
for a run directory written before models carried one, its `config.yaml` (`model.image_size`); for
the authors' checkpoints, 256.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dmfn_tf.atomic_files import atomic_path
from dmfn_tf.model_file_checks import ModelLoadError, check_keras_file, check_regular_file
from dmfn_tf.model_metadata import ModelMetadata, copy_with_metadata, metadata_from_config, read_model_metadata

# The generator file of a training run or conversion directory, and a run's configuration beside it.
GENERATOR_FILE = "generator.keras"
RUN_CONFIG_FILE = "config.yaml"
REFERENCE_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".npz")
# The pretrained generator shipped in the source tree (`saved_models/README.md` is its model card;
# its file describes itself, trained size included) and the word that names it wherever a model
# path is expected.
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "saved_models"
SHIPPED_MODEL = "dmfn_photo_cpu.keras"
SHIPPED = "shipped"


def default_model_path() -> str:
    """The shipped generator file, the model commands use when none is named.

    Raises:
        ModelLoadError: the file is absent (an installed wheel does not carry `saved_models/`).

    Example:

    ```python
    default_model_path()
    # -> '/home/me/dmfn_tf/saved_models/dmfn_photo_cpu.keras'
    ```
    """
    path = SHIPPED_MODEL_DIR / SHIPPED_MODEL
    if not path.is_file():
        raise ModelLoadError(
            f"no shipped model at {path} (it is in the source tree, not in an installed package); "
            "name a model with --model (a .keras generator, a run directory or a .pth checkpoint)"
        )
    return str(path)


def is_shipped(path: str | None) -> bool:
    """Whether `path` names the shipped model: None, the word `SHIPPED`, or the shipped file itself."""
    if path is None or path == SHIPPED:
        return True
    shipped = SHIPPED_MODEL_DIR / SHIPPED_MODEL
    return shipped.is_file() and os.path.isfile(path) and os.path.samefile(path, shipped)


def trained_size(path: str | None) -> int | None:
    """The side of the square crops the model at `path` was trained on, or None where nothing says.

    Read without loading the model: the description inside a `.keras` file
    (`dmfn_tf.model_metadata`); else, for a run directory's generator file, the run's `config.yaml`
    (`model.image_size`; runs from before model files described themselves); 256 for the authors'
    checkpoints (`dmfn_tf.convert.reference.REFERENCE_TRAINED_SIZE`).

    Args:
        path: a model path as `load_generator` takes it (None or "shipped": the shipped model).

    Example:

    ```python
    trained_size("shipped")       # -> 128
    trained_size("runs/celeba")   # -> 256 (its generator.keras says so)
    ```
    """
    source = resolve_generator_path(path)
    if source.lower().endswith(REFERENCE_CHECKPOINT_SUFFIXES):
        from dmfn_tf.convert.reference import REFERENCE_TRAINED_SIZE

        return REFERENCE_TRAINED_SIZE
    metadata = model_metadata(source)
    return None if metadata is None else metadata.trained_size


def model_metadata(path: str | None) -> ModelMetadata | None:
    """What the model at `path` says about itself (`dmfn_tf.model_metadata`), None where nothing does.

    A `.keras` file by the description inside it; a run directory's generator file written before
    files described themselves by the run's `config.yaml`; a reference checkpoint as `dmfn convert`
    describes it (its architecture read off its tensors, 256²).
    """
    source = resolve_generator_path(path)
    if source.lower().endswith(REFERENCE_CHECKPOINT_SUFFIXES):
        from dmfn_tf.convert.official_mapping import infer_generator_config
        from dmfn_tf.convert.reference import read_reference_state_dict, reference_metadata

        return reference_metadata(source, infer_generator_config(read_reference_state_dict(source), source=source))
    metadata = read_model_metadata(source)
    run_config = os.path.join(os.path.dirname(source), RUN_CONFIG_FILE)
    if metadata is None and os.path.basename(source) == GENERATOR_FILE and os.path.isfile(run_config):
        from dmfn_tf.config import load_config

        return metadata_from_config(load_config(run_config), "dmfn train (an older run: described by its config.yaml)",
                                    run_dir=os.path.dirname(source))
    return metadata


def resolve_generator_path(path: str | None = None) -> str:
    """The file `load_generator` reads for `path` (a run directory resolves to its generator file).

    Args:
        path: a `.keras` file, a run directory, a `.pth`/`.npz` reference checkpoint, or None or
            "shipped" for the shipped model (`default_model_path`).
    """
    if path is None or path == SHIPPED:
        return default_model_path()
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such model file or run directory")
    if os.path.isdir(path):
        if path.lower().endswith((".keras",) + REFERENCE_CHECKPOINT_SUFFIXES):
            raise ModelLoadError(f"{path}: a folder, not a model file (a run directory would contain {GENERATOR_FILE})")
        candidate = os.path.join(path, GENERATOR_FILE)
        if not os.path.isfile(candidate):
            raise ModelLoadError(f"{path}: a run directory must contain {GENERATOR_FILE}, this one does not")
        check_regular_file(candidate)
        return candidate
    check_regular_file(path)  # a FIFO or a device named *.keras would block or never end
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


def load_generator(path: str | None = None):
    """Loads a DMFN generator as a `keras.Model`.

    `.keras` files are loaded with Keras' safe mode on (no arbitrary code from the file); this
    package's custom layers are registered by importing `dmfn_tf.models.generator`.

    Args:
        path: a `.keras` generator file, a training run directory holding `generator.keras`, a
            reference checkpoint (`.pth`, `.pt`, `.npz`), or None or "shipped": the shipped model.

    Returns:
        The generator: input `[B, H, W, 4]`, output `[B, H, W, 3]`.

    Example:

    ```python
    generator = load_generator("runs/celeba_hq")  # reads runs/celeba_hq/generator.keras
    pretrained = load_generator()  # saved_models/dmfn_photo_cpu.keras
    ```
    """
    source = resolve_generator_path(path)  # before importing Keras: bad paths fail fast

    import keras

    import dmfn_tf.models.generator  # noqa: F401  (registers the custom layers with Keras)

    if source.lower().endswith(REFERENCE_CHECKPOINT_SUFFIXES):
        from dmfn_tf.convert.reference import load_generator_from_reference

        return _check_is_generator(load_generator_from_reference(source), source)
    check_keras_file(source)  # sizes from the zip and the config, before Keras inflates or builds anything
    try:
        model = keras.saving.load_model(source, compile=False)
    except Exception as err:  # Keras raises ValueError, TypeError, OSError, zipfile errors, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{source}: not a loadable Keras model file ({reason[:300]})") from None
    return _check_is_generator(model, source)


def save_model_atomically(model, path: str | os.PathLike, metadata: ModelMetadata | None = None) -> None:
    """Saves a Keras model as a `.keras` file, replacing `path` only once the new file is complete.

    Args:
        model: the `keras.Model` to save.
        path: the destination, ending in `.keras`.
        metadata: the model's description, written inside the file (`dmfn_tf.model_metadata`); None
            writes a plain Keras file.

    Example:

    ```python
    save_model_atomically(trainer.generator, "runs/tiny/generator.keras", metadata=metadata_from_config(cfg, "dmfn train"))
    generator = load_generator("runs/tiny")
    ```
    """
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"a Keras model file must end in .keras, got {path}")
    with atomic_path(path, suffix=".keras") as temporary:
        if metadata is None:
            model.save(temporary)
            return
        # Keras writes the archive itself: save it plainly beside, then copy it with the description in.
        # (Named like `atomic_path`'s temporaries, so a killed process's leftover is removed later.)
        handle, plain = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-{os.getpid()}-", suffix=".keras",
                                         dir=os.path.dirname(os.path.abspath(path)))
        os.close(handle)
        try:
            model.save(plain)
            copy_with_metadata(plain, temporary, metadata)
        finally:
            os.remove(plain)


def write_model_metadata(path: str | os.PathLike, metadata: ModelMetadata) -> None:
    """Writes `metadata` into the existing `.keras` file at `path` (atomically), its weights untouched byte for byte.

    Example:

    ```python
    write_model_metadata("old_run/generator.keras", metadata_from_config(load_config("old_run/config.yaml"), "hand"))
    ```
    """
    path = os.fspath(path)
    check_keras_file(path)
    with atomic_path(path, suffix=".keras") as temporary:
        copy_with_metadata(path, temporary, metadata)
