"""Reading PyTorch `torch.save` checkpoints into NumPy arrays, without PyTorch and without running their code.

A checkpoint written by PyTorch 1.6 or later is a zip archive whose records all sit under one folder
`<prefix>/`: `data.pkl` (a pickle of the saved object), `data/<key>` (one raw storage per key),
`byteorder` (`little` or `big`; absent in older files, which are little-endian) and `version`.
Inside the pickle a tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks[, metadata])`, with offset and strides counted in elements,
and its storage a persistent id `('storage', storage_type, key, location, numel)`. The storage
type is a legacy class such as `torch.FloatStorage`; dtypes that have none (uint16, ...) use
`torch.storage.UntypedStorage` (bytes) and `_rebuild_tensor_v3`, which adds the dtype (a global
such as `torch.uint16`) after the backward hooks.

The older format (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`) is a sequence of
pickles in one file: a magic number, the protocol version 1001, a dict of system facts
(`little_endian`, ...), the saved object, the list of storage keys, then for each key in that
order an int64 element count followed by the storage's bytes.

Both are read with `RestrictedUnpickler`: the pickle may name only the tensor rebuild functions,
the storage types, the dtypes and `collections.OrderedDict`, each mapped to a local stand-in, so a
file that asks for anything else (`os.system`, `builtins.eval`, ...) is refused before any of it
runs. The stand-ins only record what the pickle describes; the arrays are cut from the storages
afterwards, with every offset, size and stride checked against the storage's length first.

Memory is bounded by the file's size (`dmfn_tf.convert.bounded_archive`): pickles are capped, every
record's declared size is charged to a per-file budget before it is read, `.npz` headers are checked
against their records before any array is allocated, and every tensor's size is charged before it
is copied out (a stride-0 view, as `expand` saves, can be far larger than its storage).

Example:

```python
state = load_state_dict("DMFN_G.pth")  # or an .npz archive
kernel = state["encoder.0.conv.weight"]  # np.ndarray, PyTorch layout (out, in, kh, kw)
```
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, NamedTuple

import numpy as np

from dmfn_tf.convert.bounded_archive import (
    MAX_PICKLE_BYTES,
    ZIP_READ_ERRORS,
    CheckpointFormatError,
    LimitedReader,
    ReadBudget,
    read_member,
    read_npy_member,
)
from dmfn_tf.errors import UserError
from dmfn_tf.restricted_pickle import RestrictedUnpickler


class NotAStateDictError(UserError):
    """The checkpoint is readable but does not hold a state dict (a mapping from names to tensors)."""


# The stand-ins below are named tuples on purpose: a pickle's BUILD opcode can set attributes on any
# object it has, and tuples have none to set, so a file cannot alter a record after it was checked.


class _DType(NamedTuple):
    """A PyTorch dtype: its name and how NumPy reads one element (byte order is the file's)."""

    name: str
    numpy_code: str

    @property
    def itemsize(self) -> int:
        return np.dtype(self.numpy_code).itemsize


# bfloat16 has no NumPy dtype: it is read as its 16 raw bits and widened to float32 afterwards.
_DTYPES = {
    dtype.name: dtype
    for dtype in (
        _DType("float64", "f8"),
        _DType("float32", "f4"),
        _DType("float16", "f2"),
        _DType("bfloat16", "u2"),
        _DType("int64", "i8"),
        _DType("int32", "i4"),
        _DType("int16", "i2"),
        _DType("int8", "i1"),
        _DType("uint64", "u8"),
        _DType("uint32", "u4"),
        _DType("uint16", "u2"),
        _DType("uint8", "u1"),
        _DType("bool", "?"),
    )
}

_LEGACY_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class _StorageType(NamedTuple):
    """Stand-in for a storage class named in a persistent id (`torch.FloatStorage`, ...)."""

    dtype: _DType


class _StorageRef(NamedTuple):
    """A storage as the pickle describes it: the record holding its bytes and its length in elements."""

    key: str
    dtype: _DType
    numel: int


class _TensorRecord(NamedTuple):
    """A tensor as the pickle describes it: a strided view of `dtype` elements into a storage."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: _DType


class _Rebuild(NamedTuple):
    """Stand-in for one of torch's rebuild functions, calling a local function that only records."""

    function: Callable[..., Any]

    def __call__(self, *args):
        return self.function(*args)


_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_PROTOCOL_2 = b"\x80\x02"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RESAVE_HINT = "re-save it with a recent PyTorch: torch.save(torch.load(path), path)"


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a state dict from a PyTorch checkpoint or a NumPy `.npz` archive, deciding by content.

    Args:
        path: a `torch.save` file (zip or legacy format, usually `.pth`/`.pt`) or an `.npz` archive.

    Returns:
        The tensors by name, in the file's order, as NumPy arrays in PyTorch layout.

    Raises:
        CheckpointFormatError: the file is neither, or is damaged.
        NotAStateDictError: the file holds something other than named tensors.
        PickleSecurityError: the pickle asks for code outside the allow-list (nothing is run).

    Example:

    ```python
    weights = load_state_dict("official_G_nf16_res2.pth")
    weights["encoder.0.conv.weight"].shape  # (16, 4, 5, 5)
    ```
    """
    path = os.fspath(path)
    head = _read_head(path)
    if head.startswith(_ZIP_SIGNATURES):
        with _open_zip(path) as archive:
            if _find_pickle_record(archive, path, required=False) is None and _is_npz(archive):
                return _guard_memory(path, _load_npz, archive)
        return load_torch_state_dict(path)
    if head.startswith(_PICKLE_PROTOCOL_2):
        return load_torch_state_dict(path)
    raise CheckpointFormatError(
        f"{path}: not a PyTorch checkpoint or a NumPy .npz archive ({_describe_head(head)}); "
        "expected a file written by torch.save or numpy.savez"
    )


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads the state dict of a `torch.save` checkpoint as NumPy arrays, without PyTorch.

    Float32, float64, float16, int and bool tensors keep their dtype; bfloat16 becomes float32
    (exactly). A checkpoint that nests exactly one state dict in a dict (`{"state_dict": ...,
    "epoch": 3}`) is unwrapped.

    Args:
        path: the checkpoint (zip format, or the pre-1.6 legacy format).

    Returns:
        The tensors by name, in the order the checkpoint stores them.

    Raises:
        CheckpointFormatError: the file is not a torch checkpoint, or is truncated or damaged.
        NotAStateDictError: the checkpoint holds something other than named tensors.
        PickleSecurityError: the pickle asks for code outside the allow-list (nothing is run).

    Example:

    ```python
    weights = load_torch_state_dict("DMFN_G.pth")
    for name, array in weights.items():
        print(name, array.shape, array.dtype)
    ```
    """
    path = os.fspath(path)
    head = _read_head(path)
    if head.startswith(_ZIP_SIGNATURES):
        return _guard_memory(path, _load_zip_checkpoint)
    if head.startswith(_PICKLE_PROTOCOL_2):
        return _guard_memory(path, _load_legacy_checkpoint)
    raise CheckpointFormatError(f"{path}: not a PyTorch checkpoint ({_describe_head(head)}): expected a zip archive")


def _guard_memory(path: str, load: Callable[..., dict], *args) -> dict:
    """Runs `load(path, *args)`; running out of memory anyway (the budget allows 16x the file) is a one-line error."""
    try:
        return load(path, *args)
    except MemoryError:
        raise CheckpointFormatError(f"{path}: ran out of memory while reading this checkpoint") from None


def _read_head(path: str) -> bytes:
    if not os.path.isfile(path):
        raise CheckpointFormatError(f"{path}: no such file")
    with open(path, "rb") as f:
        return f.read(16)


def _describe_head(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if head.startswith(_PNG_SIGNATURE):
        return "it is a PNG image"
    return f"it starts with bytes {head[:8].hex(' ')}"


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except ZIP_READ_ERRORS as err:
        raise CheckpointFormatError(
            f"{path}: looks like a zip archive but cannot be read, it may be truncated ({err})"
        ) from None


def _find_pickle_record(archive: zipfile.ZipFile, path: str, required: bool = True) -> str | None:
    """Name of the one `<prefix>/data.pkl` record (torch allows any prefix, usually the file's stem)."""
    records = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
    if len(records) > 1:
        raise CheckpointFormatError(
            f"{path}: holds several pickles ({', '.join(records)}); expected one torch.save record"
        )
    if not records:
        if required:
            raise CheckpointFormatError(
                f"{path}: zip archive without a '<name>/data.pkl' record: not written by torch.save"
            )
        return None
    return records[0]


def _is_npz(archive: zipfile.ZipFile) -> bool:
    names = archive.namelist()
    return bool(names) and all(name.endswith(".npy") for name in names)


def _load_npz(path: str, archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
    budget = ReadBudget(path)
    return {info.filename[: -len(".npy")]: read_npy_member(archive, info, path, budget) for info in archive.infolist()}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """What a plain state dict's pickle may name, each mapped to the stand-in that records it."""
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _Rebuild(_rebuild_tensor_v2),
        ("torch._utils", "_rebuild_tensor_v3"): _Rebuild(_rebuild_tensor_v3),
        ("torch._utils", "_rebuild_parameter"): _Rebuild(_rebuild_parameter),
        ("torch.storage", "UntypedStorage"): _StorageType(_DTYPES["uint8"]),
        ("torch", "UntypedStorage"): _StorageType(_DTYPES["uint8"]),
    }
    for class_name, dtype_name in _LEGACY_STORAGE_DTYPES.items():
        allowed[("torch", class_name)] = _StorageType(_DTYPES[dtype_name])
    for dtype in _DTYPES.values():
        allowed[("torch", dtype.name)] = dtype
    return allowed


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for torch's tensor rebuild: records the view (gradients, hooks and metadata do not matter here)."""
    if not isinstance(storage, _StorageRef):
        raise CheckpointFormatError(f"a tensor's storage is a {type(storage).__name__}, not a storage reference")
    return _tensor_record(storage, storage_offset, size, stride, storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    """Stand-in for torch's rebuild of a tensor over untyped storage: offset and strides count `dtype` elements."""
    if not isinstance(storage, _StorageRef) or not isinstance(dtype, _DType):
        raise CheckpointFormatError("a tensor is rebuilt from something other than a storage reference and a dtype")
    return _tensor_record(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stand-in for torch's `Parameter` rebuild: a parameter's value is its tensor."""
    if not isinstance(data, _TensorRecord):
        raise CheckpointFormatError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


def _tensor_record(storage: _StorageRef, offset, size, stride, dtype: _DType) -> _TensorRecord:
    if not _is_index(offset) or not _is_index_tuple(size) or not _is_index_tuple(stride) or len(size) != len(stride):
        raise CheckpointFormatError(
            f"tensor over storage '{storage.key}' has an invalid view: "
            f"offset {offset!r}, size {size!r}, stride {stride!r}"
        )
    return _TensorRecord(storage, offset, tuple(size), tuple(stride), dtype)


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_index_tuple(value) -> bool:
    return isinstance(value, tuple) and all(_is_index(v) for v in value)


def _storage_loader(path: str, with_view_metadata: bool) -> tuple[Callable[[Any], _StorageRef], dict[str, _StorageRef]]:
    """A `persistent_load` for storage ids, and the storages it has seen by key."""
    storages: dict[str, _StorageRef] = {}

    def persistent_load(pid) -> _StorageRef:
        fields = 6 if with_view_metadata else 5
        if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] == "storage"):
            raise CheckpointFormatError(f"{path}: unexpected persistent id {pid!r}; expected a torch storage reference")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _is_index(numel):
            raise CheckpointFormatError(f"{path}: malformed storage reference {pid!r}")
        if with_view_metadata and pid[5] is not None:
            raise CheckpointFormatError(f"{path}: storage '{key}' is a view of another storage; {_RESAVE_HINT}")
        ref = _StorageRef(key, storage_type.dtype, numel)
        if storages.setdefault(key, ref) != ref:
            raise CheckpointFormatError(f"{path}: storage '{key}' is described twice, differently")
        return ref

    return persistent_load, storages


def _unpickle(file: BinaryIO, path: str, what: str, persistent_load=None) -> Any:
    """Runs the restricted unpickler, turning a malformed stream into a `CheckpointFormatError`."""
    try:
        limited = LimitedReader(file, MAX_PICKLE_BYTES, path)
        return RestrictedUnpickler(limited, _allowed_globals(), source=path, persistent_load=persistent_load).load()
    except UserError as err:
        if str(err).startswith(path):
            raise
        raise type(err)(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, KeyError, IndexError, struct.error,
            RecursionError, UnicodeDecodeError) as err:
        raise CheckpointFormatError(f"{path}: {what} is not a valid pickle ({type(err).__name__}: {err})") from None


def _load_zip_checkpoint(path: str) -> dict[str, np.ndarray]:
    with _open_zip(path) as archive:
        pickle_record = _find_pickle_record(archive, path)
        prefix = pickle_record[: -len("data.pkl")]
        budget = ReadBudget(path)
        byteorder = _read_byteorder(archive, prefix, path, budget)
        persistent_load, _ = _storage_loader(path, with_view_metadata=False)
        pickled = read_member(archive, archive.getinfo(pickle_record), path, budget, max_bytes=MAX_PICKLE_BYTES)
        state = _select_state_dict(_unpickle(io.BytesIO(pickled), path, pickle_record, persistent_load), path)
        for name, record in state.items():
            _check_view(name, record, path, budget)

        # Several tensors may view one storage: read each record once.
        blobs: dict[str, bytes] = {}
        arrays = {}
        for name, record in state.items():
            ref = record.storage
            if ref.key not in blobs:
                blobs[ref.key] = _read_storage_record(archive, f"{prefix}data/{ref.key}", ref, path, budget)
            arrays[name] = _materialize(name, record, blobs[ref.key], byteorder, path)
        return arrays


def _read_byteorder(archive: zipfile.ZipFile, prefix: str, path: str, budget: ReadBudget) -> str:
    try:
        info = archive.getinfo(f"{prefix}byteorder")
    except KeyError:
        return "little"
    value = bytes(read_member(archive, info, path, budget, max_bytes=16)).decode("ascii", "replace").strip()
    if value not in ("little", "big"):
        raise CheckpointFormatError(f"{path}: record '{info.filename}' says {value!r}; expected 'little' or 'big'")
    return value


def _read_storage_record(archive: zipfile.ZipFile, name: str, ref: _StorageRef, path: str, budget: ReadBudget) -> bytes:
    needed = ref.numel * ref.dtype.itemsize
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointFormatError(f"{path}: storage record '{name}' is missing from the archive") from None
    # torch.save writes exactly the storage's bytes. Checked before reading, so that a record's claimed
    # size never drives a large read (e.g. a compressed bomb behind a 16-float bias).
    if info.file_size != needed:
        raise CheckpointFormatError(
            f"{path}: storage record '{name}' holds {info.file_size} bytes, but {ref.numel} {ref.dtype.name} "
            f"elements need {needed}"
        )
    return read_member(archive, info, path, budget)


def _load_legacy_checkpoint(path: str) -> dict[str, np.ndarray]:
    budget = ReadBudget(path)
    with open(path, "rb") as f:
        magic = _unpickle(f, path, "the header")
        if magic != _MAGIC_NUMBER:
            raise CheckpointFormatError(f"{path}: a pickle, but not a torch.save checkpoint (no torch magic number)")
        protocol = _unpickle(f, path, "the header")
        if protocol != _LEGACY_PROTOCOL_VERSION:
            raise CheckpointFormatError(
                f"{path}: legacy torch checkpoint of unsupported version {protocol!r}; {_RESAVE_HINT}"
            )
        sys_info = _unpickle(f, path, "the header")
        if not isinstance(sys_info, dict):
            raise CheckpointFormatError(f"{path}: malformed legacy checkpoint header")
        byteorder = "little" if sys_info.get("little_endian", True) else "big"
        persistent_load, storages = _storage_loader(path, with_view_metadata=True)
        obj = _unpickle(f, path, "the saved object", persistent_load)
        keys = _unpickle(f, path, "the storage key list")
        if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
            raise CheckpointFormatError(f"{path}: malformed storage key list")
        state = _select_state_dict(obj, path)
        for name, record in state.items():
            _check_view(name, record, path, budget)
        blobs = {key: _read_legacy_blob(f, storages.get(key), key, byteorder, path) for key in keys}

    arrays = {}
    for name, record in state.items():
        if record.storage.key not in blobs:
            raise CheckpointFormatError(
                f"{path}: storage '{record.storage.key}' of tensor '{name}' is missing from the file"
            )
        arrays[name] = _materialize(name, record, blobs[record.storage.key], byteorder, path)
    return arrays


def _read_legacy_blob(f: BinaryIO, ref: _StorageRef | None, key: str, byteorder: str, path: str) -> bytes:
    """Reads one storage of the legacy format: an int64 element count, then the elements."""
    if ref is None:
        raise CheckpointFormatError(f"{path}: storage '{key}' is listed but no tensor describes its type")
    header = f.read(8)
    count = int.from_bytes(header, byteorder, signed=True)
    if len(header) < 8 or count != ref.numel:
        raise CheckpointFormatError(
            f"{path}: storage '{key}' should start with its element count {ref.numel}; the file is truncated or damaged"
        )
    needed = ref.numel * ref.dtype.itemsize
    # Checked before reading, so that a count in the file never drives a large read.
    if os.fstat(f.fileno()).st_size - f.tell() < needed:
        raise CheckpointFormatError(
            f"{path}: truncated: storage '{key}' needs {needed} bytes ({ref.numel} {ref.dtype.name} elements), "
            "but the file ends before"
        )
    return f.read(needed)


def _select_state_dict(obj: Any, path: str) -> dict[str, _TensorRecord]:
    """The state dict in `obj`: `obj` itself, or the only value of a dict that is one."""
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        nested = [key for key, value in obj.items() if _is_state_dict(value)]
        if len(nested) == 1:
            return obj[nested[0]]
        if len(nested) > 1:
            raise NotAStateDictError(
                f"{path}: holds several state dicts (under {', '.join(repr(k) for k in nested)}); "
                "save the one to convert on its own"
            )
    raise NotAStateDictError(f"{path}: holds {_describe(obj)}, not a state dict (a mapping from names to tensors)")


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(key, str) and isinstance(value, _TensorRecord) for key, value in obj.items())
    )


def _describe(obj: Any) -> str:
    if isinstance(obj, _TensorRecord):
        return "a single tensor"
    if isinstance(obj, dict):
        if not obj:
            return "an empty dict"
        return f"a dict with keys {', '.join(repr(k) for k in list(obj)[:5])}{', ...' if len(obj) > 5 else ''}"
    return f"a {type(obj).__name__}"


def _check_view(name: str, record: _TensorRecord, path: str, budget: ReadBudget) -> None:
    """Charges a tensor's bytes to the file's budget before any storage is read.

    A view may have more elements than its storage (torch's `expand` saves stride-0 views), so
    a small file can declare a huge tensor: the budget refuses it before it is copied out.
    """
    count = math.prod(record.size)
    budget.charge(
        count * record.dtype.itemsize,
        f"tensor '{name}' (size {record.size}, over a storage of {record.storage.numel:,} elements)",
    )


def _materialize(name: str, record: _TensorRecord, storage: bytes, byteorder: str, path: str) -> np.ndarray:
    """Copies the strided view `record` out of the storage's bytes, after checking that it stays inside them."""
    file_dtype = np.dtype(record.dtype.numpy_code).newbyteorder("<" if byteorder == "little" else ">")
    n_elements = len(storage) // file_dtype.itemsize
    # A dimension of length 1 never steps, whatever its stride says.
    strides = tuple(0 if n == 1 else step for n, step in zip(record.size, record.stride))
    last = record.offset + sum((n - 1) * step for n, step in zip(record.size, strides))
    if 0 not in record.size and last >= n_elements:
        raise CheckpointFormatError(
            f"{path}: tensor '{name}' (size {record.size}, stride {record.stride}, offset {record.offset}) reaches "
            f"element {last} of storage '{record.storage.key}', "
            f"which holds only {n_elements} {record.dtype.name} elements"
        )
    try:
        if 0 in record.size:
            values = np.zeros(record.size, file_dtype.newbyteorder("="))
        else:
            flat = np.frombuffer(storage, dtype=file_dtype, count=n_elements)
            view = np.lib.stride_tricks.as_strided(
                flat[record.offset :],
                shape=record.size,
                strides=tuple(step * file_dtype.itemsize for step in strides),
                writeable=False,
            )
            values = np.array(view, dtype=file_dtype.newbyteorder("="), order="C")
    except (MemoryError, ValueError, OverflowError) as err:
        raise CheckpointFormatError(f"{path}: tensor '{name}' of size {record.size} cannot be built ({err})") from None
    if record.dtype.name == "bfloat16":
        # bfloat16 is the upper half of a float32: widening is a shift, and exact.
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values
