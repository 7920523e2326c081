"""Typed experiment configuration, loaded from YAML (read by `dmfn_tf.config_yaml`).

Every section is a dataclass; `load_config` rejects unknown or misspelt keys and values of the
wrong type with a `ConfigError` that names the key and the file, so a typo never silently falls
back to a default.

Example:

```python
cfg = load_config("configs/celeba_hq.yaml")
generator = build_generator(**cfg.model.generator_kwargs())
```
"""

from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dmfn_tf.atomic_files import write_text_atomically
from dmfn_tf.config_yaml import dump_yaml, parse_yaml, read_yaml_file
from dmfn_tf.errors import ConfigError

BLOCK_VARIANTS = ("paper", "official")
GUIDANCE_MODES = ("minmax", "max")
# `train.strategy`: the `tf.distribute` strategy a run trains under (dmfn_tf.training.distribute).
DISTRIBUTION_STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DATA_SOURCES = ("folder", "list", "tfds")
CROP_MODES = ("random", "center")
PERCEPTUAL_NETWORKS = ("vgg19", "lpips_vgg16")
PERCEPTUAL_PREPROCESSING = ("auto", "caffe", "torch", "torch_authors_bug")
# `model.init`: the builders' Keras initialisers, or the authors' (dmfn_tf.models.initializers).
MODEL_INITS = ("keras", "reference")
PERCEPTUAL_REGIONS = ("image", "local")
# How the generator carries each image's absolute colour (dmfn_tf.models.colour_conventions).
COLOUR_CONVENTIONS = ("plain", "standardise", "prefill")
# `model.batchnorm_variance`: the batch variance the discriminator's moving variance averages.
BATCHNORM_VARIANCES = ("unbiased", "biased")
# `train.adam_epsilon_convention`: epsilon added to sqrt(v_hat) (PyTorch) or to sqrt(v) (Keras).
ADAM_EPSILON_CONVENTIONS = ("pytorch", "keras")
# `data.mask_shrink`: how a random box shrinks (dmfn_tf.data.masks.random_box).
MASK_SHRINKS = ("independent", "reference")
# Integers must fit TensorFlow's int64 (steps, seeds and sizes become int64 tensors).
_INT64_RANGE = (-(2**63), 2**63 - 1)
# Random seeds: NumPy's legacy seeding (`keras.utils.set_random_seed`) takes 32-bit values.
_SEED_RANGE = (0, 2**32 - 1)
# Error messages show at most this much of a value.
_SHOWN = reprlib.Repr()  # (keyword arguments need Python 3.12)
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxlevel = 80, 80, 40, 8, 8, 3


def _check_finite(section, where: str) -> None:
    """Every float field of a config dataclass is a finite number (NaN and infinities are refused)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}.{f.name}: must be a finite number, got {value!r}")


def _require(condition: bool, where: str, name: str, expected: str, value: Any) -> None:
    if not condition:
        raise ConfigError(f"{where}.{name}: must be {expected}, got {_SHOWN.repr(value)}")


@dataclass
class ModelConfig:
    """Generator and discriminator architecture (docs/design.md §2, §3)."""

    nf: int = 64
    n_blocks: int = 8
    block: str = "paper"
    image_size: int = 256
    spectral_norm: bool = False
    # A generator file whose weights a run starts from at step 0 (fine-tuning): "shipped" (the model
    # that ships with the package), a `.keras` file or run directory, or "" (random initialisation).
    # A resumed run takes its weights from its checkpoint instead; the discriminator always starts fresh.
    init_generator: str = ""
    # Base width of the discriminator; 0 means `nf`, as in the reference. Its feature-matching
    # weights are 1000 / C² of its widths, so a narrow D (small nf) weighs that loss much more.
    discriminator_nf: int = 0
    # "reference": the authors' initialisation (docs/design.md §6); "keras": the builders' own.
    init: str = "keras"
    # "unbiased" (PyTorch's n/(n-1), the authors') or "biased" (Keras') batch variance in D's moving average.
    batchnorm_variance: str = "unbiased"
    # "plain" (the paper's generator), "standardise" or "prefill" (docs/design.md §2c).
    colour_convention: str = "plain"

    def validate(self, where: str = "model") -> None:
        _check_finite(self, where)
        if self.colour_convention not in COLOUR_CONVENTIONS:
            raise ConfigError(
                f"{where}.colour_convention: unknown value {self.colour_convention!r}; expected one of {COLOUR_CONVENTIONS}"
            )
        if self.init not in MODEL_INITS:
            raise ConfigError(f"{where}.init: unknown initialisation {self.init!r}; expected one of {MODEL_INITS}")
        if self.batchnorm_variance not in BATCHNORM_VARIANCES:
            raise ConfigError(
                f"{where}.batchnorm_variance: unknown value {self.batchnorm_variance!r}; expected one of {BATCHNORM_VARIANCES}"
            )
        if self.block not in BLOCK_VARIANTS:
            raise ConfigError(f"{where}.block: unknown block variant {self.block!r}; expected one of {BLOCK_VARIANTS}")
        if self.nf <= 0:
            raise ConfigError(f"{where}.nf: must be a positive integer, got {self.nf}")
        if self.discriminator_nf < 0:
            raise ConfigError(f"{where}.discriminator_nf: must be >= 0 (0 = nf), got {self.discriminator_nf}")
        if self.n_blocks < 0:
            raise ConfigError(f"{where}.n_blocks: must be >= 0, got {self.n_blocks}")
        if self.image_size <= 0 or self.image_size % 64:
            raise ConfigError(
                f"{where}.image_size: the discriminator needs a positive multiple of 64, got {self.image_size}"
            )

    def generator_kwargs(self) -> dict:
        return {"nf": self.nf, "n_blocks": self.n_blocks, "block": self.block, "colour_convention": self.colour_convention}

    def discriminator_kwargs(self) -> dict:
        return {
            "nf": self.discriminator_nf or self.nf,
            "image_size": self.image_size,
            "spectral_norm": self.spectral_norm,
            "unbiased_variance": self.batchnorm_variance == "unbiased",
        }


@dataclass
class PerceptualConfig:
    """The frozen network behind the perceptual losses (docs/design.md §4).

    `weights`: "imagenet" (Keras download, cached), "none" (random: tests only, loudly warned), or a
    path to a local weights file. `preprocessing`: "auto" picks caffe for Keras ImageNet weights and
    torch for everything else; set it explicitly for a local file of torchvision-trained weights.
    "torch_authors_bug" reproduces the authors' wrong normalisation (docs/design.md §4), only for fine-tuning
    their checkpoints under their exact loss.
    """

    network: str = "vgg19"
    weights: str = "imagenet"
    preprocessing: str = "auto"

    def validate(self, where: str = "perceptual") -> None:
        _check_finite(self, where)
        if self.network not in PERCEPTUAL_NETWORKS:
            raise ConfigError(f"{where}.network: unknown network {self.network!r}; expected one of {PERCEPTUAL_NETWORKS}")
        if self.preprocessing not in PERCEPTUAL_PREPROCESSING:
            raise ConfigError(
                f"{where}.preprocessing: unknown value {self.preprocessing!r}; expected one of {PERCEPTUAL_PREPROCESSING}"
            )


@dataclass
class LossConfig:
    """Weights of the generator objective: each float field is the `weight_key` of one or more terms of
    `dmfn_tf.models.losses.GENERATOR_LOSS_TERMS` (a new term with its own weight adds a field here)."""

    lambda_vgg: float = 25.0
    eta_dis_fm: float = 5.0
    mu_adv: float = 0.003
    gamma_align: float = 1.0
    guidance: str = "minmax"
    # Where the perceptual terms (self_guided, vgg_fm, align) look: "image" (the whole image, the
    # paper's) or "local" (the local discriminator's S/2 box around the hole: 4x less VGG work).
    perceptual_region: str = "image"

    def validate(self, where: str = "loss") -> None:
        _check_finite(self, where)
        if self.guidance not in GUIDANCE_MODES:
            raise ConfigError(f"{where}.guidance: unknown mode {self.guidance!r}; expected one of {GUIDANCE_MODES}")
        if self.perceptual_region not in PERCEPTUAL_REGIONS:
            raise ConfigError(
                f"{where}.perceptual_region: unknown value {self.perceptual_region!r}; expected one of {PERCEPTUAL_REGIONS}"
            )
        weights = [name for name, hint in typing.get_type_hints(type(self)).items() if hint is float]
        for name in weights:  # every float field weighs a term of the objective
            _require(getattr(self, name) >= 0, where, name, ">= 0", getattr(self, name))


@dataclass
class TrainConfig:
    """Optimisation recipe (docs/design.md §6): Adam for G and D, learning rate halved at `lr_decay_steps`."""

    batch_size: int = 16
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    lr_decay_steps: list[int] = field(default_factory=lambda: [50000, 75000])
    lr_decay_factor: float = 0.5
    total_steps: int = 100000
    steps_per_epoch: int = 1000
    checkpoint_every: int = 1000
    image_log_every: int = 500
    seed: int = 0
    strategy: str = "default"
    sync_batchnorm: bool = False
    deterministic: bool = False
    # Adam's epsilon for both optimizers, on the scale `adam_epsilon_convention` names: "pytorch"
    # adds it to sqrt(v_hat) as the authors' run did, "keras" to sqrt(v) (dmfn_tf.training.optimizers).
    adam_epsilon: float = 1e-8
    adam_epsilon_convention: str = "pytorch"
    # Keras dtype policy: mixed_float16 (GPUs, with loss scaling) or mixed_bfloat16 (TPUs, recent GPUs
    # and CPUs with AVX512_BF16); losses and metrics are computed in float32 either way.
    precision: str = "float32"
    # Reconstruction warm-up: the first `warmup_steps` generator updates give the discriminator
    # terms (dis_fm, adv_g) zero weight; D still trains on the same batches.
    warmup_steps: int = 0
    # Exponential moving average of the generator's weights (0 = off): the momentum of
    # `average = m * average + (1 - m) * weights` after each update. With it on, `generator.keras`
    # and the snapshots hold the averaged weights; checkpoints hold both.
    ema_momentum: float = 0.0
    # Keep `snapshots/generator-<step>.keras` (+ `.json`: step, CPU and wall seconds) every N steps (0 = never).
    snapshot_every: int = 0

    def validate(self, where: str = "train") -> None:
        _check_finite(self, where)
        for name in ("batch_size", "total_steps", "steps_per_epoch", "checkpoint_every", "image_log_every"):
            _require(getattr(self, name) >= 1, where, name, "at least 1", getattr(self, name))
        _require(self.learning_rate > 0, where, "learning_rate", "positive", self.learning_rate)
        for name in ("beta_1", "beta_2"):
            _require(0 <= getattr(self, name) < 1, where, name, "in [0, 1)", getattr(self, name))
        _require(0 < self.lr_decay_factor <= 1, where, "lr_decay_factor", "in (0, 1]", self.lr_decay_factor)
        _require(_SEED_RANGE[0] <= self.seed <= _SEED_RANGE[1], where, "seed", f"in [0, {_SEED_RANGE[1]}]", self.seed)
        steps = list(self.lr_decay_steps)
        _require(all(step >= 1 for step in steps), where, "lr_decay_steps", "steps >= 1", steps)
        _require(self.warmup_steps >= 0, where, "warmup_steps", ">= 0", self.warmup_steps)
        _require(0 <= self.ema_momentum < 1, where, "ema_momentum", "in [0, 1)", self.ema_momentum)
        _require(self.snapshot_every >= 0, where, "snapshot_every", ">= 0", self.snapshot_every)
        if self.strategy not in DISTRIBUTION_STRATEGIES:
            raise ConfigError(
                f"{where}.strategy: unknown strategy {self.strategy!r}; expected one of {DISTRIBUTION_STRATEGIES}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{where}.precision: unknown policy {self.precision!r}; expected one of {PRECISIONS}")
        _require(all(a < b for a, b in zip(steps, steps[1:])), where, "lr_decay_steps", "increasing", steps)
        if self.adam_epsilon <= 0:
            raise ConfigError(f"{where}.adam_epsilon: must be positive, got {self.adam_epsilon}")
        if self.adam_epsilon_convention not in ADAM_EPSILON_CONVENTIONS:
            raise ConfigError(
                f"{where}.adam_epsilon_convention: unknown value {self.adam_epsilon_convention!r}; "
                f"expected one of {ADAM_EPSILON_CONVENTIONS}"
            )


@dataclass
class DataConfig:
    """Where images and masks come from (docs/design.md §6); see `dmfn_tf.data.build_dataset`.

    `path` is a folder (searched recursively) or a file list for `source` "folder" / "list";
    `mask_path` likewise for `mask: file`. Folders and lists are fully reshuffled every epoch;
    `shuffle_buffer` only applies to TFDS sources, which can only be read as a stream.
    `check_files` decodes every file once up front to skip bad ones (cached in memory, and across
    runs in `file_check_cache` if set); with it off, undecodable images are dropped as the pipeline
    meets them. Either way every read is checked (a regular file within the byte and pixel budgets)
    and a skipped file is a warning (`dmfn_tf.data.guarded_reader`). `mask_from_alpha` reads mask files' alpha channel; `invert_mask` is for 0 = hole files.
    `mask` is a kind of the mask registry (`dmfn_tf.data.masks.MASK_KINDS`, checked when the
    pipeline is built: the registry sits above this module).
    """

    source: str = "folder"
    path: str = ""
    tfds_name: str = ""
    tfds_data_dir: str = ""
    tfds_split: str = "train"
    crop: str = "random"
    mask: str = "random_box"
    mask_path: str = ""
    mask_delta: int = 32
    # "independent": each side of a random box shrinks by its own draw in 0..delta/2; "reference":
    # the authors' one draw in 0..delta/2+1 per axis, for both of its sides.
    mask_shrink: str = "independent"
    invert_mask: bool = False
    mask_from_alpha: bool = False
    shuffle_buffer: int = 1000
    check_files: bool = True
    file_check_cache: str = ""

    def validate(self, where: str = "data") -> None:
        _check_finite(self, where)
        if self.source not in DATA_SOURCES:
            raise ConfigError(f"{where}.source: unknown source {self.source!r}; expected one of {DATA_SOURCES}")
        if self.crop not in CROP_MODES:
            raise ConfigError(f"{where}.crop: unknown crop {self.crop!r}; expected one of {CROP_MODES}")
        if self.mask == "file" and not self.mask_path:
            raise ConfigError(f"{where}.mask_path: required when mask is 'file'")
        if self.mask_shrink not in MASK_SHRINKS:
            raise ConfigError(f"{where}.mask_shrink: unknown value {self.mask_shrink!r}; expected one of {MASK_SHRINKS}")
        if self.mask_delta < 0:
            raise ConfigError(f"{where}.mask_delta: must be >= 0, got {self.mask_delta}")
        if self.shuffle_buffer <= 0:
            raise ConfigError(f"{where}.shuffle_buffer: must be positive, got {self.shuffle_buffer}")


@dataclass
class ExperimentConfig:
    """One experiment: architecture, perceptual network, loss weights, training recipe and data."""

    name: str = "dmfn"
    model: ModelConfig = field(default_factory=ModelConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> None:
        for section in (self.model, self.perceptual, self.loss, self.train, self.data):
            section.validate()

    def to_dict(self) -> dict:
        """The nested dict of sections that `config_from_dict` and `save_config` read and write."""
        return dataclasses.asdict(self)

    def to_flat_dict(self) -> dict[str, Any]:
        """`{dotted key: value}`, e.g. `{"model.nf": 64, ...}`: the keys `apply_overrides` takes."""
        return _flatten(self.to_dict())


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _type_error(key: str, expected: str, value: Any, source: str) -> ConfigError:
    return ConfigError(f"{source}: key {key!r} expects {expected}, got {type(value).__name__} {_SHOWN.repr(value)}")


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Checks `value` against a dataclass field's type: ints where floats are expected become floats,
    floats must be finite, ints must fit int64, and lists are checked element by element."""
    if typing.get_origin(annotation) is list:
        if not isinstance(value, list):
            raise _type_error(key, "a list", value, source)
        (element,) = typing.get_args(annotation)
        return [_coerce(item, element, f"{key}[{index}]", source) for index, item in enumerate(value)]
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, "float", value, source)
        if isinstance(value, int) and not _INT64_RANGE[0] <= value <= _INT64_RANGE[1]:
            raise ConfigError(f"{source}: key {key!r} must be a finite number, got {_SHOWN.repr(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{source}: key {key!r} must be a finite number, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, "int", value, source)
        if not _INT64_RANGE[0] <= value <= _INT64_RANGE[1]:
            raise ConfigError(f"{source}: key {key!r} is out of the 64-bit integer range: {_SHOWN.repr(value)}")
        return value
    if annotation in (str, bool) and not isinstance(value, annotation):
        raise _type_error(key, annotation.__name__, value, source)
    return value


def _build(cls, values: dict, prefix: str, source: str):
    if not isinstance(values, dict):
        section = prefix.rstrip(".") or "top level"
        raise ConfigError(f"{source}: section {section!r} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(str(key) for key in values if key not in fields)
    if unknown:
        names = _SHOWN.repr(", ".join(f"{prefix}{k}" for k in unknown)).strip("'")
        raise ConfigError(f"{source}: unknown key(s) {names}; known keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, {} if value is None else value, f"{prefix}{name}.", source)
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}", source)
    return cls(**kwargs)


def config_from_dict(values: dict, source: str = "<dict>") -> ExperimentConfig:
    """Builds and validates an `ExperimentConfig` from nested dicts (as read from YAML)."""
    cfg = _build(ExperimentConfig, {} if values is None else values, "", source)
    try:
        cfg.validate()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cfg


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Reads a YAML experiment file, then applies `overrides` (dotted keys, see `apply_overrides`).

    Args:
        path: the YAML file.
        overrides: e.g. `{"model.nf": 8}` or `parse_overrides(["model.nf=8"])`; errors in them name
            the file and the command line.
    """
    path = os.fspath(path)
    cfg = config_from_dict(read_yaml_file(path), source=path)  # an empty file is all defaults
    if overrides:
        cfg = apply_overrides(cfg, overrides, source=f"{path} + command line")
    return cfg


def keys_in_file(path: str | os.PathLike) -> set[str]:
    """The dotted keys a configuration file sets itself (the others take their defaults when loaded)."""
    data = read_yaml_file(os.fspath(path))
    return set(_flatten(data)) if isinstance(data, dict) else set()


def parse_overrides(assignments: Iterable[str] | None) -> dict[str, Any]:
    """Turns `--set` arguments such as `["model.nf=8", "train.lr_decay_steps=[10, 20]"]` into dotted overrides.

    Values are read as YAML (`8` is an int, `true` a bool, `[10, 20]` a list), so `apply_overrides`
    checks them against the configuration's types exactly like values in the file.

    Args:
        assignments: the `--set` arguments, each `dotted.key=value`.

    Returns:
        `{dotted key: value}`, in the order given (a later assignment of a key wins).

    Example:

    ```python
    parse_overrides(["model.nf=8", "data.crop=center"])
    # -> {'model.nf': 8, 'data.crop': 'center'}
    ```
    """
    overrides: dict[str, Any] = {}
    for assignment in assignments or []:
        key, separator, text = assignment.partition("=")
        key = key.strip()
        if not separator or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set expects key=value with a dotted key such as model.nf=8, got {assignment!r}")
        overrides[key] = parse_yaml(text, f"--set {key}")
    return overrides


def apply_overrides(
    cfg: ExperimentConfig, overrides: Mapping[str, Any], source: str = "command line"
) -> ExperimentConfig:
    """`cfg` with each dotted key of `overrides` replaced, checked and validated like a value in a file.

    This is where the command line (`--set`, `--data`, `--steps`, `--strategy`) reaches the
    configuration, so that the configuration a run records is the one it uses.

    Args:
        cfg: a loaded configuration (left unchanged).
        overrides: `{dotted key: value}`, e.g. `{"data.path": "photos/", "train.total_steps": 20}`.
        source: what errors name as the origin of the values.

    Returns:
        A new, validated `ExperimentConfig`.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range (naming key and source).

    Example:

    ```python
    apply_overrides(ExperimentConfig(), {"model.nf": 8, "train.strategy": "mirrored"}).train.strategy
    # -> 'mirrored'
    ```
    """
    values = cfg.to_dict()
    # A mapping value (`--set 'model={nf: 8}'`) sets its keys, not the whole section.
    overrides = {
        f"{key}.{inner}" if isinstance(value, dict) else key: inner_value
        for key, value in overrides.items()
        for inner, inner_value in (_flatten(value).items() if isinstance(value, dict) else [(None, value)])
    }
    for key, value in overrides.items():
        *sections, leaf = key.split(".")
        node = values
        for depth, section in enumerate(sections):
            child = node.setdefault(section, {})
            if not isinstance(child, dict):
                where = ".".join(sections[: depth + 1])
                raise ConfigError(f"{source}: key {key!r}: {where!r} is a value, not a section")
            node = child
        node[leaf] = value
    return config_from_dict(values, source=source)


def config_to_yaml(cfg: ExperimentConfig) -> str:
    """`cfg` as the YAML text `save_config` writes (what a run's `config.yaml` and a model file record)."""
    return dump_yaml(cfg.to_dict())


def save_config(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    """Writes `cfg` as YAML that `load_config` reads back to an equal configuration (atomically)."""
    write_text_atomically(path, config_to_yaml(cfg))
