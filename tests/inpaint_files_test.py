"""Tests for dmfn_tf.inpaint.files (reading photos and masks, strip by strip), the runner's `inpaint` of any size
and the contract's padding (dmfn_tf.inpaint.contract)."""

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.errors import UserError
from dmfn_tf.models.generator import build_generator
from dmfn_tf.inpaint import files
from dmfn_tf.inpaint.budget import PixelBudgetError
from dmfn_tf.inpaint.files import ImageReadError, decode_photo, holes_from_alpha, read_holes, read_image, read_mask
from dmfn_tf.input_limits import image_header
from dmfn_tf.inpaint.request import MaskMismatchError
from dmfn_tf.inpaint.runner import inpaint
from dmfn_tf.inpaint.contract import padded_size, reflect_indices


class _MustNotRun:
    """A generator stand-in that fails the test if it is called."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("the generator must not run")


@pytest.fixture(scope="module")
def generator():
    return build_generator(nf=4, n_blocks=1)


def _random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size, padded", [(1, 4), (2, 4), (3, 4), (4, 4), (5, 8), (30, 32), (257, 260), (3, 13)])
def test_reflect_indices_match_numpy_reflect_padding(size, padded):
    axis = np.arange(size)
    np.testing.assert_array_equal(axis[np.asarray(reflect_indices(size, padded))], np.pad(axis, (0, padded - size), mode="reflect"))


@pytest.mark.parametrize("size, expected", [(1, 4), (4, 4), (5, 8), (257, 260), (301, 304)])
def test_padded_size_is_next_multiple_of_four(size, expected):
    assert padded_size(size) == expected


@pytest.mark.parametrize("height, width", [(30, 45), (17, 64), (5, 3)])
def test_inpaint_odd_sizes_matches_padded_reference_and_keeps_known_pixels(generator, height, width):
    image = _random_image(height, width)
    mask = np.zeros((height, width, 1), np.float32)
    mask[height // 4 : 3 * height // 4 + 1, width // 4 : 3 * width // 4 + 1] = 1
    result = inpaint(generator, image, mask)

    # Reference: NumPy's reflect padding to multiples of 4, the generator, crop, round.
    pad = ((0, padded_size(height) - height), (0, padded_size(width) - width), (0, 0))
    padded_image = np.pad(image.astype(np.float32) / 127.5 - 1, pad, mode="reflect")
    padded_mask = np.pad(mask, pad, mode="reflect")
    raw = generator(np.concatenate([padded_image * (1 - padded_mask), padded_mask], -1)[None]).numpy()[0]
    expected_hole = np.clip(np.round((raw[:height, :width] + 1) * 127.5), 0, 255)

    assert result.shape == image.shape and result.dtype == np.uint8
    hole = mask[..., 0] > 0.5
    np.testing.assert_array_equal(result[~hole], image[~hole])
    np.testing.assert_allclose(result[hole].astype(np.float32), expected_hole[hole], atol=1)


def test_all_zero_mask_returns_input_without_running_the_generator():
    image = _random_image(9, 11)
    result = inpaint(_MustNotRun(), image, np.zeros((9, 11, 1), np.float32))
    np.testing.assert_array_equal(result, image)
    assert result is not image


def test_all_one_mask_runs(generator):
    image = _random_image(21, 19)
    result = inpaint(generator, image, np.ones((21, 19), np.uint8))
    assert result.shape == (21, 19, 3) and result.dtype == np.uint8


def test_pixel_budget_is_checked_before_the_generator_runs():
    with pytest.raises(PixelBudgetError, match="64x40 = 2,560 pixels exceeds the budget of 2,000"):
        inpaint(_MustNotRun(), _random_image(40, 64), np.ones((40, 64, 1)), max_pixels=2000)


def test_mask_of_another_size_is_rejected():
    with pytest.raises(MaskMismatchError, match=r"\(8, 8, 1\)"):
        inpaint(_MustNotRun(), _random_image(8, 9), np.ones((8, 8, 1)))


def test_read_image_rgba_drops_alpha_and_returns_it(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb, alpha = read_image(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(rgb, rgba[..., :3])
    np.testing.assert_allclose(alpha, rgba[..., 3] / 255.0, atol=1e-7)


def test_read_image_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.random.default_rng(2).integers(0, 256, (5, 8), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    rgb, alpha = read_image(str(tmp_path / "g.png"))
    assert alpha is None
    np.testing.assert_array_equal(rgb, np.stack([gray] * 3, axis=-1))


def test_read_image_sixteen_bit_is_scaled_to_eight_bits(tmp_path):
    levels = np.array([[0, 257, 65535, 32896]], np.uint16)  # 8-bit equivalents 0, 1, 255, 128
    Image.fromarray(levels).save(tmp_path / "deep.png")
    rgb, _ = read_image(str(tmp_path / "deep.png"))
    np.testing.assert_array_equal(rgb[..., 0], [[0, 1, 255, 128]])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_read_image_applies_exif_rotation_and_header_agrees(tmp_path):
    image = _random_image(2, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise for display
    Image.fromarray(image).save(tmp_path / "r.png", exif=exif)
    rgb, _ = read_image(str(tmp_path / "r.png"))
    np.testing.assert_array_equal(rgb, np.rot90(image, k=-1))
    assert image_header(str(tmp_path / "r.png")).upright == (3, 2)


def _png_with_late_exif(path, image, orientation):
    """A PNG whose eXIf chunk comes after its pixels (before IEND), as some writers place it."""
    import struct
    import zlib

    Image.fromarray(image).save(path)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data) & 0xFFFFFFFF)
    contents = path.read_bytes()
    end = contents.rindex(b"IEND") - 4
    path.write_bytes(contents[:end] + chunk + contents[end:])


def test_a_png_header_is_read_without_decoding_and_the_decoder_agrees(tmp_path, monkeypatch):
    from PIL import ImageFile

    image = _random_image(2, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(image).save(tmp_path / "early.png", exif=exif)
    _png_with_late_exif(tmp_path / "late.png", image, 6)
    load = ImageFile.ImageFile.load

    def must_not_decode(self):
        raise AssertionError("the header read decoded the pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    # EXIF before the pixels turns the image; EXIF after them is only seen by decoding, so neither reads it.
    assert image_header(str(tmp_path / "early.png")).upright == (3, 2)
    assert image_header(str(tmp_path / "late.png")).upright == (2, 3)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    assert decode_photo(str(tmp_path / "early.png"))[0].shape == (3, 2, 3)
    np.testing.assert_array_equal(decode_photo(str(tmp_path / "late.png"))[0], image)


def test_read_image_errors_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(ImageReadError, match="junk.png: not a readable image file"):
        read_image(str(tmp_path / "junk.png"))
    with pytest.raises(ImageReadError, match="missing.png: no such image file"):
        read_image(str(tmp_path / "missing.png"))
    good = tmp_path / "good.png"
    Image.fromarray(_random_image(64, 64)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(str(tmp_path / "cut.png"))


def test_transparent_pixels_are_holes():
    np.testing.assert_array_equal(holes_from_alpha(np.array([[0.0, 0.49, 0.5, 1.0]])), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(holes_from_alpha(np.array([[0, 127, 128, 255]], np.uint8)), [[1, 1, 0, 0]])


def test_read_mask_anti_aliased_zero_one_and_inverted(tmp_path):
    values = np.array([[0, 100, 127, 128, 200, 255]], np.uint8)
    Image.fromarray(values, "L").save(tmp_path / "aa.png")
    np.testing.assert_array_equal(read_mask(str(tmp_path / "aa.png"))[..., 0], [[0, 0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(read_mask(str(tmp_path / "aa.png"), invert=True)[..., 0], [[1, 1, 1, 0, 0, 0]])
    Image.fromarray(np.array([[0, 1, 1, 0]], np.uint8), "L").save(tmp_path / "01.png")
    np.testing.assert_array_equal(read_mask(str(tmp_path / "01.png"))[..., 0], [[0, 1, 1, 0]])
    with pytest.raises(UserError, match="nope.png"):
        read_mask(str(tmp_path / "nope.png"))


@pytest.mark.parametrize("name, array, options", [
    ("grey_0_255", np.r_[np.full((3, 9), 1), np.full((3, 9), 255) * (np.arange(9) % 2)].astype(np.uint8), {}),
    ("grey_0_1", (np.arange(54).reshape(6, 9) % 3 == 0).astype(np.uint8), {}),
    ("grey_0_1_inverted", (np.arange(54).reshape(6, 9) % 3 == 0).astype(np.uint8), {"invert": True}),
    ("rgb", np.random.default_rng(3).integers(0, 256, (7, 9, 3), dtype=np.uint8), {}),
    ("rgb_unit_strips", np.r_[np.ones((4, 9, 3)), np.full((3, 9, 3), 200)].astype(np.uint8), {}),
    ("rgba_alpha", np.random.default_rng(4).integers(0, 256, (7, 9, 4), dtype=np.uint8), {"from_alpha": True}),
])
def test_holes_by_strips_match_the_mask_rule_on_the_whole_file(tmp_path, monkeypatch, name, array, options):
    from dmfn_tf.data.masks import load_mask_file

    path = tmp_path / f"{name}.png"
    Image.fromarray(array).save(path)
    expected = load_mask_file(str(path), **options)[..., 0] > 0.5
    monkeypatch.setattr(files, "STRIP_ROWS", 2)  # strips of two rows: some hold only 0/1 values
    holes = read_holes(str(path), **options)
    assert holes.dtype == bool
    np.testing.assert_array_equal(holes, expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16", "CMYK"])
def test_photos_decoded_by_strips_match_a_whole_conversion(tmp_path, monkeypatch, mode):
    rgba = np.random.default_rng(5).integers(0, 256, (7, 9, 4), dtype=np.uint8)
    if mode == "I;16":
        image = Image.fromarray(rgba[..., 0].astype(np.uint16) * 257)
    else:
        image = Image.fromarray(rgba, "RGBA").convert(mode)
    image.save(tmp_path / ("photo.tif" if mode == "CMYK" else "photo.png"))
    path = str(tmp_path / ("photo.tif" if mode == "CMYK" else "photo.png"))
    monkeypatch.setattr(files, "STRIP_ROWS", 3)
    rgb, alpha = decode_photo(path)
    assert rgb.flags.writeable and rgb.dtype == np.uint8
    with Image.open(path) as whole:
        reference = whole.convert("RGBA") if mode in ("RGBA",) else whole
        expected = (np.repeat(np.round(np.asarray(whole) / 257.0).astype(np.uint8)[..., None], 3, -1)
                    if mode == "I;16" else np.asarray(reference.convert("RGB")))
        np.testing.assert_array_equal(rgb, expected)
        if mode == "RGBA":
            np.testing.assert_array_equal(alpha, np.asarray(whole)[..., 3])


@pytest.mark.parametrize("height, width", [(1, 1), (7, 5), (9, 300)])
def test_write_png_strip_by_strip_reads_back_exactly(tmp_path, monkeypatch, height, width):
    from dmfn_tf.inpaint.files import write_png

    monkeypatch.setattr(files, "STRIP_ROWS", 4)
    rgb = _random_image(height, width, seed=height)
    write_png(tmp_path / "out.png", rgb)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "RGB" and written.format == "PNG"
        np.testing.assert_array_equal(np.asarray(written), rgb)


@pytest.mark.parametrize("mode", ["L", "RGB", "LA", "RGBA", "P"])
def test_an_8_bit_png_is_decoded_strip_by_strip_as_pillow_decodes_it_whole(tmp_path, monkeypatch, mode):
    from PIL import PngImagePlugin

    heights, load = [], PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: (heights.append(self.size[1]), load(self))[1])
    photo = Image.fromarray(_random_image(files.STRIP_ROWS * 2 + 37, 50)).convert(mode)
    photo.save(tmp_path / "photo.png")
    rgb, alpha = decode_photo(str(tmp_path / "photo.png"))
    assert max(heights) <= files.PNG_DECODE_ROWS + 1  # never the whole photo at once
    expected = np.asarray(photo.convert("RGBA"))
    np.testing.assert_array_equal(rgb, expected[..., :3])
    if "A" in mode:
        np.testing.assert_array_equal(alpha, expected[..., 3])
    else:
        assert alpha is None
