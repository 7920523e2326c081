"""Checks of a model file before Keras reads it: a regular file, a zip of bounded size, a config of bounded size.

A `.keras` file is a zip archive holding `config.json` (the architecture), `metadata.json` and
`model.weights.h5`. Keras inflates `config.json` whole, then builds every layer the config declares
(allocating its weights) before it reads a single weight, so a small file can cost gigabytes: a
config that inflates 600-fold, or a layer declaring 5,000,000 filters. `check_keras_file` refuses
such files from what they declare, before anything is inflated or built:

- the path is a regular file (not a FIFO, a device, a socket or a folder) of at most `MAX_INPUT_BYTES`;
- it is a zip archive (its end-of-archive record is read first) of at most `MAX_ZIP_MEMBERS` members;
- the members' declared inflated sizes total at most `MAX_INPUT_BYTES`, `config.json` declares
  at most `MAX_MODEL_CONFIG_BYTES` and inflates to no more (Python's zipfile never returns more than
  a member declares, so the declared sizes bound what Keras inflates), and `metadata.json` (Keras'
  version and date, and this package's model description, `dmfn_tf.model_metadata`) declares at
  most `MAX_MODEL_METADATA_BYTES`;
- the config's layers are this package's or Keras layers whose weights the bound below covers
  (`KERAS_LAYERS`), and need at most `MAX_INPUT_BYTES / 4` float32 parameters, by an upper bound
  computed from the sizes the config declares (`parameter_bound`).

Example:

```python
check_keras_file("runs/tiny/generator.keras")   # raises ModelLoadError naming the file and the problem
read_keras_metadata("runs/tiny/generator.keras")  # -> {"keras_version": ..., "dmfn_tf": {...}}
```
"""

from __future__ import annotations

import json
import math
import struct
import zipfile

from dmfn_tf.errors import UserError
from dmfn_tf.input_limits import (
    MAX_INPUT_BYTES,
    MAX_MODEL_CONFIG_BYTES,
    MAX_MODEL_METADATA_BYTES,
    InputTooLarge,
    NotRegularFile,
    check_file_bytes,
)

# The members of a Keras file read whole: the architecture, and Keras' metadata (where this package
# keeps its model description, `dmfn_tf.model_metadata`).
CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
# A Keras file has three members; a few more leave room for future Keras versions.
MAX_ZIP_MEMBERS = 64
# Most float32 parameters a model may declare: its weights must fit the byte budget.
MAX_PARAMETERS = MAX_INPUT_BYTES // 4
# Keys whose integer value is a layer's output width.
_WIDTH_KEYS = ("filters", "units")
# Custom blocks declare `channels` (`dmfn_tf.models.dmfb_layers.DMFB`): counted as this many
# convolution kernels of `channels` x the widest width (a paper DMFB holds 7.2 c², an official one 13.5 c²).
_BLOCK_KERNELS = 16
# Keras layers a generator file may hold besides this package's own (`dmfn_tf>...`): those whose
# weights, if any, `parameter_bound` covers (convolutions and dense layers by filters, units and
# kernel size; normalisations per channel). Any other layer (an Embedding, an attention or a
# recurrent layer, sized by keys the bound does not read) is refused before it is built.
KERAS_LAYERS = frozenset({
    "InputLayer", "Functional", "Sequential", "Conv2D", "Conv2DTranspose", "Dense", "ReLU", "LeakyReLU", "ELU",
    "Activation", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "ZeroPadding2D",
    "Cropping2D", "UpSampling2D", "MaxPooling2D", "AveragePooling2D", "Reshape", "Identity", "Dropout",
    "Rescaling", "BatchNormalization", "LayerNormalization", "GroupNormalization",
})
_OWN_LAYERS = "dmfn_tf>"
# Keys whose list value is a tensor shape (its last entry is a channel count).
_SHAPE_KEYS = ("batch_shape", "input_shape", "shape")
_END_OF_ARCHIVE = b"PK\x05\x06"
_END_RECORD_SIZE = 22


class ModelLoadError(UserError):
    """A model path is missing, unreadable, or does not hold a DMFN generator."""


def check_regular_file(path: str, max_bytes: int = MAX_INPUT_BYTES) -> int:
    """The size of `path` if it is a regular file (symbolic links followed) of at most `max_bytes`.

    Raises:
        ModelLoadError: not a regular file (a FIFO, a device, a socket, a folder), or too large.
    """
    try:
        return check_file_bytes(path, max_bytes)
    except (NotRegularFile, InputTooLarge) as err:
        raise ModelLoadError(str(err)) from None
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot be read ({err.strerror or err})") from None


def check_keras_file(path: str) -> None:
    """Refuses a `.keras` file that is not a bounded Keras zip archive (see the module docstring).

    Raises:
        ModelLoadError: one line naming `path` and the problem.
    """
    size = check_regular_file(path)
    members = _declared_members(path, size)
    if members > MAX_ZIP_MEMBERS:
        raise ModelLoadError(f"{path}: not a Keras model file (a zip archive of {members} members)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            declared = sum(info.file_size for info in infos)
            if declared > MAX_INPUT_BYTES:
                raise ModelLoadError(f"{path}: its members inflate to {declared} bytes, above the limit of "
                                     f"{MAX_INPUT_BYTES} bytes")
            config = _read_json_member(archive, path, CONFIG_MEMBER, MAX_MODEL_CONFIG_BYTES, "a model's architecture")
            if METADATA_MEMBER in archive.namelist():
                _member_info(archive, path, METADATA_MEMBER, MAX_MODEL_METADATA_BYTES, "a model's description")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        raise ModelLoadError(f"{path}: not a Keras model file (a damaged zip archive: {err})") from None
    unknown = unknown_layers(config)
    if unknown:
        raise ModelLoadError(f"{path}: not a DMFN generator file (it holds layers of class {', '.join(unknown)})")
    bound = parameter_bound(config)
    if bound > MAX_PARAMETERS:
        raise ModelLoadError(f"{path}: its layers declare up to {bound:,} parameters, above the limit of "
                             f"{MAX_PARAMETERS:,} (a model's weights must fit in {MAX_INPUT_BYTES} bytes)")


def read_keras_metadata(path: str) -> dict:
    """The `metadata.json` object of the `.keras` file at `path` ({} when the file has none), after `check_keras_file`.

    Raises:
        ModelLoadError: the file fails `check_keras_file`, or its `metadata.json` is not a JSON object
            of at most `MAX_MODEL_METADATA_BYTES`.
    """
    check_keras_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_MEMBER not in archive.namelist():
                return {}
            metadata = _read_json_member(archive, path, METADATA_MEMBER, MAX_MODEL_METADATA_BYTES, "a model's description")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        raise ModelLoadError(f"{path}: not a Keras model file (a damaged zip archive: {err})") from None
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{path}: {METADATA_MEMBER} is not a JSON object")
    return metadata


def _declared_members(path: str, size: int) -> int:
    """The member count of the zip's end-of-archive record, read before zipfile lists the members."""
    with open(path, "rb") as file:
        file.seek(max(0, size - (_END_RECORD_SIZE + 65535)))
        tail = file.read()
    position = tail.rfind(_END_OF_ARCHIVE)
    if position < 0 or len(tail) - position < _END_RECORD_SIZE:
        raise ModelLoadError(f"{path}: not a Keras model file (not a zip archive)")
    return struct.unpack("<H", tail[position + 10 : position + 12])[0]


def _member_info(archive: zipfile.ZipFile, path: str, name: str, limit: int, what: str) -> zipfile.ZipInfo:
    """The member `name`, refused when missing or declaring more than `limit` bytes."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelLoadError(f"{path}: not a Keras model file (no {name} in the archive)") from None
    if info.file_size > limit:
        raise ModelLoadError(f"{path}: {name} declares {info.file_size} bytes, above the limit of {limit} bytes for {what}")
    return info


def _read_json_member(archive: zipfile.ZipFile, path: str, name: str, limit: int, what: str):
    """The JSON value of the member `name`, read within `limit` bytes whatever it declares."""
    info = _member_info(archive, path, name, limit, what)
    with archive.open(info) as member:
        text = member.read(limit + 1)
    if len(text) > limit:
        raise ModelLoadError(f"{path}: {name} inflates beyond {limit} bytes")
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelLoadError(f"{path}: {name} is nested too deeply") from None
    except ValueError as err:
        raise ModelLoadError(f"{path}: {name} is not JSON ({err})") from None


def _nodes(config):
    """Every dict and list inside `config`, iteratively (a deep config cannot exhaust the stack)."""
    stack = [config]
    while stack:
        node = stack.pop()
        yield node
        children = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ()
        stack.extend(child for child in children if isinstance(child, (dict, list, tuple)))


def unknown_layers(config) -> list[str]:
    """The class names of the config's layers that are neither this package's nor in `KERAS_LAYERS`."""
    unknown = set()
    for node in _nodes(config):
        if not isinstance(node, dict) or not isinstance(node.get("layers"), list):
            continue
        for layer in node["layers"]:
            if not isinstance(layer, dict):
                unknown.add(type(layer).__name__)
                continue
            registered = layer.get("registered_name")
            own = isinstance(registered, str) and registered.startswith(_OWN_LAYERS)
            if not own and layer.get("class_name") not in KERAS_LAYERS:
                unknown.add(str(layer.get("class_name"))[:40])
    return sorted(unknown)


def _size(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parameter_bound(config) -> int:
    """An upper bound on the parameters a Keras config builds, from the sizes it declares.

    Each layer with `filters` or `units` holds at most (kernel area) x width x C weights and
    biases, where C is the widest width or channel count anywhere in the config (the layer's real
    input cannot be wider); a block declaring `channels` counts as `_BLOCK_KERNELS` such kernels.

    Example:

    ```python
    parameter_bound({"filters": 8, "kernel_size": [3, 3], "batch_shape": [None, None, None, 4]})
    # -> 8 * 9 * (8 + 1) = 648
    ```
    """
    widths, layers = [], []
    for node in _nodes(config):
        if not isinstance(node, dict):
            continue
        for key in _SHAPE_KEYS:
            shape = node.get(key)
            if isinstance(shape, (list, tuple)) and shape:
                widths.append(_size(shape[-1]))
        width = max((_size(node.get(key)) for key in _WIDTH_KEYS), default=0)
        kernel = node.get("kernel_size", 1)
        area = math.prod(_size(k) for k in kernel) if isinstance(kernel, (list, tuple)) else _size(kernel) or 1
        channels = _size(node.get("channels"))
        if width:
            layers.append((area, width))
        if channels:
            layers.append((_BLOCK_KERNELS, channels))
        widths.extend((width, channels))
    widest = max(widths, default=0)
    return sum(area * width * (widest + 1) for area, width in layers)
