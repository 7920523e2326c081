"""Typed experiment configuration, loaded from YAML.

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
import os
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from dmfn_tf.errors import ConfigError

BLOCK_VARIANTS = ("paper", "official")
GUIDANCE_MODES = ("minmax", "max")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DATA_SOURCES = ("folder", "list", "tfds")
CROP_MODES = ("random", "center")
MASK_KINDS = ("center_box", "random_box", "free_form", "file")
PERCEPTUAL_NETWORKS = ("vgg19", "lpips_vgg16")
PERCEPTUAL_PREPROCESSING = ("auto", "caffe", "torch", "torch_authors_bug")
# `model.init`: the builders' Keras initialisers, or the authors' (dmfn_tf.models.initializers).
MODEL_INITS = ("keras", "reference")
# `model.batchnorm_variance`: the batch variance the discriminator's moving variance averages.
BATCHNORM_VARIANCES = ("unbiased", "biased")
# `train.adam_epsilon_convention`: epsilon added to sqrt(v_hat) (PyTorch) or to sqrt(v) (Keras).
ADAM_EPSILON_CONVENTIONS = ("pytorch", "keras")
# `data.mask_shrink`: how a random box shrinks (dmfn_tf.data.masks.random_box).
MASK_SHRINKS = ("independent", "reference")




@dataclass
class ModelConfig:
    """Generator and discriminator architecture (SPEC §2, §3)."""

    nf: int = 64
    n_blocks: int = 8
    block: str = "paper"
    image_size: int = 256
    spectral_norm: bool = False
    # Base width of the discriminator; 0 means `nf`, as in the reference. Its feature-matching
    # weights are 1000 / C² of its widths, so a narrow D (small nf) weighs that loss much more.
    discriminator_nf: int = 0
    # "reference": the authors' initialisation (SPEC §6); "keras": the builders' own.
    init: str = "keras"
    # "unbiased" (PyTorch's n/(n-1), the authors') or "biased" (Keras') batch variance in D's moving average.
    batchnorm_variance: str = "unbiased"

    def validate(self, where: str = "model") -> None:
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
        return {"nf": self.nf, "n_blocks": self.n_blocks, "block": self.block}

    def discriminator_kwargs(self) -> dict:
        return {
            "nf": self.discriminator_nf or self.nf,
            "image_size": self.image_size,
            "spectral_norm": self.spectral_norm,
            "unbiased_variance": self.batchnorm_variance == "unbiased",
        }


@dataclass
class PerceptualConfig:
    """The frozen network behind the perceptual losses (SPEC §4).

    `weights`: "imagenet" (Keras download, cached), "none" (random: tests only, loudly warned), or a
    path to a local weights file. `preprocessing`: "auto" picks caffe for Keras ImageNet weights and
    torch for everything else; set it explicitly for a local file of torchvision-trained weights.
    "torch_authors_bug" reproduces the authors' wrong normalisation (SPEC §4), only for fine-tuning
    their checkpoints under their exact loss.
    """

    network: str = "vgg19"
    weights: str = "imagenet"
    preprocessing: str = "auto"

    def validate(self, where: str = "perceptual") -> None:
        if self.network not in PERCEPTUAL_NETWORKS:
            raise ConfigError(f"{where}.network: unknown network {self.network!r}; expected one of {PERCEPTUAL_NETWORKS}")
        if self.preprocessing not in PERCEPTUAL_PREPROCESSING:
            raise ConfigError(
                f"{where}.preprocessing: unknown value {self.preprocessing!r}; expected one of {PERCEPTUAL_PREPROCESSING}"
            )


@dataclass
class LossConfig:
    """Weights of the generator objective (SPEC §5):
    L = L_mae + lambda_vgg (L_self + L_fm_vgg) + eta_dis_fm L_fm_dis + mu_adv L_adv + gamma_align L_align."""

    lambda_vgg: float = 25.0
    eta_dis_fm: float = 5.0
    mu_adv: float = 0.003
    gamma_align: float = 1.0
    guidance: str = "minmax"

    def validate(self, where: str = "loss") -> None:
        if self.guidance not in GUIDANCE_MODES:
            raise ConfigError(f"{where}.guidance: unknown mode {self.guidance!r}; expected one of {GUIDANCE_MODES}")
        for name in ("lambda_vgg", "eta_dis_fm", "mu_adv", "gamma_align"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: must be >= 0, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """Optimisation recipe (SPEC §6): Adam for G and D, learning rate halved at `lr_decay_steps`."""

    batch_size: int = 16
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    lr_decay_steps: list = field(default_factory=lambda: [50000, 75000])
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

    def validate(self, where: str = "train") -> None:
        if self.batch_size <= 0:
            raise ConfigError(f"{where}.batch_size: must be positive, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ConfigError(f"{where}.learning_rate: must be positive, got {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"{where}.strategy: unknown strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{where}.precision: unknown policy {self.precision!r}; expected one of {PRECISIONS}")
        if self.adam_epsilon <= 0:
            raise ConfigError(f"{where}.adam_epsilon: must be positive, got {self.adam_epsilon}")
        if self.adam_epsilon_convention not in ADAM_EPSILON_CONVENTIONS:
            raise ConfigError(
                f"{where}.adam_epsilon_convention: unknown value {self.adam_epsilon_convention!r}; "
                f"expected one of {ADAM_EPSILON_CONVENTIONS}"
            )
        if list(self.lr_decay_steps) != sorted(self.lr_decay_steps):
            raise ConfigError(f"{where}.lr_decay_steps: must be increasing, got {self.lr_decay_steps}")


@dataclass
class DataConfig:
    """Where images and masks come from (SPEC §6); see `dmfn_tf.data.build_dataset`.

    `path` is a folder (searched recursively) or a file list for `source` "folder" / "list";
    `mask_path` likewise for `mask: file`. Folders and lists are fully reshuffled every epoch;
    `shuffle_buffer` only applies to TFDS sources, which can only be read as a stream.
    `check_files` decodes every file once up front to skip bad ones (cached in memory, and across
    runs in `file_check_cache` if set); with it off, undecodable images are dropped as the pipeline
    meets them. `mask_from_alpha` reads mask files' alpha channel; `invert_mask` is for 0 = hole files.
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
        if self.source not in DATA_SOURCES:
            raise ConfigError(f"{where}.source: unknown source {self.source!r}; expected one of {DATA_SOURCES}")
        if self.crop not in CROP_MODES:
            raise ConfigError(f"{where}.crop: unknown crop {self.crop!r}; expected one of {CROP_MODES}")
        if self.mask not in MASK_KINDS:
            raise ConfigError(f"{where}.mask: unknown mask kind {self.mask!r}; expected one of {MASK_KINDS}")
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
        return dataclasses.asdict(self)


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Checks `value` against a dataclass field's type, allowing ints where floats are expected."""
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "str": str, "bool": bool, "list": list}.get(annotation, annotation)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{source}: key {key!r} expects int, got bool {value!r}")
    if annotation in (int, float, str, bool, list) and not isinstance(value, annotation):
        raise ConfigError(f"{source}: key {key!r} expects {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls, values: dict, prefix: str, source: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section {prefix.rstrip('.') or 'top level'!r} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(f"{prefix}{k}" for k in unknown)
        raise ConfigError(f"{source}: unknown key(s) {names}; known keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.", source)
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}", source)
    return cls(**kwargs)


def config_from_dict(values: dict, source: str = "<dict>") -> ExperimentConfig:
    """Builds and validates an `ExperimentConfig` from nested dicts (as read from YAML)."""
    cfg = _build(ExperimentConfig, values or {}, "", source)
    try:
        cfg.validate()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cfg


def load_config(path: str | os.PathLike, overrides: dict | None = None) -> ExperimentConfig:
    """Reads a YAML experiment file. `overrides` is a nested dict merged on top (e.g. from the CLI)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if overrides:
        values = _merge(values, overrides)
    return config_from_dict(values, source=path)


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def save_config(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
