"""Decoding a PNG strip by strip: memory of a strip of rows, whatever the image's size.

Pillow decodes a PNG whole, at 4 bytes a pixel (an 8192² RGB PNG is 256 MiB before anything can be
shrunk or converted). `png_strips(path, layout, rows)` reads the chunks itself (`read_layout`),
inflates the image data incrementally, and hands each strip of filtered rows to Pillow as a small
PNG of its own: the strip's rows behind one row stored unfiltered, the previous strip's last row,
which the filters Up, Average and Paeth of the strip's first row refer to. So every pixel is
Pillow's own decoding, bit for bit; memory holds one strip at a time.

Streamed (`streamable`): non-interlaced, 8 bits a sample (grayscale, RGB, palette, with alpha or a
`tRNS` chunk), one still image; every other PNG is decoded whole by Pillow as before. The strips
are the file's own pixel grid: a photo whose header declares an EXIF orientation other than upright
(`dmfn_tf.input_limits.image_header`, the one reader of it) is left to Pillow by the caller.

Example:

```python
layout = read_layout("photo.png")
if layout is not None and streamable(layout):
    for top, strip in png_strips("photo.png", layout, rows=256):
        ...  # strip: a Pillow image of rows [top, top + strip.height)
```
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Iterator, NamedTuple

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour types streamed at 8 bits a sample, and the bytes a pixel takes in the file.
_BYTES_PER_PIXEL = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Largest ancillary chunk read (PLTE, tRNS); anything larger is not a PNG this module streams.
_MAX_SMALL_CHUNK = 1 << 20
_READ_BLOCK = 1 << 20


class PngLayout(NamedTuple):
    """What `read_layout` found in a PNG's chunks (the image data is located, not read)."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool
    colour_chunks: bytes  # the PLTE and tRNS chunks as they are encoded, for each strip's PNG
    idat: tuple[tuple[int, int], ...]  # (offset, length) of each IDAT chunk's data
    animated: bool  # an animation (acTL chunk): left to Pillow

    @property
    def row_bytes(self) -> int:
        """Bytes of one unfiltered row."""
        return self.width * _BYTES_PER_PIXEL.get(self.colour_type, 0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _small(file, length: int) -> bytes:
    if length > _MAX_SMALL_CHUNK:
        raise ValueError("an ancillary chunk too large to stream")
    data = file.read(length)
    if len(data) != length:
        raise ValueError("truncated chunk")
    return data


def _walk_chunks(file) -> dict:
    """The chunks of a PNG after its signature: IHDR, colour chunks, IDAT locations, animation, until IEND."""
    found = {"colour": b"", "idat": [], "animated": False, "ihdr": None}
    while True:
        head = file.read(8)
        if len(head) < 8:
            raise ValueError("no IEND chunk")
        length, kind = struct.unpack(">I", head[:4])[0], head[4:]
        if kind == b"IDAT":
            found["idat"].append((file.tell(), length))
            file.seek(length, io.SEEK_CUR)
        elif kind == b"IHDR":
            found["ihdr"] = _small(file, length)
        elif kind in (b"PLTE", b"tRNS"):
            found["colour"] += _chunk(kind, _small(file, length))
        elif kind == b"acTL":
            found["animated"] = True
            file.seek(length, io.SEEK_CUR)
        elif kind == b"IEND":
            return found
        else:
            file.seek(length, io.SEEK_CUR)
        file.seek(4, io.SEEK_CUR)  # the CRC (Pillow checks the image data's when it decodes it)


def read_layout(path) -> PngLayout | None:
    """The layout of the PNG at `path` from its chunks, or None when it is not a well-formed PNG."""
    try:
        with open(path, "rb") as file:
            if file.read(8) != SIGNATURE:
                return None
            found = _walk_chunks(file)
    except (OSError, ValueError, struct.error):
        return None
    if found["ihdr"] is None or len(found["ihdr"]) != 13 or not found["idat"]:
        return None
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", found["ihdr"])
    return PngLayout(width, height, bit_depth, colour_type, interlace != 0, found["colour"], tuple(found["idat"]),
                     found["animated"])


def streamable(layout: PngLayout | None) -> bool:
    """Whether `png_strips` decodes this PNG (see the module docstring)."""
    return (layout is not None and layout.bit_depth == 8 and layout.colour_type in _BYTES_PER_PIXEL
            and not layout.interlaced and not layout.animated and layout.width > 0 and layout.height > 0)


def _filtered_rows(file, layout: PngLayout, most: int) -> Iterator[bytes]:
    """The inflated image data (filtered rows, each behind its filter byte), at most `most` bytes at a time."""
    inflater = zlib.decompressobj()
    for offset, length in layout.idat:
        file.seek(offset)
        while length > 0:
            data = file.read(min(length, _READ_BLOCK))
            if not data:
                raise OSError("truncated PNG image data")
            length -= len(data)
            while data:
                out = inflater.decompress(data, most)
                data = inflater.unconsumed_tail
                if out:
                    yield out
            if inflater.eof:
                return


def _strip_png(layout: PngLayout, previous: bytes | None, filtered, rows: int) -> io.BytesIO:
    """A PNG of `rows` filtered rows, behind `previous` (the row above them, unfiltered) when there is one.

    The image data is stored (zlib level 0): each byte is copied once, never compressed again.
    """
    header = struct.pack(">IIBBBBB", layout.width, rows + (previous is not None), 8, layout.colour_type, 0, 0, 0)
    compressor = zlib.compressobj(0)
    parts = [compressor.compress(b"\x00" + previous)] if previous is not None else []
    parts += [compressor.compress(filtered), compressor.flush()]
    crc = zlib.crc32(b"IDAT")
    for part in parts:
        crc = zlib.crc32(part, crc)
    start = SIGNATURE + _chunk(b"IHDR", header) + layout.colour_chunks
    start += struct.pack(">I", sum(len(part) for part in parts)) + b"IDAT"
    # A BytesIO made from one bytes object reads from it without copying it first.
    return io.BytesIO(b"".join([start, *parts, struct.pack(">I", crc & 0xFFFFFFFF), _chunk(b"IEND", b"")]))


def _decode_strip(layout: PngLayout, previous: bytes | None, filtered, rows: int):
    from PIL import Image

    skip = int(previous is not None)
    # Closed at once: a PNG image holds its file and its pixels in reference cycles, which would keep
    # strips alive until the garbage collector happens to run.
    with Image.open(_strip_png(layout, previous, filtered, rows)) as opened:
        opened.load()
        return opened.crop((0, skip, layout.width, rows + skip))


def png_strips(path, layout: PngLayout, rows: int) -> Iterator[tuple[int, object]]:
    """`(top, strip)` for each strip of at most `rows` rows of a `streamable` PNG, top to bottom.

    Each strip is a Pillow image (mode L, RGB, P, LA or RGBA, with the file's palette and
    transparency), decoded by Pillow from the file's own filtered rows.

    Raises:
        OSError: the image data is truncated or corrupt.
    """
    stride = layout.row_bytes + 1
    pending, previous, top = bytearray(), None, 0
    with open(path, "rb") as file:
        for data in _filtered_rows(file, layout, rows * stride):
            pending += data
            while top < layout.height and len(pending) >= min(rows, layout.height - top) * stride:
                count = min(rows, layout.height - top)
                with memoryview(pending) as view, view[:count * stride] as rows_data:  # released before the del
                    strip = _decode_strip(layout, previous, rows_data, count)
                del pending[:count * stride]
                previous = strip.crop((0, count - 1, layout.width, count)).tobytes()
                yield top, strip
                top += count
    if top < layout.height:
        raise OSError(f"truncated PNG image data ({top} of {layout.height} rows)")


class PngStripWriter:
    """Writes an 8-bit RGB PNG strip by strip (filter "Up", zlib `level`): memory of about one strip.

    Feed `write` the rows top to bottom, in strips of any height, `height` rows in all; `close` ends
    the file. The filtered rows go to zlib `rows_per_call` at a time, so the bytes written depend
    only on the pixels (and `rows_per_call`), not on how the rows were cut into strips.

    Example:

    ```python
    with open("out.png", "wb") as file:
        writer = PngStripWriter(file, width, height)
        for strip in strips:  # uint8 [rows, width, 3]
            writer.write(strip)
        writer.close()
    ```
    """

    def __init__(self, file, width: int, height: int, level: int = 6, rows_per_call: int = 256):
        self.file, self.width, self.height, self.rows_written = file, width, height, 0
        self.rows_per_call = rows_per_call
        self._compressor = zlib.compressobj(level)
        self._previous = bytes(width * 3)
        self._filtered = bytearray()
        file.write(SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))

    def write(self, rows) -> None:
        """Appends uint8 RGB rows `[n, width, 3]`."""
        import numpy as np

        rows = np.ascontiguousarray(rows, np.uint8).reshape(-1, self.width * 3)
        filtered = np.empty((len(rows), self.width * 3 + 1), np.uint8)
        filtered[:, 0] = 2  # "Up": each byte minus the byte above it, modulo 256
        above = np.concatenate([np.frombuffer(self._previous, np.uint8)[None], rows[:-1]])
        np.subtract(rows, above, out=filtered[:, 1:])
        self._previous = rows[-1].tobytes()
        self.rows_written += len(rows)
        self._filtered += filtered.tobytes()
        call_bytes = self.rows_per_call * (self.width * 3 + 1)
        while len(self._filtered) >= call_bytes:
            self._compress(call_bytes)

    def _compress(self, count: int) -> None:
        with memoryview(self._filtered) as view, view[:count] as part:
            compressed = self._compressor.compress(part)
        del self._filtered[:count]
        if compressed:
            self.file.write(_chunk(b"IDAT", compressed))

    def close(self) -> None:
        """Ends the image data and the file; every row must have been written."""
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} rows written of {self.height}")
        if self._filtered:
            self._compress(len(self._filtered))
        self.file.write(_chunk(b"IDAT", self._compressor.flush()) + _chunk(b"IEND", b""))
