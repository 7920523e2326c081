"""Reads the files stored in a binary Qt resource file (`.rcc`, made by `rcc -binary`).

Layout (all integers big-endian), as Qt's own reader walks it:

```
header   "qres", version (u32), tree offset, data offset, names offset (u32 each),
         and from version 3 on the overall flags (u32)
tree     one node per file or folder, 14 bytes (version 1) or 22 (version 2 on: + u64 mtime):
         name offset (u32), flags (u16: 1 zlib, 2 folder, 4 zstd), then
         folder: child count (u32), index of its first child node (u32)
         file:   territory (u16), language (u16), data offset (u32)
names    at its offset: length in UTF-16 units (u16), hash (u32), the name in UTF-16-BE
data     at its offset: size (u32), then the bytes; zlib entries begin with the
         uncompressed size (u32, qCompress), zstd entries are one zstd frame
```

Node 0 is the root folder; a folder's children are consecutive nodes.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

MAGIC = b"qres"
FLAG_ZLIB, FLAG_FOLDER, FLAG_ZSTD = 1, 2, 4


class RccError(ValueError):
    """The file is not a Qt resource file this reader understands."""


def _zstd_decompress(payload: bytes) -> bytes:
    try:
        from compression import zstd  # Python 3.14

        return zstd.decompress(payload)
    except ImportError:
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=payload, capture_output=True, check=True).stdout


class Resources:
    """The files of one `.rcc` file: `paths()` lists them, `data(path)` returns the bytes."""

    def __init__(self, blob: bytes, name: str = "<rcc>"):
        self.blob, self.name = blob, name
        if blob[:4] != MAGIC or len(blob) < 20:
            raise RccError(f"{name}: not a Qt resource file (no 'qres' header)")
        self.version, self.tree, self.data_start, self.names = struct.unpack_from(">IIII", blob, 4)
        if self.version not in (1, 2, 3):
            raise RccError(f"{name}: Qt resource format version {self.version} is not supported")
        self.node_size = 14 if self.version == 1 else 22
        try:
            self.files = dict(self._walk(0, ""))
        except (struct.error, UnicodeDecodeError) as error:
            raise RccError(f"{name}: damaged resource tree ({error})") from None

    @classmethod
    def read(cls, path) -> "Resources":
        return cls(Path(path).read_bytes(), str(path))

    def _name(self, offset: int) -> str:
        start = self.names + offset
        (length,) = struct.unpack_from(">H", self.blob, start)
        return self.blob[start + 6:start + 6 + 2 * length].decode("utf-16-be")

    def _node(self, index: int):
        """(name offset, flags, a, b): a, b are the child count and first child, or locale and data offset."""
        start = self.tree + index * self.node_size
        if start + 14 > len(self.blob):
            raise RccError(f"{self.name}: tree node {index} lies outside the file")
        name, flags = struct.unpack_from(">IH", self.blob, start)
        if flags & FLAG_FOLDER:
            return (name, flags, *struct.unpack_from(">II", self.blob, start + 6))
        return (name, flags, struct.unpack_from(">I", self.blob, start + 6)[0], struct.unpack_from(">I", self.blob, start + 10)[0])

    def _walk(self, index: int, prefix: str, depth: int = 0):
        """Yields `(path, (flags, data offset))` of every file below node `index`."""
        if depth > 64:
            raise RccError(f"{self.name}: folders nested too deep (a loop?)")
        _, flags, count, first = self._node(index)
        for child in range(first, first + count):
            name_offset, child_flags, _, offset = self._node(child)
            path = f"{prefix}{self._name(name_offset)}"
            if child_flags & FLAG_FOLDER:
                yield from self._walk(child, path + "/", depth + 1)
            else:
                yield path, (child_flags, offset)

    def paths(self) -> list[str]:
        return sorted(self.files)

    def data(self, path: str) -> bytes:
        """The file's bytes, decompressed."""
        if path not in self.files:
            raise RccError(f"{self.name}: no file {path!r}")
        flags, offset = self.files[path]
        start = self.data_start + offset
        (size,) = struct.unpack_from(">I", self.blob, start)
        payload = self.blob[start + 4:start + 4 + size]
        if len(payload) != size:
            raise RccError(f"{self.name}: {path} runs past the end of the file")
        try:
            if flags & FLAG_ZSTD:
                return _zstd_decompress(payload)
            if flags & FLAG_ZLIB:
                return zlib.decompress(payload[4:])
        except (zlib.error, subprocess.CalledProcessError) as error:
            raise RccError(f"{self.name}: {path} does not decompress ({type(error).__name__})") from None
        return payload
