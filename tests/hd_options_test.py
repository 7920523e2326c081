"""Tests for the high-resolution options of `dmfn inpaint` (dmfn_tf/cli/hd_options.py)."""

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.cli import main

HEIGHT, WIDTH = 60, 1100  # longer side over the default --crop-trigger (1024): auto is crop


def _files(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[20:40, 100:130] = 255
    mask[10:50, 900:1000] = 255
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return image, mask > 0


def _run(model, tmp_path, *extra):
    return main(["inpaint", "--model", model, "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize("extra", [[], ["--hd-strategy", "crop", "--trained-size", "64"], ["--hd-strategy", "resize", "--resize-limit", "550"]])
def test_large_image_over_the_budget_inpaints_with_crop_and_resize(tiny_generator_file, tmp_path, extra):
    image, hole = _files(tmp_path)
    # The photo (66,000 pixels) is over the budget; the model's inputs are not.
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "65000", *extra) == 0
    result = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(result[hole] != image[hole]) > 0.5


def test_original_still_refuses_the_image_over_the_budget(tiny_generator_file, tmp_path, capsys):
    _files(tmp_path)
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "65000", "--hd-strategy", "original") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "photo.png: 1100x60 = 66,000 pixels exceeds the budget of 65,000 pixels" in err
    assert not (tmp_path / "out").exists()


def test_crop_input_over_the_budget_names_the_models_input(tiny_generator_file, tmp_path, capsys):
    _files(tmp_path)
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "1000", "--trained-size", "64") == 2
    assert "photo.png (crop strategy, the model's input): 64x60 = 3,840 pixels exceeds the budget of 1,000" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [("--trained-size", "0", "trained-size must be positive"),
                                                    ("--crop-margin", "-1", "crop-margin must be 0 or more")])
def test_bad_values_are_one_line_errors(tiny_generator_file, tmp_path, capsys, option, value, message):
    _files(tmp_path)
    assert _run(tiny_generator_file, tmp_path, option, value) == 2
    assert message in capsys.readouterr().err


def test_trained_size_defaults_to_the_shipped_models_and_to_256_for_others(shipped_model, tiny_generator_file, tmp_path,
                                                                            capsys):
    _files(tmp_path)
    # The crop window's width is the trained size (the photo is 60 pixels high): the budget error shows it.
    assert main(["inpaint", "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out"), "--max-pixels", "1000"]) == 2
    assert "(crop strategy, the model's input): 128x60 = 7,680 pixels" in capsys.readouterr().err
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "1000") == 2
    assert "(crop strategy, the model's input): 256x60 = 15,360 pixels" in capsys.readouterr().err
