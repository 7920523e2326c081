"""Reading untrusted weight archives with memory bounded by the file's size, checked before allocating.

A small file can declare huge contents: a zip record that inflates 1000-fold, several zip entries
pointing at the same bytes, a `.npy` header announcing 10^13 elements, a pickle of a few kilobytes
that inflates to a huge object graph, a tensor view larger than its storage. Every such size is
checked here *before* anything of that size is read, decompressed or allocated:

- `ReadBudget`: everything read out of one file, and everything built from it, counts against
  `EXPANSION_RATIO` x the file's size + `EXPANSION_SLACK` bytes. A legitimate checkpoint reads
  about its own size (torch stores records uncompressed; `numpy.savez_compressed` shrinks float
  weights by a few percent), so the cap only ever stops bombs.
- `read_member`: a zip record's declared size is charged to the budget before it is read, and it
  is read in chunks of at most its declared size (zipfile never returns more than that).
- `MAX_PICKLE_BYTES`: a pickle longer than this is refused before unpickling. A DMFN state dict's
  pickle is about 25 KB; the worst a pickle can do is about 83 bytes of objects per byte (a list
  of empty dicts, measured), so 1 MiB of pickle costs at most about 90 MB.
- `read_npy_member`: a `.npy` header's shape and dtype must account for the record's size exactly
  before the array is built; object arrays are refused (they would need pickled code).

Example:

```python
with zipfile.ZipFile(path) as archive:
    budget = ReadBudget(path)
    arrays = {info.filename: read_npy_member(archive, info, path, budget) for info in archive.infolist()}
```
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib

import numpy as np

from dmfn_tf.errors import UserError

EXPANSION_RATIO = 16
EXPANSION_SLACK = 16 << 20
MAX_PICKLE_BYTES = 1 << 20
_CHUNK = 1 << 20
# What zipfile raises on damaged, truncated, encrypted or oddly compressed archives.
ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
)


class CheckpointFormatError(UserError):
    """The file is not a readable checkpoint (not a zip or a legacy torch file, truncated, records missing)."""


class ArchiveLimitError(CheckpointFormatError):
    """The file declares more data than its size allows; refused before reading or allocating it."""


class ReadBudget:
    """How many bytes one file may still make the reader hold (see the module docstring).

    Args:
        path: the file; its size sets the budget.
    """

    def __init__(self, path: str):
        self.path = path
        self.file_size = os.path.getsize(path)
        self.limit = EXPANSION_RATIO * self.file_size + EXPANSION_SLACK
        self.left = self.limit

    def charge(self, n_bytes: int, what: str) -> None:
        """Counts `n_bytes` about to be read or allocated for `what`, refusing them past the budget."""
        if n_bytes > self.left:
            raise ArchiveLimitError(
                f"{self.path}: {what} needs {n_bytes:,} bytes, more than a {self.file_size:,}-byte file may "
                f"unpack to ({self.limit:,} bytes in all): a damaged or hostile file"
            )
        self.left -= n_bytes


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, budget: ReadBudget, max_bytes: int | None = None
) -> bytearray:
    """Reads a zip record, charging its declared size to `budget` first.

    Args:
        archive: the open archive.
        info: the record.
        path: the archive's path, for messages.
        budget: the archive's `ReadBudget`.
        max_bytes: refuse a record whose size is larger than this.
    """
    size = info.file_size
    if max_bytes is not None and info.file_size > max_bytes:
        raise ArchiveLimitError(
            f"{path}: record '{info.filename}' is {info.file_size:,} bytes, more than the {max_bytes:,} allowed"
        )
    budget.charge(size, f"record '{info.filename}'")
    data = bytearray()
    try:
        with archive.open(info) as stream:
            while len(data) < size:
                chunk = stream.read(min(_CHUNK, size - len(data)))
                if not chunk:
                    break
                data += chunk
    except ZIP_READ_ERRORS as err:
        raise CheckpointFormatError(f"{path}: damaged record '{info.filename}' ({err})") from None
    if len(data) < size:
        raise CheckpointFormatError(f"{path}: record '{info.filename}' is truncated")
    return data


class LimitedReader(io.RawIOBase):
    """A read-only view of a binary file that refuses to deliver more than `limit` bytes.

    Gives the unpickler a stream whose length is capped, for pickles whose length is not known
    in advance (the legacy torch format).

    Args:
        file: the underlying binary file.
        limit: the most bytes to deliver.
        path: the file's path, for the message.
    """

    def __init__(self, file, limit: int, path: str):
        super().__init__()
        self._file, self._left, self._limit, self._path = file, limit, limit, path

    def readable(self) -> bool:
        return True

    def _take(self, n: int) -> int:
        if n > self._left:
            raise ArchiveLimitError(f"{self._path}: a pickle longer than {self._limit:,} bytes: not a state dict")
        self._left -= n
        return n

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return self._take(len(data))

    def readline(self, size=-1) -> bytes:
        line = self._file.readline(self._left + 1 if size is None or size < 0 else min(size, self._left + 1))
        self._take(len(line))
        return line


def read_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, budget: ReadBudget) -> np.ndarray:
    """Reads one `.npy` record of an `.npz` archive after checking its header against the record's size.

    Args:
        archive: the open `.npz` archive.
        info: the `.npy` record.
        path: the archive's path, for messages.
        budget: the archive's `ReadBudget`.

    Returns:
        The array, in the file's dtype (byte order included) and shape.
    """
    name = info.filename
    try:
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise CheckpointFormatError(f"{path}: record '{name}' is a .npy file of unsupported version {version}")
            header_size = stream.tell()
    except CheckpointFormatError:
        raise
    except (ValueError, SyntaxError, TypeError) + ZIP_READ_ERRORS as err:
        raise CheckpointFormatError(f"{path}: record '{name}' has no valid .npy header ({err})") from None
    if dtype.hasobject:
        raise CheckpointFormatError(
            f"{path}: record '{name}' holds Python objects, which cannot be read without running pickled code"
        )
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise CheckpointFormatError(f"{path}: record '{name}' declares an invalid shape {shape!r}")
    count = math.prod(shape)
    if header_size + count * dtype.itemsize != info.file_size:
        raise ArchiveLimitError(
            f"{path}: record '{name}' declares {count:,} {dtype} elements (shape {shape}), "
            f"but holds {info.file_size - header_size:,} bytes of data"
        )
    data = read_member(archive, info, path, budget)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size)
    return array.reshape(shape, order="F" if fortran_order else "C")
