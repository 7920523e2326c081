"""Mapping between the authors' PyTorch tensor names/layouts and this package's Keras layers.

The reference generator names its tensors `encoder.{0..3}.conv.*`, `blocks.{i}.{c1,d1..d4,c2}.*`,
`decoder.0.conv.*`, `decoder.{1,2}.deconv.*`, `decoder.{1,2}.conv.conv.*` and `decoder.3.conv.*`
(see `shared/fixtures/official_G_default_keys.txt`). PyTorch stores a Conv2d weight as
(out, in, kh, kw) and a ConvTranspose2d weight as (in, out, kh, kw); Keras wants (kh, kw, in, out)
and (kh, kw, out, in): both are the transpose (2, 3, 1, 0).
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from dmfn_tf.errors import UserError

TORCH_TO_KERAS_KERNEL = (2, 3, 1, 0)

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


class CheckpointMismatchError(UserError):
    """A checkpoint's tensors do not match the model: lists every missing, extra or mis-shaped name."""


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
    n_blocks = max(block_ids) + 1 if block_ids else 0
    block = "official"
    if n_blocks and state_dict.get("blocks.0.c2.weight") is not None and state_dict["blocks.0.c2.weight"].shape[-1] == 1:
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


def load_reference_generator_weights(model, state_dict: Mapping[str, np.ndarray], source: str = "checkpoint") -> None:
    """Loads reference-named tensors into a generator built by `build_generator`.

    Every tensor is checked before anything is assigned: missing, unexpected and mis-shaped names
    are all listed in one `CheckpointMismatchError`, so a partial load never happens.

    Args:
        model: the Keras generator (its `nf`, `n_blocks` and block variant must match).
        state_dict: tensor name -> array in PyTorch layout.
        source: the checkpoint's name for error messages.
    """
    names = generator_layer_names(*_generator_structure(model))
    assignments, missing, mis_shaped = [], [], []
    for prefix, path in names.items():
        layer = _layer(model, path)
        for suffix, variable in (("weight", layer.kernel), ("bias", layer.bias)):
            key = f"{prefix}.{suffix}"
            if key not in state_dict:
                missing.append(key)
                continue
            value = np.asarray(state_dict[key], dtype=np.float32)
            if suffix == "weight":
                value = value.transpose(TORCH_TO_KERAS_KERNEL)
            if tuple(value.shape) != tuple(variable.shape):
                mis_shaped.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(variable.shape)} (Keras layout)")
                continue
            assignments.append((variable, value))
    known = {f"{prefix}.{suffix}" for prefix in names for suffix in ("weight", "bias")}
    unexpected = sorted(set(state_dict) - known)
    if missing or mis_shaped or unexpected:
        lines = [f"{source}: the checkpoint does not match the generator:"]
        lines += [f"  missing: {k}" for k in missing]
        lines += [f"  unexpected: {k}" for k in unexpected]
        lines += [f"  wrong shape: {k}" for k in mis_shaped]
        raise CheckpointMismatchError("\n".join(lines))
    for variable, value in assignments:
        variable.assign(value)


def generator_to_reference_state_dict(model) -> dict[str, np.ndarray]:
    """The inverse mapping: a reference-named, PyTorch-layout state dict of a Keras generator."""
    inverse = tuple(np.argsort(TORCH_TO_KERAS_KERNEL))
    state = {}
    for prefix, path in generator_layer_names(*_generator_structure(model)).items():
        layer = _layer(model, path)
        state[f"{prefix}.weight"] = np.asarray(layer.kernel).transpose(inverse)
        state[f"{prefix}.bias"] = np.asarray(layer.bias)
    return state
