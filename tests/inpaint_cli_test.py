"""Tests for `dmfn inpaint`: sizes and kinds of inputs, mask forms, pairing and errors."""

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.cli import main
from dmfn_tf.models.generator import build_generator

HEIGHT, WIDTH = 257, 301


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "generator.keras"
    build_generator(nf=4, n_blocks=1).save(path)
    return str(path)


def _image(seed=0, height=HEIGHT, width=WIDTH, channels=3):
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _box_mask(height=HEIGHT, width=WIDTH, value=255):
    mask = np.zeros((height, width), np.uint8)
    mask[60:140, 80:220] = value
    return mask


def _save(array, path, mode=None):
    Image.fromarray(array, mode).save(path)
    return str(path)


def _inpaint(model_path, image, mask, out, *extra):
    args = ["inpaint", "--model", model_path, "--image", str(image), "--out", str(out)]
    if mask is not None:
        args += ["--mask", str(mask)]
    return main(args + list(extra))


def _read(path):
    return np.asarray(Image.open(path))


def test_odd_size_rgb_with_0_255_mask(model_path, tmp_path):
    image = _image()
    code = _inpaint(model_path, _save(image, tmp_path / "photo.png"), _save(_box_mask(), tmp_path / "m.png"), tmp_path / "out")
    assert code == 0
    result = _read(tmp_path / "out" / "photo.png")
    assert result.shape == (HEIGHT, WIDTH, 3)
    known = _box_mask() == 0
    np.testing.assert_array_equal(result[known], image[known])


def test_rgba_image_drops_alpha_and_grayscale_becomes_rgb(model_path, tmp_path):
    rgba, gray = _image(1, channels=4), _image(2, channels=1)
    mask = _save(_box_mask(), tmp_path / "m.png")
    assert _inpaint(model_path, _save(rgba, tmp_path / "rgba.png", "RGBA"), mask, tmp_path / "out") == 0
    assert _inpaint(model_path, _save(gray, tmp_path / "gray.png", "L"), mask, tmp_path / "out") == 0
    known = _box_mask() == 0
    np.testing.assert_array_equal(_read(tmp_path / "out" / "rgba.png")[known], rgba[..., :3][known])
    np.testing.assert_array_equal(_read(tmp_path / "out" / "gray.png")[known], np.stack([gray] * 3, -1)[known])


def test_anti_aliased_mask_splits_at_half_intensity(model_path, tmp_path):
    ramp = np.tile(np.linspace(0, 255, WIDTH).round().astype(np.uint8), (HEIGHT, 1))  # a soft edge everywhere
    image = _image(3)
    assert _inpaint(model_path, _save(image, tmp_path / "a.png"), _save(ramp, tmp_path / "ramp.png"), tmp_path / "out") == 0
    result = _read(tmp_path / "out" / "a.png")
    known = ramp <= 127  # 127 / 255 < 0.5 < 128 / 255
    np.testing.assert_array_equal(result[known], image[known])
    assert not np.array_equal(result[~known], image[~known])


def test_inverted_mask_treats_black_as_hole(model_path, tmp_path):
    image = _image(4)
    mat_mask = 255 - _box_mask()  # MAT style: 0 = hole
    code = _inpaint(
        model_path, _save(image, tmp_path / "a.png"), _save(mat_mask, tmp_path / "m.png"), tmp_path / "out", "--invert-mask"
    )
    assert code == 0
    known = mat_mask == 255
    np.testing.assert_array_equal(_read(tmp_path / "out" / "a.png")[known], image[known])


def test_holes_from_image_transparency(model_path, tmp_path):
    rgba = _image(5, channels=4)
    rgba[..., 3] = 255 - _box_mask()  # transparent box = missing pixels
    assert _inpaint(model_path, _save(rgba, tmp_path / "cut.png", "RGBA"), None, tmp_path / "out", "--mask-from-alpha") == 0
    known = rgba[..., 3] == 255
    np.testing.assert_array_equal(_read(tmp_path / "out" / "cut.png")[known], rgba[..., :3][known])


def test_folders_pair_by_stem(model_path, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    images = {"b": _image(6, 64, 96), "a": _image(7, 40, 52)}
    _save(images["a"], tmp_path / "images" / "a.png")
    _save(images["b"], tmp_path / "images" / "b.bmp")
    _save(_box_mask(40, 52), tmp_path / "masks" / "a.png")
    _save(_box_mask(64, 96), tmp_path / "masks" / "b.png")
    assert _inpaint(model_path, tmp_path / "images", tmp_path / "masks", tmp_path / "out") == 0
    for stem, image in images.items():
        result = _read(tmp_path / "out" / f"{stem}.png")
        known = _box_mask(*image.shape[:2]) == 0
        assert result.shape == image.shape
        np.testing.assert_array_equal(result[known], image[known])


def test_all_zero_mask_gives_input_and_all_one_mask_runs(model_path, tmp_path):
    image = _image(8, 33, 47)
    image_path = _save(image, tmp_path / "a.png")
    zeros = _save(np.zeros((33, 47), np.uint8), tmp_path / "zeros.png")
    ones = _save(np.full((33, 47), 255, np.uint8), tmp_path / "ones.png")
    assert _inpaint(model_path, image_path, zeros, tmp_path / "out0") == 0
    np.testing.assert_array_equal(_read(tmp_path / "out0" / "a.png"), image)
    assert _inpaint(model_path, image_path, ones, tmp_path / "out1") == 0
    assert _read(tmp_path / "out1" / "a.png").shape == (33, 47, 3)


def _assert_one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dmfn inpaint: error:"), err
    for fragment in fragments:
        assert fragment in err, err


def test_corrupt_image_is_a_one_line_error(model_path, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    mask = _save(_box_mask(), tmp_path / "m.png")
    assert _inpaint(model_path, tmp_path / "bad.png", mask, tmp_path / "out") == 2
    _assert_one_line_error(capsys, "bad.png")


def test_mis_sized_mask_in_a_folder_stops_before_any_output(model_path, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _save(_image(9, 40, 40), tmp_path / "images" / "a.png")
    _save(_image(10, 40, 40), tmp_path / "images" / "z.png")
    _save(_box_mask(40, 40), tmp_path / "masks" / "a.png")
    _save(_box_mask(40, 44), tmp_path / "masks" / "z.png")
    assert _inpaint(model_path, tmp_path / "images", tmp_path / "masks", tmp_path / "out") == 2
    _assert_one_line_error(capsys, "z.png", "44x40", "40x40", str(tmp_path / "images" / "z.png"))
    assert not (tmp_path / "out").exists()


def test_missing_mask_in_a_folder_names_the_image(model_path, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _save(_image(11, 40, 40), tmp_path / "images" / "lonely.png")
    assert _inpaint(model_path, tmp_path / "images", tmp_path / "masks", tmp_path / "out") == 2
    _assert_one_line_error(capsys, "lonely.png", "no mask named lonely.*")


@pytest.mark.parametrize("which", ["model", "image", "mask"])
def test_non_existent_paths(model_path, tmp_path, capsys, which):
    paths = {"model": model_path, "image": _save(_image(12, 8, 8), tmp_path / "a.png"),
             "mask": _save(_box_mask(8, 8), tmp_path / "m.png")}
    paths[which] = str(tmp_path / "does_not_exist.png")
    assert _inpaint(paths["model"], paths["image"], paths["mask"], tmp_path / "out") == 2
    _assert_one_line_error(capsys, "does_not_exist.png")


def test_output_may_not_overwrite_an_input(model_path, tmp_path, capsys):
    image = _save(_image(13, 8, 8), tmp_path / "a.png")
    assert _inpaint(model_path, image, _save(_box_mask(8, 8), tmp_path / "m.png"), tmp_path) == 2
    _assert_one_line_error(capsys, "overwrite an input")


def test_pixel_budget_from_the_command_line(model_path, tmp_path, capsys):
    image = _save(_image(14, 40, 50), tmp_path / "a.png")
    code = _inpaint(model_path, image, _save(_box_mask(40, 50), tmp_path / "m.png"), tmp_path / "out", "--max-pixels", "1999")
    assert code == 2
    _assert_one_line_error(capsys, "a.png", "exceeds the budget of 1,999 pixels")


def _encoded(array, fmt: str) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_in_a_folder_stops_before_the_model_loads_and_any_output(tmp_path, capsys, fmt):
    (tmp_path / "images").mkdir()
    _save(_image(20, 40, 40), tmp_path / "images" / "a.png")  # a good one first
    data = _encoded(_image(21, 40, 40), fmt)
    (tmp_path / "images" / f"z.{fmt.lower()}").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    mask = _save(_box_mask(40, 40), tmp_path / "m.png")
    # A model path that cannot load: the run must stop at the check, before loading anything.
    assert _inpaint(str(tmp_path / "never_loaded.keras"), tmp_path / "images", mask, tmp_path / "out") == 2
    _assert_one_line_error(capsys, f"z.{fmt.lower()}")
    assert not (tmp_path / "out").exists()


def test_mask_the_mask_decoder_cannot_read_stops_before_the_model_loads(tmp_path, capsys):
    image = _save(_image(22, 40, 40), tmp_path / "a.png")
    mask = _save(_box_mask(40, 40), tmp_path / "m.tif")  # Pillow reads its header; TensorFlow cannot decode it
    assert _inpaint(str(tmp_path / "never_loaded.keras"), image, mask, tmp_path / "out") == 2
    _assert_one_line_error(capsys, "m.tif")
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_hard_link_of_an_input_is_refused(model_path, tmp_path, capsys):
    import os

    image = _save(_image(23, 8, 8), tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    os.link(image, tmp_path / "out" / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    assert _inpaint(model_path, image, _save(_box_mask(8, 8), tmp_path / "m.png"), tmp_path / "out") == 2
    _assert_one_line_error(capsys, "overwrite an input", "the same file")
    assert (tmp_path / "a.png").read_bytes() == before


@pytest.mark.parametrize("where", ["an existing file", "a path under a regular file"])
def test_unusable_output_folder_is_a_one_line_error(model_path, tmp_path, capsys, where):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" if where == "an existing file" else tmp_path / "file" / "sub"
    image = _save(_image(24, 8, 8), tmp_path / "a.png")
    assert _inpaint(model_path, image, _save(_box_mask(8, 8), tmp_path / "m.png"), out) == 2
    _assert_one_line_error(capsys, str(out))
    assert (tmp_path / "file").read_text() == "not a folder"


def test_failed_write_leaves_the_existing_output_intact(model_path, tmp_path):
    import os
    import resource
    import signal
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    image = _save(_image(25, 64, 64), tmp_path / "a.png")
    mask = _save(_box_mask(64, 64), tmp_path / "m.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"previous result")
    stale = tmp_path / "out" / ".a.png.tmp-999999999-abcdefgh.png"  # left by a killed run (no such process)
    stale.write_bytes(b"half")

    def limit_file_size():
        # The output PNG (12 KB of noise) cannot be written under 4 KB: like a disk filling up.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    completed = subprocess.run(
        [sys.executable, "-m", "dmfn_tf", "inpaint", "--model", model_path, "--image", image, "--mask", mask,
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, preexec_fn=limit_file_size, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL="3"),
    )
    err = completed.stderr.strip().splitlines()
    assert completed.returncode == 2, completed.stderr
    assert err[-1].startswith("dmfn inpaint: error:") and "a.png: cannot write the output" in err[-1], err
    assert "Traceback" not in completed.stderr
    assert (tmp_path / "out" / "a.png").read_bytes() == b"previous result"
    assert os.listdir(tmp_path / "out") == ["a.png"]  # neither the failed nor the stale temporary file remains


def test_photos_larger_than_other_inputs_pass_the_header_check_up_to_the_photo_limit(tmp_path, png_declaring):
    from dmfn_tf.cli.inpaint import InpaintJob, check_headers
    from dmfn_tf.input_limits import MAX_IMAGE_PIXELS, MAX_PHOTO_PIXELS, InputTooLarge

    side = 12000  # docs/large_photos.md inpaints 12000² photos
    assert side * side > MAX_IMAGE_PIXELS
    for name in ("photo.png", "mask.png"):
        (tmp_path / name).write_bytes(png_declaring(side, side))
    job = InpaintJob(str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), str(tmp_path / "out.png"))
    assert [header.upright for header in check_headers([job])] == [(side, side)]
    (tmp_path / "photo.png").write_bytes(png_declaring(MAX_PHOTO_PIXELS // side + 1, side))
    with pytest.raises(InputTooLarge, match="photo.png: .* above the limit of"):
        check_headers([job])


def test_animated_mask_is_refused_before_decoding(tmp_path, capsys):
    image = _save(_image(26, 40, 40), tmp_path / "a.png")
    frames = [Image.fromarray(_box_mask(40, 40)), Image.fromarray(255 - _box_mask(40, 40))]
    frames[0].save(tmp_path / "m.gif", save_all=True, append_images=frames[1:])
    assert _inpaint(str(tmp_path / "never_loaded.keras"), image, tmp_path / "m.gif", tmp_path / "out") == 2
    _assert_one_line_error(capsys, "m.gif", "2 frames")


def test_model_omitted_uses_the_shipped_model_and_says_so(shipped_model, tmp_path, capsys):
    image, mask = _save(_image(), tmp_path / "photo.png"), _save(_box_mask(), tmp_path / "hole.png")
    assert main(["inpaint", "--image", image, "--mask", mask, "--out", str(tmp_path / "default")]) == 0
    assert f"using the shipped model {shipped_model}" in capsys.readouterr().err
    assert _inpaint(shipped_model, image, mask, tmp_path / "named") == 0
    np.testing.assert_array_equal(_read(tmp_path / "default" / "photo.png"), _read(tmp_path / "named" / "photo.png"))


def test_model_omitted_without_a_shipped_model_is_a_one_line_error(no_shipped_model, tmp_path, capsys):
    image, mask = _save(_image(), tmp_path / "photo.png"), _save(_box_mask(), tmp_path / "hole.png")
    assert main(["inpaint", "--image", image, "--mask", mask, "--out", str(tmp_path / "out")]) == 2
    _assert_one_line_error(capsys, "no shipped model at", "--model")


# ---- One way from a photo to its fill (issue 18) ----------------------------------------------------

def _counting(monkeypatch, module, name, counts, key):
    original = getattr(module, name)

    def counted(*args, **kwargs):
        counts[key] = counts.get(key, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def _counting_pillow_file_opens(monkeypatch, counts, key):
    """Counts `Image.open` of a file by its path (not the in-memory strips `png_strips` hands Pillow)."""
    original = Image.open

    def counted(source, *args, **kwargs):
        if not hasattr(source, "read"):
            counts[key] = counts.get(key, 0) + 1
        return original(source, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counted)


@pytest.mark.parametrize("extra", [[], ["--hd-strategy", "crop", "--trained-size", "32"]])
def test_a_request_is_read_twice_binarised_and_budget_checked_once(model_path, tmp_path, monkeypatch, extra):
    """Each file's header is read once (`image_header`, the one EXIF orientation reader); the photo is read
    strip by strip once for its windows and once to write the result, never decoded whole or held whole."""
    from dmfn_tf.cli import inpaint as cli
    from dmfn_tf import input_limits
    from dmfn_tf.inpaint import budget, contract, files, planner, png_strips

    counts = {}
    _counting(monkeypatch, cli, "image_header", counts, "header read")
    _counting(monkeypatch, input_limits, "exif_orientation", counts, "EXIF orientation read")
    _counting(monkeypatch, files, "exif_orientation", counts, "EXIF orientation read")
    _counting_pillow_file_opens(monkeypatch, counts, "Pillow opened a file")
    _counting(monkeypatch, png_strips, "read_layout", counts, "PNG chunks located")
    _counting(monkeypatch, files, "rgb_strips", counts, "photo read by strips")
    _counting(monkeypatch, files, "decode_photo", counts, "photo decoded whole")
    _counting(monkeypatch, files, "holes_from_strips", counts, "mask binarised")
    _counting(monkeypatch, contract, "binarise_mask", counts, "mask binarised")
    _counting(monkeypatch, planner, "check_pixel_budget", counts, "budget checked")
    _counting(monkeypatch, budget, "check_pixel_budget", counts, "budget checked")
    _counting(monkeypatch, contract, "generate", counts, "model runs")
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[10:20, 10:20] = mask[200:210, 250:260] = 255  # two holes: two windows with crop
    code = _inpaint(model_path, _save(_image(30), tmp_path / "photo.png"), _save(mask, tmp_path / "m.png"),
                    tmp_path / "out", *extra)
    assert code == 0
    # Pillow opens each file by its path once, for its header (photo, mask); the pixels come by strips,
    # the photo's orientation from its header. The strip reader locates a PNG's chunks for each pass:
    # the photo's two reads and the mask's one.
    assert counts == {"header read": 2, "EXIF orientation read": 2, "Pillow opened a file": 2, "PNG chunks located": 3,
                      "photo read by strips": 2, "mask binarised": 1, "budget checked": 1, "model runs": 1}


def test_a_folder_keeps_what_it_read_for_the_run(model_path, tmp_path, monkeypatch):
    from dmfn_tf.inpaint import files

    (tmp_path / "images").mkdir()
    for name in ("a", "b", "c"):
        _save(_image(31, 40, 40), tmp_path / "images" / f"{name}.png")
    counts = {}
    _counting(monkeypatch, files, "rgb_strips", counts, "photo read")
    _counting(monkeypatch, files, "holes_from_strips", counts, "mask binarised")
    assert _inpaint(model_path, tmp_path / "images", _save(_box_mask(40, 40), tmp_path / "m.png"), tmp_path / "out") == 0
    assert counts == {"photo read": 6, "mask binarised": 3}  # each photo: its windows, then its output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]


def test_running_out_of_memory_names_what_helps(model_path, tmp_path, monkeypatch, capsys):
    from dmfn_tf.inpaint import streamed

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(streamed, "fill_windows", exhausted)
    image = _save(_image(40, 40, 40), tmp_path / "a.png")
    assert _inpaint(model_path, image, _save(_box_mask(40, 40), tmp_path / "m.png"), tmp_path / "out",
                    "--hd-strategy", "crop", "--trained-size", "32") == 2
    _assert_one_line_error(capsys, "a.png: ran out of memory (crop strategy)", "--trained-size")
