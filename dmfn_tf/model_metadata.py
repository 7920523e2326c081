"""What a saved generator says about itself: trained size, architecture, input convention, provenance.

A `.keras` generator written by this package (training, `dmfn convert`, `dmfn export --format
keras`, the shipped model) carries a `ModelMetadata` inside the file, as keras-hub presets keep
their metadata with the weights: under the key `METADATA_KEY` ("dmfn_tf") of the archive's
`metadata.json`, beside Keras' own `keras_version` and `date_saved` (docs/design.md §8). Keras
reads neither when it loads the model. The file alone then tells any loader the side of the
crops the model was trained on (what the high-resolution strategies scale windows to), its
architecture, how to form its input, and where it came from.

Why inside Keras' `metadata.json` and not a member of its own: Keras 3.15 extracts the whole
archive (weights included) to a temporary folder whenever it holds more than its three members,
on every load; an extra key costs nothing. `dmfn_tf.model_file_checks` bounds the member
(`MAX_MODEL_METADATA_BYTES`) before it is read.

Example:

```python
metadata = metadata_from_config(cfg, made_by="dmfn train", run_dir="runs/demo", step=300)
save_model_atomically(generator, "runs/demo/generator.keras", metadata=metadata)  # dmfn_tf.model_io
read_model_metadata("runs/demo/generator.keras").trained_size
# -> 128
```
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import types
import typing
import zipfile

from dmfn_tf.config import BLOCK_VARIANTS, COLOUR_CONVENTIONS, ExperimentConfig, config_to_yaml
from dmfn_tf.input_limits import MAX_MODEL_METADATA_BYTES
from dmfn_tf.model_file_checks import METADATA_MEMBER, ModelLoadError, read_keras_metadata

# The inpainting contract (`dmfn_tf.inpaint.contract`, docs/design.md §1) in words, as model files record it:
# a runtime without this package reads from the file what to feed the generator. (Here, not in
# `dmfn_tf.inpaint.contract`, so that reading a description never imports TensorFlow.)
INPUT_CONVENTION = {
    "pixels": "float32 in [-1, 1]: uint8 x / 127.5 - 1",
    "mask": "[B, H, W, 1] float32, 1 = hole, 0 = known",
    "model_input": "concat([image * (1 - mask), mask]), H and W multiples of 4",
    "output": "[B, H, W, 3] in [-1, 1]; the result is mask * output + (1 - mask) * image",
}
# The key of `metadata.json` that holds this package's description, and the version of its layout.
METADATA_KEY = "dmfn_tf"
FORMAT_VERSION = 1
# Runs live in `~/runs/<name>`; a model file names its run relative to it, never by an absolute path.
RUNS_HOME = os.path.join("~", "runs")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The generator's `build_generator` arguments (docs/design.md §2, §2c)."""

    nf: int
    n_blocks: int
    block: str
    colour_convention: str = "plain"

    def generator_kwargs(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class InputConvention:
    """How to feed the generator (`INPUT_CONVENTION`, docs/design.md §1) and its colour convention (§2c)."""

    pixels: str = INPUT_CONVENTION["pixels"]
    mask: str = INPUT_CONVENTION["mask"]
    model_input: str = INPUT_CONVENTION["model_input"]
    output: str = INPUT_CONVENTION["output"]
    colour_convention: str = "plain"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where the weights came from.

    Attributes:
        made_by: what wrote the file ("dmfn train", "dmfn convert", "scripts/ship_model.py", ...).
        run: the training run, relative to `~/runs` (or the run folder's name); "" if none.
        step: the training step of the weights, where known.
        cpu_hours: process CPU hours of training (the run's clock), where known.
        data: what the model was trained on, in words.
        config_yaml: the recipe (the run's resolved configuration) as YAML text; "" if unknown.
    """

    made_by: str
    run: str = ""
    step: int | None = None
    cpu_hours: float | None = None
    data: str = ""
    config_yaml: str = ""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """A generator file's description (module docstring); `to_dict` / `from_dict` are its JSON form."""

    trained_size: int
    architecture: Architecture
    provenance: Provenance
    input_convention: InputConvention = InputConvention()
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source: str = "<metadata>") -> ModelMetadata:
        """Reads the JSON form, refusing unknown keys, wrong types and conventions this package does not apply.

        Raises:
            ModelLoadError: one line naming `source` and the key.
        """
        if isinstance(values, dict) and isinstance(values.get("format_version"), int) \
                and values["format_version"] > FORMAT_VERSION:
            raise ModelLoadError(f"{source}: its description has format {values['format_version']}, newer than this "
                                 f"dmfn_tf reads ({FORMAT_VERSION}); update dmfn_tf")
        metadata = _build(cls, values, METADATA_KEY, source)
        metadata.check(source)
        return metadata

    def check(self, source: str = "<metadata>") -> None:
        """Refuses values no generator of this package has (see `from_dict`)."""
        where = f"{source}: {METADATA_KEY}"
        if self.trained_size <= 0:
            raise ModelLoadError(f"{where}.trained_size must be positive, got {self.trained_size}")
        architecture = self.architecture
        if architecture.block not in BLOCK_VARIANTS or architecture.colour_convention not in COLOUR_CONVENTIONS:
            raise ModelLoadError(f"{where}.architecture: unknown block {architecture.block!r} or colour convention "
                                 f"{architecture.colour_convention!r}")
        expected = InputConvention(colour_convention=architecture.colour_convention)
        for field in dataclasses.fields(InputConvention):
            if getattr(self.input_convention, field.name) != getattr(expected, field.name):
                raise ModelLoadError(f"{where}.input_convention.{field.name} is "
                                     f"{getattr(self.input_convention, field.name)!r}; this package feeds "
                                     f"{getattr(expected, field.name)!r}")


def _check_type(value, hint, key: str, source: str):
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option in (int, str) and isinstance(value, option) and not isinstance(value, bool):
            return value
    names = " or ".join("null" if option is type(None) else option.__name__ for option in options)
    raise ModelLoadError(f"{source}: {key} must be {names}, got {type(value).__name__}")


def _build(cls, values, key: str, source: str):
    """`cls` from a JSON object: every key known, every required one present, every value of its type."""
    if not isinstance(values, dict):
        raise ModelLoadError(f"{source}: {key} must be a JSON object, got {type(values).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(str(name) for name in values if name not in fields)
    if unknown:
        raise ModelLoadError(f"{source}: {key} has unknown key(s) {', '.join(unknown)[:200]}")
    missing = [name for name, field in fields.items() if name not in values
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise ModelLoadError(f"{source}: {key} lacks {', '.join(missing)}")
    built = {}
    for name, value in values.items():
        hint = hints[name]
        built[name] = (_build(hint, value, f"{key}.{name}", source) if dataclasses.is_dataclass(hint)
                       else _check_type(value, hint, f"{key}.{name}", source))
    return cls(**built)


def home_relative(text: str, home: str | None = None) -> str:
    """`text` with every path under the home folder written `~/...`: a model file or card names no path of
    the machine it was made on (the run `~/runs/<run>`, the corpus `~/data/...`).

    Example:

    ```python
    home_relative("data:\\n  path: /home/me/data/train128", home="/home/me")
    # -> 'data:\\n  path: ~/data/train128'
    ```
    """
    home = (home or os.path.expanduser("~")).rstrip("/")
    if not home:
        return text
    return re.sub(re.escape(home) + r"(?=/|\b|$)", "~", text)


def run_name(run_dir: str | os.PathLike, home: str | None = None) -> str:
    """A run folder's name as a model file records it: its path relative to `~/runs`, else its base name."""
    runs = os.path.join(os.path.realpath(home or os.path.expanduser("~")), "runs")
    real = os.path.realpath(os.fspath(run_dir))
    if real.startswith(runs + os.sep):
        return os.path.relpath(real, runs)
    return os.path.basename(real)


def data_description(cfg: ExperimentConfig) -> str:
    """The training data of `cfg` in words (paths under the home folder written `~/...`)."""
    data, size = cfg.data, cfg.model.image_size
    where = data.tfds_name if data.source == "tfds" else home_relative(data.path) or "(no path)"
    return f"{data.source} {where}: {data.crop} square crops resized to {size}x{size}, {data.mask} masks"


def metadata_from_config(cfg: ExperimentConfig, made_by: str, run_dir: str | os.PathLike | None = None,
                         step: int | None = None, cpu_seconds: float | None = None) -> ModelMetadata:
    """The description of a generator trained (or being trained) with `cfg`.

    Args:
        cfg: the run's configuration (`model.image_size` is the trained size).
        made_by: what writes the file.
        run_dir: the run folder, recorded by `run_name` (never its absolute path).
        step: the step of the weights.
        cpu_seconds: the run's CPU seconds so far (`dmfn_tf.training.clock.TrainingClock.now()[0]`).
    """
    architecture = Architecture(cfg.model.nf, cfg.model.n_blocks, cfg.model.block, cfg.model.colour_convention)
    provenance = Provenance(
        made_by=made_by, run=run_name(run_dir) if run_dir is not None else "",
        step=None if step is None else int(step),
        cpu_hours=None if cpu_seconds is None else round(cpu_seconds / 3600.0, 4),
        data=data_description(cfg), config_yaml=home_relative(config_to_yaml(cfg)),
    )
    return ModelMetadata(cfg.model.image_size, architecture, provenance,
                         InputConvention(colour_convention=cfg.model.colour_convention))


def read_model_metadata(path: str) -> ModelMetadata | None:
    """The description inside the `.keras` file at `path`, or None for a file written without one.

    Reads only the archive's directory, `config.json` and `metadata.json`, within their budgets
    (`dmfn_tf.model_file_checks`); the model is not loaded.

    Raises:
        ModelLoadError: the file is not a bounded Keras archive, or its description is malformed.
    """
    values = read_keras_metadata(path).get(METADATA_KEY)
    return None if values is None else ModelMetadata.from_dict(values, f"{path}: {METADATA_MEMBER}")


def copy_with_metadata(source: str, destination: str, metadata: ModelMetadata) -> None:
    """Copies the `.keras` archive `source` to `destination` with `metadata` in its `metadata.json`.

    Every other member is copied byte for byte (same name, date and compression), so the weights
    stay bit-identical; Keras' own keys of `metadata.json` are kept.
    """
    metadata.check(source)
    merged = {**read_keras_metadata(source), METADATA_KEY: metadata.to_dict()}
    text = json.dumps(merged, indent=1).encode("utf-8")
    if len(text) > MAX_MODEL_METADATA_BYTES:
        raise ModelLoadError(f"{source}: the model's description takes {len(text)} bytes, above the limit of "
                             f"{MAX_MODEL_METADATA_BYTES}")
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w") as copy:
        names = original.namelist()
        for info in original.infolist():
            clone = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            clone.compress_type, clone.external_attr = info.compress_type, info.external_attr
            if info.filename == METADATA_MEMBER:
                copy.writestr(clone, text)
                continue
            clone.file_size = info.file_size
            with original.open(info) as reader, copy.open(clone, "w") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
        if METADATA_MEMBER not in names:
            copy.writestr(METADATA_MEMBER, text)
