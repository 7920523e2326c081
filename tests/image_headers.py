"""Small files whose headers declare any size, in each format Pillow reads (for the header-first checks, issue 19).

`declaring(image_format, width, height)` returns a valid 8 x 8 file of that format with its size
fields rewritten: a few hundred bytes that declare, say, 16000 x 16000. Only the header is meant to
be read; the pixels are whatever the small file held.
"""

import io
import struct

from PIL import Image

FORMATS = ("BMP", "GIF", "JPEG", "WEBP", "TIFF")
EXTENSIONS = {"BMP": ".bmp", "GIF": ".gif", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}


def _small(image_format: str, **options) -> bytearray:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format=image_format, **options)
    return bytearray(buffer.getvalue())


def _bmp(width, height):
    data = _small("BMP")
    data[18:26] = struct.pack("<ii", width, height)
    return data


def _gif(width, height):  # the logical screen and the first frame's descriptor
    data = _small("GIF")
    data[6:10] = struct.pack("<HH", width, height)
    at = data.index(b"\x2c", 13)
    data[at + 5:at + 9] = struct.pack("<HH", width, height)
    return data


def _jpeg(width, height):  # the SOF0 marker
    data = _small("JPEG")
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return data


def _webp(width, height):  # a lossless (VP8L) bitstream: 14 bits each, at most 16384
    data = _small("WEBP", lossless=True)
    at = data.index(b"VP8L") + 8
    bits = int.from_bytes(data[at + 1:at + 5], "little") & ~((1 << 28) - 1)
    data[at + 1:at + 5] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return data


def _tiff(width, height):  # one uncompressed 8-bit grey strip
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 110),
               (278, 4, height), (279, 4, 64)]
    directory = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", tag, kind, 1, value)
                                                           for tag, kind, value in entries) + b"\0\0\0\0"
    return bytearray(b"II*\0" + struct.pack("<I", 8) + directory + b"\0" * 64)


def declaring(image_format: str, width: int, height: int) -> bytes:
    """A small `image_format` file (one of `FORMATS`) whose header declares `width` x `height`."""
    makers = {"BMP": _bmp, "GIF": _gif, "JPEG": _jpeg, "WEBP": _webp, "TIFF": _tiff}
    return bytes(makers[image_format](width, height))
