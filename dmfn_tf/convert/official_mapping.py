"""Mapping between the authors' PyTorch tensor names/layouts and this package's Keras layers.

Generator. The reference names its tensors `encoder.{0..3}.conv.*`, `blocks.{i}.{c1,d1..d4,c2}.*`,
`decoder.0.conv.*`, `decoder.{1,2}.deconv.*`, `decoder.{1,2}.conv.conv.*` and `decoder.3.conv.*`
(see `shared/fixtures/official_G_default_keys.txt`). PyTorch stores a Conv2d weight as
(out, in, kh, kw) and a ConvTranspose2d weight as (in, out, kh, kw); Keras wants (kh, kw, in, out)
and (kh, kw, out, in): both are the transpose (2, 3, 1, 0).

Discriminator (`shared/fixtures/official_D_default_keys.txt`). Each stage is a `conv` and a
BatchNorm `norm`: `global_model.{0..5}.*` for the global branch, `local_fea{1..5}.*` for the local
one. BatchNorm `weight`, `bias`, `running_mean`, `running_var` are Keras' `gamma`, `beta`,
`moving_mean`, `moving_variance`; `num_batches_tracked` only matters to PyTorch's cumulative
averaging (`momentum=None`, unused here) and is accepted and ignored. `global_classifier` and
`local_classifier` are Linear layers on the flattened last feature map, and `classifier.1` the
Linear after the head's LeakyReLU (`classifier.0`, which has no tensors). A Linear weight is
(out, in) and a Dense kernel (in, out); on top of that PyTorch flattens NCHW maps in (C, H, W)
order and Keras' `Flatten` NHWC maps in (H, W, C) order, so the input axis of the two classifiers
is permuted as well. The head's input is `cat([local, global])` in the authors' `forward`, the
order of docs/design.md §3 and of `build_discriminator`'s `Concatenate`: `classifier.1` maps with a plain
transpose.

Loading checks every tensor before assigning any: missing, unexpected and mis-shaped names (shapes
in PyTorch layout) are listed together in one `CheckpointMismatchError`, and nothing is loaded.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, NamedTuple

import numpy as np

from dmfn_tf.errors import UserError

TORCH_TO_KERAS_KERNEL = (2, 3, 1, 0)
_KERAS_TO_TORCH_KERNEL = tuple(int(axis) for axis in np.argsort(TORCH_TO_KERAS_KERNEL))

_ENCODER_LAYERS = {
    "encoder.0.conv": "enc1_conv",
    "encoder.1.conv": "enc2_conv",
    "encoder.2.conv": "enc3_conv",
    "encoder.3.conv": "enc4_conv",
}
_DECODER_LAYERS = {
    "decoder.0.conv": "dec1_conv",
    "decoder.1.deconv": "up1_deconv",
    "decoder.1.conv.conv": "up1_conv",
    "decoder.2.deconv": "up2_deconv",
    "decoder.2.conv.conv": "up2_conv",
    "decoder.3.conv": "out_conv",
}
_BLOCK_SUBLAYERS = ("c1", "d1", "d2", "d3", "d4", "c2")
# The paper variant's combination convs K_2..K_4 have no reference name; they keep the Keras one.
_PAPER_BLOCK_SUBLAYERS = _BLOCK_SUBLAYERS + ("k2", "k3", "k4")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")

_BATCHNORM_TENSORS = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)
_BATCHNORM_COUNTER = "num_batches_tracked"
_GLOBAL_STAGE_KEY = re.compile(r"^global_model\.(\d+)\.conv\.weight$")


class CheckpointMismatchError(UserError):
    """A checkpoint's tensors do not match the model: lists every missing, extra or mis-shaped name."""


class _TensorMapping(NamedTuple):
    """One reference tensor: the Keras variable it fills and the layout changes in both directions."""

    variable: object
    to_keras: Callable[[np.ndarray], np.ndarray]
    to_reference: Callable[[np.ndarray], np.ndarray]

    def reference_shape(self) -> tuple[int, ...]:
        return self.to_reference(np.zeros(tuple(self.variable.shape), np.float32)).shape


def _same(value: np.ndarray) -> np.ndarray:
    return value


def _conv_kernel_to_keras(value: np.ndarray) -> np.ndarray:
    return value.transpose(TORCH_TO_KERAS_KERNEL)


def _conv_kernel_to_reference(value: np.ndarray) -> np.ndarray:
    return value.transpose(_KERAS_TO_TORCH_KERNEL)


def _linear_mapping(variable, flattened_shape: tuple[int, ...] | None) -> _TensorMapping:
    """A Linear weight (out, in) as a Dense kernel (in, out); with `flattened_shape` = (H, W, C) of
    the map the Dense layer reads, the input axis also goes from (C, H, W) to (H, W, C) order."""
    if flattened_shape is None:
        return _TensorMapping(variable, np.transpose, np.transpose)
    height, width, channels = flattened_shape

    def to_keras(weight):
        units = weight.shape[0]
        return weight.reshape(units, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, units)

    def to_reference(kernel):
        units = kernel.shape[-1]
        return kernel.reshape(height, width, channels, units).transpose(3, 2, 0, 1).reshape(units, -1)

    return _TensorMapping(variable, to_keras, to_reference)


def _check_and_assign(
    mappings: Mapping[str, _TensorMapping],
    state_dict: Mapping[str, np.ndarray],
    source: str,
    model_kind: str,
    ignored: frozenset[str] = frozenset(),
) -> None:
    """Assigns every mapped tensor, or none: all problems are collected first and raised together."""
    assignments, missing, mis_shaped = [], [], []
    for key, mapping in mappings.items():
        if key not in state_dict:
            missing.append(key)
            continue
        value = np.asarray(state_dict[key], dtype=np.float32)
        expected = mapping.reference_shape()
        if value.shape != expected:
            mis_shaped.append(f"{key}: checkpoint {value.shape}, model expects {expected}")
            continue
        assignments.append((mapping.variable, mapping.to_keras(value)))
    unexpected = sorted(set(state_dict) - set(mappings) - ignored)
    if missing or mis_shaped or unexpected:
        lines = [f"{source}: the checkpoint does not match the {model_kind} (shapes in PyTorch layout):"]
        lines += [f"  missing: {k}" for k in missing]
        lines += [f"  unexpected: {k}" for k in unexpected]
        lines += [f"  wrong shape: {k}" for k in mis_shaped]
        raise CheckpointMismatchError("\n".join(lines))
    for variable, value in assignments:
        variable.assign(value)


def _to_reference(mappings: Mapping[str, _TensorMapping]) -> dict[str, np.ndarray]:
    return {key: mapping.to_reference(np.asarray(mapping.variable)) for key, mapping in mappings.items()}


# Generator.


def generator_layer_names(n_blocks: int, block: str = "official") -> dict[str, tuple[str, ...]]:
    """Maps each reference module prefix to the Keras layer path (`(layer,)` or `(block, sublayer)`),
    in the reference state dict's order."""
    names = {prefix: (layer,) for prefix, layer in _ENCODER_LAYERS.items()}
    for i in range(n_blocks):
        for sub in _PAPER_BLOCK_SUBLAYERS if block == "paper" else _BLOCK_SUBLAYERS:
            names[f"blocks.{i}.{sub}"] = (f"block_{i}", sub)
    names.update({prefix: (layer,) for prefix, layer in _DECODER_LAYERS.items()})
    return names


def infer_generator_config(state_dict: Mapping[str, np.ndarray], source: str = "checkpoint") -> dict:
    """Reads `nf`, `n_blocks` and the block variant off a reference generator state dict.

    Only the official variant exists in the authors' code: its fusion conv `c2` is 3x3; a 1x1 `c2`
    with `k*` tensors would be this package's paper variant saved under reference names.

    Args:
        state_dict: tensor name -> array in PyTorch layout.
        source: the checkpoint's name for error messages.

    Returns:
        `{"nf": int, "n_blocks": int, "block": "official" | "paper"}`, the arguments of `build_generator`.
    """
    if "encoder.0.conv.weight" not in state_dict:
        raise UserError(
            f"{source}: not a DMFN generator checkpoint (no 'encoder.0.conv.weight'; "
            f"first keys: {', '.join(list(state_dict)[:5]) or 'none'})"
        )
    first = state_dict["encoder.0.conv.weight"]
    if first.ndim != 4 or first.shape[1] != 4:
        raise UserError(f"{source}: 'encoder.0.conv.weight' has shape {first.shape}; a DMFN generator's is (nf, 4, 5, 5)")
    block_ids = {int(m.group(1)) for key in state_dict if (m := _BLOCK_KEY.match(key))}
    if not block_ids:
        raise UserError(f"{source}: not a DMFN generator checkpoint (no DMFB tensors 'blocks.0.*')")
    n_blocks = max(block_ids) + 1
    block = "official"
    if state_dict.get("blocks.0.c2.weight") is not None and state_dict["blocks.0.c2.weight"].shape[-1] == 1:
        block = "paper"
    return {"nf": int(first.shape[0]), "n_blocks": n_blocks, "block": block}


def _generator_structure(model) -> tuple[int, str]:
    blocks = [layer for layer in model.layers if layer.name.startswith("block_")]
    return len(blocks), (blocks[0].variant if blocks else "official")


def _layer(model, path: tuple[str, ...]):
    layer = model.get_layer(path[0])
    if len(path) == 1:
        return layer
    sublayers = [layer.c1, *layer.dilated, *layer.combination, layer.c2]
    return next(sub for sub in sublayers if sub.name == path[1])


def _generator_mappings(model) -> dict[str, _TensorMapping]:
    mappings = {}
    for prefix, path in generator_layer_names(*_generator_structure(model)).items():
        layer = _layer(model, path)
        mappings[f"{prefix}.weight"] = _TensorMapping(layer.kernel, _conv_kernel_to_keras, _conv_kernel_to_reference)
        mappings[f"{prefix}.bias"] = _TensorMapping(layer.bias, _same, _same)
    return mappings


def load_reference_generator_weights(model, state_dict: Mapping[str, np.ndarray], source: str = "checkpoint") -> None:
    """Loads reference-named tensors into a generator built by `build_generator`.

    Every tensor is checked before anything is assigned: missing, unexpected and mis-shaped names
    are all listed in one `CheckpointMismatchError`, so a partial load never happens.

    Args:
        model: the Keras generator (its `nf`, `n_blocks` and block variant must match).
        state_dict: tensor name -> array in PyTorch layout.
        source: the checkpoint's name for error messages.
    """
    _check_and_assign(_generator_mappings(model), state_dict, source, "generator")


def generator_to_reference_state_dict(model) -> dict[str, np.ndarray]:
    """The inverse mapping: a reference-named, PyTorch-layout state dict of a Keras generator."""
    return _to_reference(_generator_mappings(model))


# Discriminator.


def discriminator_layer_names() -> dict[str, str]:
    """Maps each reference module prefix to the Keras layer name, in the reference state dict's order
    (within a stage the reference registers `norm` before `conv`)."""
    from dmfn_tf.models.discriminator import GLOBAL_STAGES, LOCAL_STAGES  # here: keeps this module TF-free

    names = {}
    for i in range(GLOBAL_STAGES):
        names[f"global_model.{i}.norm"] = f"global{i}_norm"
        names[f"global_model.{i}.conv"] = f"global{i}_conv"
    for i in range(LOCAL_STAGES):
        names[f"local_fea{i + 1}.norm"] = f"local{i}_norm"
        names[f"local_fea{i + 1}.conv"] = f"local{i}_conv"
    names["global_classifier"] = "global_dense"
    names["local_classifier"] = "local_dense"
    names["classifier.1"] = "logit"
    return names


def infer_discriminator_config(state_dict: Mapping[str, np.ndarray], source: str = "checkpoint") -> dict:
    """Reads `nf` and `image_size` off a reference discriminator state dict.

    `nf` is the first global conv's width. The global branch halves the image once per stage and its
    classifier reads the flattened last map, so `image_size = side * 2**stages` with
    `side = sqrt(in_features / last_width)`.

    Args:
        state_dict: tensor name -> array in PyTorch layout.
        source: the checkpoint's name for error messages.

    Returns:
        `{"nf": int, "image_size": int}`, the arguments of `build_discriminator`.
    """
    from dmfn_tf.models.discriminator import GLOBAL_STAGES

    required = ("global_model.0.conv.weight", "global_classifier.weight")
    absent = [key for key in required if key not in state_dict]
    if absent:
        raise UserError(
            f"{source}: not a DMFN discriminator checkpoint (no {', '.join(repr(k) for k in absent)}; "
            f"first keys: {', '.join(list(state_dict)[:5]) or 'none'})"
        )
    first = state_dict["global_model.0.conv.weight"]
    if first.ndim != 4 or first.shape[1] != 3:
        raise UserError(f"{source}: 'global_model.0.conv.weight' has shape {first.shape}; a DMFN discriminator's is (nf, 3, 5, 5)")
    stages = sorted(int(m.group(1)) for key in state_dict if (m := _GLOBAL_STAGE_KEY.match(key)))
    if stages != list(range(GLOBAL_STAGES)):
        raise UserError(
            f"{source}: the global branch has convs at stages {stages}; a DMFN discriminator has "
            f"{GLOBAL_STAGES} (global_model.0 to global_model.{GLOBAL_STAGES - 1})"
        )
    last_width = state_dict[f"global_model.{GLOBAL_STAGES - 1}.conv.weight"].shape[0]
    classifier = state_dict["global_classifier.weight"]
    side = int(round(np.sqrt(classifier.shape[-1] / last_width))) if classifier.ndim == 2 else 0
    if side < 1 or side * side * last_width != classifier.shape[-1]:
        raise UserError(
            f"{source}: 'global_classifier.weight' has shape {classifier.shape}; its input size must be "
            f"{last_width} x side x side for the global branch's last map"
        )
    return {"nf": int(first.shape[0]), "image_size": side * 2**GLOBAL_STAGES}


def _discriminator_mappings(model) -> dict[str, _TensorMapping]:
    if any(layer.name.endswith("_sn") for layer in model.layers):
        raise UserError(
            f"{model.name}: spectral-normalised discriminators have no counterpart in the reference code; "
            "build the discriminator with spectral_norm=False"
        )
    flattened = {
        "global_dense": tuple(model.get_layer("global_flatten").input.shape[1:]),
        "local_dense": tuple(model.get_layer("local_flatten").input.shape[1:]),
        "logit": None,
    }
    mappings = {}
    for prefix, name in discriminator_layer_names().items():
        layer = model.get_layer(name)
        if name.endswith("_norm"):
            for torch_name, keras_name in _BATCHNORM_TENSORS:
                mappings[f"{prefix}.{torch_name}"] = _TensorMapping(getattr(layer, keras_name), _same, _same)
        elif name.endswith("_conv"):
            mappings[f"{prefix}.weight"] = _TensorMapping(layer.kernel, _conv_kernel_to_keras, _conv_kernel_to_reference)
            mappings[f"{prefix}.bias"] = _TensorMapping(layer.bias, _same, _same)
        else:
            mappings[f"{prefix}.weight"] = _linear_mapping(layer.kernel, flattened[name])
            mappings[f"{prefix}.bias"] = _TensorMapping(layer.bias, _same, _same)
    return mappings


def _batchnorm_counters() -> frozenset[str]:
    return frozenset(f"{prefix}.{_BATCHNORM_COUNTER}" for prefix in discriminator_layer_names() if prefix.endswith(".norm"))


def load_reference_discriminator_weights(model, state_dict: Mapping[str, np.ndarray], source: str = "checkpoint") -> None:
    """Loads reference-named tensors into a discriminator built by `build_discriminator`.

    Every tensor is checked before anything is assigned: missing, unexpected and mis-shaped names
    are all listed in one `CheckpointMismatchError`, so a partial load never happens. BatchNorm's
    `num_batches_tracked` may be present or not; it is not loaded.

    Args:
        model: the Keras discriminator, without spectral normalisation (its `nf` and `image_size`
            must match the checkpoint: see `infer_discriminator_config`).
        state_dict: tensor name -> array in PyTorch layout.
        source: the checkpoint's name for error messages.

    Example:

    ```python
    state = load_state_dict("latest_D.pth")
    discriminator = build_discriminator(**infer_discriminator_config(state))
    load_reference_discriminator_weights(discriminator, state, source="latest_D.pth")
    ```
    """
    _check_and_assign(_discriminator_mappings(model), state_dict, source, "discriminator", ignored=_batchnorm_counters())


def discriminator_to_reference_state_dict(model) -> dict[str, np.ndarray]:
    """The inverse mapping: a reference-named, PyTorch-layout state dict of a Keras discriminator.

    Each BatchNorm also gets `num_batches_tracked` = 0 (int64, as PyTorch stores it): Keras does not
    count batches, and PyTorch's strict loading expects the buffer.
    """
    state = {}
    for key, value in _to_reference(_discriminator_mappings(model)).items():
        state[key] = value
        if key.endswith(".running_var"):
            state[key.replace(".running_var", f".{_BATCHNORM_COUNTER}")] = np.array(0, np.int64)
    return state
