"""dmfn_tf.inpaint.streamed: a photo file filled window by window gives the runner's in-place result, pixel for pixel."""

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.inpaint import files
from dmfn_tf.inpaint.planner import check_size, plan
from dmfn_tf.inpaint.request import InpaintRequest
from dmfn_tf.inpaint.runner import run_plan
from dmfn_tf.inpaint.strategies import HDOptions
from dmfn_tf.inpaint.streamed import fill_windows, filled_strips, gather
from dmfn_tf.models.generator import build_generator


@pytest.fixture(scope="module")
def generator():
    return build_generator(nf=4, n_blocks=1)


def _holes(height, width):
    hole = np.zeros((height, width), bool)
    hole[40:150, 60:200] = True  # a large hole: its window is scaled down
    rng = np.random.default_rng(5)
    hole[rng.integers(height // 2, height - 10, 25), rng.integers(0, width, 25)] = True  # specks: packs, overlapping
    hole[height - 3:, width - 5:] = True  # at the corner
    return hole


@pytest.mark.parametrize("strategy, image_format", [("crop", "PNG"), ("crop", "JPEG"), ("resize", "PNG"),
                                                    ("original", "PNG")])
def test_streamed_result_is_the_in_place_result(generator, tmp_path, strategy, image_format):
    height, width = 3 * files.STRIP_ROWS + 21, 330
    rng = np.random.default_rng(0)
    smooth = np.add.outer(np.arange(height), np.arange(width)) % 256
    photo = np.stack([smooth, smooth[::-1], rng.integers(0, 256, (height, width))], -1).astype(np.uint8)
    path = str(tmp_path / f"photo.{image_format.lower()}")
    Image.fromarray(photo).save(path, format=image_format)
    hole = _holes(height, width)
    options = HDOptions(strategy=strategy, trained_size=32, crop_margin=8, resize_limit=128)
    planned = plan(check_size(height, width, options, 10**6), hole)
    assert strategy != "crop" or len(planned.windows) > 5
    expected = run_plan(generator, InpaintRequest(files.decode_photo(path)[0], hole), planned, 10**6)

    gathered = gather(path, hole, planned)
    order = fill_windows(generator, gathered, 10**6)
    result = np.concatenate(list(filled_strips(gathered, order)))
    np.testing.assert_array_equal(result, expected)


def test_overlapping_windows_see_what_earlier_batches_filled(generator, tmp_path):
    """Two packs of specks whose windows overlap, in two batches: the later one's input holds the earlier fill."""
    from dmfn_tf.inpaint.windows import Window
    from dmfn_tf.inpaint.planner import Plan

    photo = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    hole = np.zeros((64, 96), bool)
    hole[20:30, 30:50] = True
    windows = [Window(0, 0, 64, 64, 32, 32), Window(0, 16, 64, 96, 64, 80)]  # two sizes: two batches
    planned = Plan("crop", windows)
    expected = run_plan(generator, InpaintRequest(photo.copy(), hole), planned, 10**6)
    gathered = gather(str(tmp_path / "p.png"), hole, planned)
    result = np.concatenate(list(filled_strips(gathered, fill_windows(generator, gathered, 10**6))))
    np.testing.assert_array_equal(result, expected)
    assert not np.array_equal(result[hole], photo[hole])


def test_the_png_written_from_strips_is_the_png_of_the_array(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (2 * files.STRIP_ROWS + 9, 70, 3), dtype=np.uint8)
    files.write_png(tmp_path / "whole.png", rgb)
    cuts = [0, 1, 40, 41, 300, 301, 302, len(rgb)]  # strips of any heights: the same bytes
    strips = (rgb[top:bottom] for top, bottom in zip(cuts[:-1], cuts[1:]))
    files.write_png_strips(tmp_path / "strips.png", strips, *rgb.shape[:2])
    assert (tmp_path / "whole.png").read_bytes() == (tmp_path / "strips.png").read_bytes()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "strips.png")), rgb)
