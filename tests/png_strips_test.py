"""png_strips: a PNG decoded strip by strip gives Pillow's whole decoding, for every filter and colour type."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.inpaint.png_strips import png_strips, read_layout, streamable

COLOUR_TYPES = {"L": (0, 1), "RGB": (2, 3), "LA": (4, 2), "RGBA": (6, 4)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _filtered(raw: np.ndarray, bpp: int, filters: np.ndarray) -> bytes:
    """Rows of `raw` (uint8 [H, row bytes]) filtered by each row's filter type (0-4), each behind its type byte."""
    raw = raw.astype(np.int32)
    above = np.vstack([np.zeros((1, raw.shape[1]), np.int32), raw[:-1]])
    left = np.hstack([np.zeros((raw.shape[0], bpp), np.int32), raw[:, :-bpp]])
    upper_left = np.hstack([np.zeros((raw.shape[0], bpp), np.int32), above[:, :-bpp]])
    estimate = left + above - upper_left
    pa, pb, pc = abs(estimate - left), abs(estimate - above), abs(estimate - upper_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left))
    predictors = [np.zeros_like(raw), left, above, (left + above) // 2, paeth]
    rows = [bytes([f]) + ((raw[i] - predictors[f][i]) % 256).astype(np.uint8).tobytes() for i, f in enumerate(filters)]
    return b"".join(rows)


def _png(pixels: np.ndarray, mode: str, filters: np.ndarray, idat_parts: int = 3, lost_bytes: int = 0) -> bytes:
    colour_type, bpp = COLOUR_TYPES[mode]
    height, width = pixels.shape[:2]
    data = zlib.compress(_filtered(pixels.reshape(height, -1), bpp, filters), 6)
    data = data[:len(data) - lost_bytes]
    cuts = np.linspace(0, len(data), idat_parts + 1).astype(int)
    idats = b"".join(_chunk(b"IDAT", data[a:b]) for a, b in zip(cuts[:-1], cuts[1:]))
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + idats + _chunk(b"IEND", b"")


@pytest.mark.parametrize("mode", list(COLOUR_TYPES))
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_every_filter_type_decodes_as_pillow_does(tmp_path, mode, rows):
    rng = np.random.default_rng(rows)
    height, width, channels = 53, 41, COLOUR_TYPES[mode][1]
    smooth = np.add.outer(np.arange(height), 3 * np.arange(width))[..., None] + 40 * np.arange(channels)
    pixels = np.where(rng.random((height, width, channels)) < 0.3, rng.integers(0, 256, smooth.shape), smooth)
    pixels = (pixels % 256).astype(np.uint8)
    path = tmp_path / "photo.png"
    path.write_bytes(_png(pixels, mode, filters=np.arange(height) % 5))
    layout = read_layout(path)
    assert streamable(layout)
    strips = list(png_strips(path, layout, rows))
    assert [top for top, _ in strips] == list(range(0, height, rows))
    with Image.open(path) as whole:
        expected = np.asarray(whole)
        assert all(strip.mode == whole.mode for _, strip in strips)
    np.testing.assert_array_equal(np.concatenate([np.asarray(strip) for _, strip in strips]), expected)


def test_palette_and_transparency_travel_with_each_strip(tmp_path):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (70, 50, 3), dtype=np.uint8)).quantize(32)
    image.save(tmp_path / "p.png", transparency=3)
    layout = read_layout(tmp_path / "p.png")
    strips = [strip for _, strip in png_strips(tmp_path / "p.png", layout, 16)]
    with Image.open(tmp_path / "p.png") as whole:
        np.testing.assert_array_equal(np.concatenate([np.asarray(s.convert("RGBA")) for s in strips]),
                                      np.asarray(whole.convert("RGBA")))


def test_truncated_data_raises_oserror(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    (tmp_path / "t.png").write_bytes(_png(pixels, "RGB", np.ones(40, int), lost_bytes=500))
    layout = read_layout(tmp_path / "t.png")
    with pytest.raises(OSError):
        list(png_strips(tmp_path / "t.png", layout, 8))


def test_what_is_left_to_pillow(tmp_path):
    pixels = np.zeros((8, 8, 3), np.uint8)
    plain = _png(pixels, "RGB", np.zeros(8, int))
    interlaced_header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 1))
    (tmp_path / "interlaced.png").write_bytes(plain[:8] + interlaced_header + plain[8 + 25:])
    Image.fromarray(pixels.astype(np.uint16)[..., 0] * 257).save(tmp_path / "deep.png")
    (tmp_path / "text.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk")
    assert not streamable(read_layout(tmp_path / "interlaced.png"))
    assert not streamable(read_layout(tmp_path / "deep.png"))
    assert read_layout(tmp_path / "text.png") is None


def test_an_animation_is_left_to_pillow_and_exif_is_not_the_layouts_business(tmp_path):
    frames = [Image.new("RGB", (9, 5), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "animated.png", save_all=True, append_images=frames[1:])
    assert not streamable(read_layout(tmp_path / "animated.png"))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames[0].save(tmp_path / "turned.png", exif=exif.tobytes())
    # The strips are the stored grid; whether to turn them is the header's (`input_limits.image_header`).
    assert streamable(read_layout(tmp_path / "turned.png"))
