"""Photos and masks sent to `dmfn app` (dmfn_tf/app/decoding.py): plain names, sized from the header first."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.app.decoding import check_photo, decode_upload, plain_filename, preview_photo, read_holes
from dmfn_tf.app.refusal import Refusal
from dmfn_tf.inpaint.budget import PixelBudgetError
from dmfn_tf.inpaint.strategies import HDOptions


def read_photo(path, name, options, max_pixels):
    """What the server does with an upload: its header checked, then (when the model runs) its pixels decoded."""
    checked = check_photo(path, name, options, max_pixels)
    photo = decode_upload(path, name)
    assert photo.shape[:2] == (checked.height, checked.width)
    return photo


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("header, name", [(None, "photo"), ("", "photo"), ("cat.png", "cat.png"),
                                          ("%C3%A9t%C3%A9.jpg", "été.jpg"), ("a%20b.png", "a b.png")])
def test_plain_names(header, name):
    assert plain_filename(header) == name


@pytest.mark.parametrize("header", [".", "..", "%2E%2E", "a/b", "a%2Fb", "a\\b", "%00", "x%0A", "%ff", "é.png", "a" * 256])
def test_other_names_are_refused(header):
    with pytest.raises(Refusal, match="X-Filename must be a plain file name") as caught:
        plain_filename(header)
    assert caught.value.status == 400


def test_a_photo_is_read_after_its_header_is_checked(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "upload"
    path.write_bytes(_png(photo))
    np.testing.assert_array_equal(read_photo(str(path), "cat.png", HDOptions(strategy="original"), 10_000), photo)
    with pytest.raises(PixelBudgetError, match="^cat.png: 40x30 = 1,200 pixels exceeds the budget of 1,000"):
        read_photo(str(path), "cat.png", HDOptions(strategy="original"), 1000)
    path.write_bytes(b"not an image")
    with pytest.raises(Refusal, match="^cat.png: not a readable image file$"):
        read_photo(str(path), "cat.png", HDOptions(), 10_000)


def test_a_camera_mpo_photo_is_accepted(tmp_path):
    first, second = (Image.fromarray(np.full((30, 40, 3), value, np.uint8)) for value in (10, 200))
    path = tmp_path / "upload"
    first.save(path, format="MPO", save_all=True, append_images=[second])
    photo = read_photo(str(path), "camera.jpg", HDOptions(strategy="original"), 10_000)
    assert photo.shape == (30, 40, 3) and abs(int(photo.mean()) - 10) <= 2  # the first image


def test_a_mask_must_declare_the_photo_size_and_one_frame():
    mask = np.zeros((30, 40), np.uint8)
    mask[5:10, 5:10] = 255
    decoded = read_holes(_png(mask), 30, 40)
    assert decoded.shape == (30, 40) and decoded.dtype == bool and decoded.sum() == 25
    with pytest.raises(Refusal, match="the mask is 40x30 but the photo is 40x31"):
        read_holes(_png(mask), 31, 40)
    frames = [Image.fromarray(np.full((30, 40), 255 * (i % 2), np.uint8)) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(Refusal, match="mask: an animation of 3 frames") as caught:
        read_holes(gif.getvalue(), 30, 40)
    assert caught.value.status == 413


def test_other_formats_are_refused_from_the_header(tmp_path):
    path = tmp_path / "upload"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="ICO")
    with pytest.raises(Refusal, match="^icon.ico: ICO files are not accepted; use PNG, JPEG") as caught:
        read_photo(str(path), "icon.ico", HDOptions(), 10_000)
    assert caught.value.status == 415
    tiff = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tiff, format="TIFF")
    with pytest.raises(Refusal, match="^mask: TIFF files are not accepted"):
        read_holes(tiff.getvalue(), 8, 8)


def test_a_small_photo_is_its_own_preview(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "upload"
    path.write_bytes(_png(photo))
    preview, height, width = preview_photo(str(path), "cat.png", HDOptions(strategy="original"), 10_000, side=40)
    assert (height, width) == (30, 40)
    np.testing.assert_array_equal(preview, photo)


def test_a_large_photo_is_previewed_small_and_upright(tmp_path):
    ramp = np.linspace(0, 255, 300, dtype=np.float32)
    photo = np.stack([np.tile(ramp, (200, 1))] * 3, -1).astype(np.uint8)  # dark on the left, light on the right
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: the upright photo is 200 wide and 300 high
    path = tmp_path / "upload"
    Image.fromarray(photo).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    preview, height, width = preview_photo(str(path), "cat.jpg", HDOptions(strategy="crop"), 100_000, side=60)
    assert (height, width) == (300, 200) and preview.shape == (60, 40, 3) and preview.dtype == np.uint8
    assert preview[:5].mean() < 60 and preview[-5:].mean() > 190  # the left edge is now at the top
    assert read_photo(str(path), "cat.jpg", HDOptions(strategy="crop"), 100_000).shape == (300, 200, 3)


def test_a_large_16_bit_photo_is_previewed_like_the_model_reads_it(tmp_path):
    gray = np.full((100, 120), 32768, np.uint16)  # mid-grey, not white
    path = tmp_path / "upload"
    Image.fromarray(gray).save(path, format="PNG")
    preview, height, width = preview_photo(str(path), "scan.png", HDOptions(strategy="crop"), 100_000, side=30)
    assert (height, width) == (100, 120) and preview.shape == (25, 30, 3)
    assert np.abs(preview.astype(int) - 128).max() <= 1


def test_a_truncated_large_photo_is_refused_in_one_line(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    path = tmp_path / "upload"
    path.write_bytes(_png(photo)[:5000])
    with pytest.raises(Refusal, match="^cut.png: not a readable image file") as caught:
        preview_photo(str(path), "cut.png", HDOptions(strategy="crop"), 100_000, side=30)
    assert caught.value.status == 400 and str(tmp_path) not in str(caught.value)
    assert os.listdir(tmp_path) == ["upload"]  # no preview file left behind


@pytest.mark.parametrize("mode, image_format", [("P", "PNG"), ("P", "GIF"), ("1", "BMP"), ("LA", "PNG"), ("RGBA", "WEBP"),
                                                ("CMYK", "JPEG"), ("I", "TIFF"), ("YCbCr", "TIFF")])
def test_large_photos_of_every_mode_are_previewed_like_the_model_reads_them(tmp_path, mode, image_format):
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / "upload"
    photo.save(path, format=image_format)
    preview, height, width = preview_photo(str(path), "photo", HDOptions(strategy="crop"), 10**6, side=64)
    assert (height, width) == (150, 200) and preview.shape == (48, 64, 3) and preview.dtype == np.uint8
    full = read_photo(str(path), "photo", HDOptions(strategy="crop"), 10**6)
    assert abs(float(full.mean()) - float(preview.mean())) < 4  # the same picture, smaller


def test_a_large_photo_is_previewed_without_writing_a_file(tmp_path, monkeypatch):
    photo = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    path = tmp_path / "upload"
    path.write_bytes(_png(photo))

    def no_file(self, *args, **kwargs):
        raise AssertionError("the preview wrote a file")

    monkeypatch.setattr(Image.Image, "save", no_file)
    preview, height, width = preview_photo(str(path), "photo", HDOptions(strategy="crop"), 10**6, side=64)
    assert (height, width) == (150, 200) and preview.shape == (48, 64, 3)
    assert os.listdir(tmp_path) == ["upload"]


@pytest.mark.parametrize("image_format, side, pillow_opens", [("PNG", 64, 1), ("PNG", 400, 1), ("JPEG", 64, 2),
                                                               ("JPEG", 400, 2)])
def test_an_upload_is_opened_once_for_its_header_and_its_pixels_read_once(tmp_path, monkeypatch, image_format, side,
                                                                          pillow_opens):
    """Pillow opens the file once for its header (size, EXIF orientation), and a JPEG once more to decode it;
    an upright PNG's pixels come by strips (`png_strips`, given in memory to Pillow), its header not read again."""
    from dmfn_tf.inpaint import png_strips

    photo = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    path = tmp_path / "upload"
    Image.fromarray(photo).save(path, format=image_format)
    opened, open_image = [], Image.open
    monkeypatch.setattr(Image, "open", lambda source, *args, **kwargs: (
        opened.append(source) if not hasattr(source, "read") else None) or open_image(source, *args, **kwargs))
    strips, png_strips_of = [], png_strips.png_strips
    monkeypatch.setattr(png_strips, "png_strips", lambda *args: strips.append(1) or png_strips_of(*args))
    preview_photo(str(path), "photo", HDOptions(strategy="crop"), 10**6, side=side)  # previewed small, or whole
    assert len(opened) == pillow_opens
    assert len(strips) == (image_format == "PNG")  # the pixels read once



def test_a_large_floating_point_photo_is_refused_in_one_line(tmp_path):
    path = tmp_path / "upload"
    Image.fromarray(np.zeros((150, 200), np.float32)).save(path, format="TIFF")
    with pytest.raises(Refusal, match="^depth.tif: floating-point image files are not supported"):
        preview_photo(str(path), "depth.tif", HDOptions(strategy="crop"), 10**6, side=64)


@pytest.fixture
def png_loads(monkeypatch):
    """The sizes of the PNG images Pillow decodes (whole-image loads and the strips of `png_strips`)."""
    from PIL import PngImagePlugin

    sizes, load = [], PngImagePlugin.PngImageFile.load

    def counted(self):
        if self.tile:
            sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counted)
    return sizes


@pytest.mark.parametrize("mode", ["L", "RGB", "LA", "RGBA"])
def test_a_large_png_is_previewed_strip_by_strip_as_reducing_it_whole_would(tmp_path, png_loads, mode):
    from dmfn_tf.app.decoding import PREVIEW_STRIP_ROWS

    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (530, 700, 3), dtype=np.uint8)).convert(mode)
    photo.save(tmp_path / "upload", format="PNG")
    preview, height, width = preview_photo(str(tmp_path / "upload"), "p.png", HDOptions(strategy="crop"), 10**6, side=64)
    assert (height, width) == (530, 700)
    assert max(size[1] for size in png_loads) <= PREVIEW_STRIP_ROWS + 11  # never the whole photo
    small = photo.reduce(700 // 64).resize((64, 48), Image.Resampling.BICUBIC)  # what reducing it whole gives
    expected = np.asarray(small.convert("RGBA"))[..., :3] if "A" in mode else np.asarray(small.convert("RGB"))
    np.testing.assert_array_equal(preview, expected)


def test_the_header_of_a_png_is_read_without_decoding_it(tmp_path, png_loads):
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "upload", format="PNG")
    preview_photo(str(tmp_path / "upload"), "p.png", HDOptions(strategy="crop"), 10**6, side=64)
    assert all(size[1] < 300 for size in png_loads)
