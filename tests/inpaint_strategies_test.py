"""Tests for the strategies of dmfn_tf.inpaint (strategies, windows, planner, runner): crop windows, the three
strategies, bit-exact known pixels, budgets, batches, and a toy strategy registered and run end to end."""

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.inpaint.budget import PixelBudgetError
from dmfn_tf.inpaint.planner import check_size, plan
from dmfn_tf.inpaint.runner import batches, inpaint, inpaint_hd
from dmfn_tf.inpaint.strategies import HDOptionError, HDOptions
from dmfn_tf.inpaint.windows import Window, crop_windows as crop_windows_of
from dmfn_tf.models.generator import build_generator


def crop_windows(hole, options, pack_specks=True):
    return crop_windows_of(hole, options.trained_size, options.crop_margin, pack_specks=pack_specks)


def check_budget(height, width, options, max_pixels, source="image"):
    return check_size(height, width, options, max_pixels, source=source)


class _Recording:
    """Wraps a generator and records the shape of every input it is given."""

    def __init__(self, generator):
        self.generator, self.shapes = generator, []

    def __call__(self, inputs, training=False):
        self.shapes.append(tuple(np.shape(inputs)))
        return self.generator(inputs, training=training)


@pytest.fixture(scope="module")
def generator():
    return build_generator(nf=4, n_blocks=1)


def _photo(height, width):
    """A smooth photo-like image (gradients + a few discs), so that resizing changes it measurably."""
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([rows * 255 // max(height - 1, 1), cols * 255 // max(width - 1, 1), (rows + cols) % 256], -1)
    return image.astype(np.uint8)


def _three_holes(height, width):
    hole = np.zeros((height, width), bool)
    hole[20:28, 30:41] = True  # small
    hole[150:210, 250:330] = True  # medium, far from the small one
    hole[60:64, 300:302] = True  # tiny, near the medium one's window
    return hole


def test_auto_rule_is_original_up_to_the_trigger_then_crop():
    options = HDOptions(crop_trigger=1024)
    assert options.resolve(1024, 768) == "original"
    assert options.resolve(700, 1025) == "crop"
    assert HDOptions(strategy="resize").resolve(10, 10) == "resize"


@pytest.mark.parametrize("field, value", [("strategy", "tiles"), ("trained_size", 0), ("crop_margin", -1), ("resize_limit", 0)])
def test_bad_options_are_user_errors(field, value):
    with pytest.raises(HDOptionError, match=field.replace("_", "-") if field != "strategy" else "tiles"):
        HDOptions(**{field: value})


def test_crop_window_of_a_small_hole_hand_computed():
    # Hole rows 100..150, cols 200..260; margin max(64, 30) = 64 -> rows 36..214, cols 136..324,
    # grown to 256: rows 36-39..214+39 = -3..253, shifted into the photo -> 0..256; cols 102..358.
    hole = np.zeros((3000, 4000), bool)
    hole[100:150, 200:260] = True
    assert crop_windows(hole, HDOptions(trained_size=256, crop_margin=64)) == [Window(0, 102, 256, 358, 256, 256)]


def test_crop_window_of_a_large_hole_is_scaled_to_the_trained_size():
    # Hole 600 x 1000 at (1000, 1000): margin 500 -> rows 500..2100 (1600), cols 500..2500 (2000);
    # scaled so that the longer side is 256: 1600 * 0.128 = 204.8 -> 205.
    hole = np.zeros((3000, 4000), bool)
    hole[1000:1600, 1000:2000] = True
    assert crop_windows(hole, HDOptions(trained_size=256, crop_margin=64)) == [Window(500, 500, 2100, 2500, 205, 256)]


def _assert_disjoint_and_covering(windows, hole, trained_size):
    covered = np.zeros(hole.shape, int)
    for top, left, bottom, right, model_height, model_width in windows:
        covered[top:bottom, left:right] += 1
        assert max(model_height, model_width) == min(trained_size, max(bottom - top, right - left))
    assert covered.max() == 1, "windows overlap"
    assert covered[hole].min() == 1, "a hole pixel is outside every window"


def test_crop_windows_merge_overlapping_regions_and_never_overlap():
    hole = _three_holes(240, 400)
    windows = crop_windows(hole, HDOptions(trained_size=64, crop_margin=8))
    _assert_disjoint_and_covering(windows, hole, 64)
    # Margins of 8: the three holes' windows are apart (the tiny hole's rows 52..72, grown to 64 =
    # 30..94, end before the medium hole's 110..250).
    assert len(windows) == 3
    # Margins of 60: the tiny hole's window (rows 0..124) reaches the medium one's (60..240): merged.
    merged = crop_windows(hole, HDOptions(trained_size=64, crop_margin=60))
    _assert_disjoint_and_covering(merged, hole, 64)
    assert len(merged) == 2


@pytest.mark.parametrize("strategy", ["original", "crop", "resize"])
def test_known_pixels_are_bit_exact_and_holes_are_filled(generator, strategy):
    image = _photo(240, 400)
    hole = _three_holes(240, 400)
    result = inpaint_hd(generator, image, hole[..., None].astype(np.float32),
                        HDOptions(strategy=strategy, trained_size=64, crop_margin=8, resize_limit=160))
    assert result.dtype == np.uint8 and result.shape == image.shape
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(result[hole] != image[hole]) > 0.5


def _dilate(mask, iterations):
    """Binary dilation with a 3x3 square, by shifted maxima (independent of scipy)."""
    for _ in range(iterations):
        padded = np.pad(mask, 1)
        mask = np.max([padded[r : r + mask.shape[0], c : c + mask.shape[1]] for r in range(3) for c in range(3)], axis=0)
    return mask


def test_crop_matches_a_window_by_window_reference(generator):
    image = _photo(240, 400)
    hole = _three_holes(240, 400)
    options = HDOptions(strategy="crop", trained_size=64, crop_margin=8)
    # A budget of one window per model call, as the reference runs them: a batch of several may round
    # differently in the last bit (oneDNN), which `test_batches_group_windows_of_one_size_within_the_budget` covers.
    result = inpaint_hd(generator, image, hole, options, max_pixels=64 * 64)
    expected = image.copy()
    windows = crop_windows(hole, options)
    assert sorted((w.bottom - w.top, w.right - w.left) == (w.model_height, w.model_width) for w in windows) == [False, True, True]
    for top, left, bottom, right, model_height, model_width in windows:
        window, window_hole = image[top:bottom, left:right], hole[top:bottom, left:right]
        if (model_height, model_width) == window_hole.shape:  # not scaled: the window as it is
            expected[top:bottom, left:right][window_hole] = inpaint(generator, window, window_hole)[window_hole]
            continue
        small = np.asarray(Image.fromarray(window).resize((model_width, model_height), Image.BICUBIC))
        # A small pixel j is a hole when any photo pixel overlapping [j * n / m, (j + 1) * n / m) is.
        small_hole = np.zeros((model_height, model_width), bool)
        scale_r, scale_c = (bottom - top) / model_height, (right - left) / model_width
        for r in range(model_height):
            for c in range(model_width):
                rows = slice(int(np.floor(r * scale_r)), int(np.ceil((r + 1) * scale_r - 1e-9)))
                cols = slice(int(np.floor(c * scale_c)), int(np.ceil((c + 1) * scale_c - 1e-9)))
                small_hole[r, c] = window_hole[rows, cols].any()
        filled = inpaint(generator, small, _dilate(small_hole, 2))
        up = np.asarray(Image.fromarray(filled).resize((right - left, bottom - top), Image.BICUBIC))
        expected[top:bottom, left:right][window_hole] = up[window_hole]
    np.testing.assert_array_equal(result, expected)


def test_resize_matches_a_whole_image_reference(generator):
    image = _photo(240, 400)
    hole = _three_holes(240, 400)
    result = inpaint_hd(generator, image, hole, HDOptions(strategy="resize", resize_limit=200))
    small = np.asarray(Image.fromarray(image).resize((200, 120), Image.BICUBIC))
    small_hole = _dilate(hole.reshape(120, 2, 200, 2).any(axis=(1, 3)), 2)  # exact halving
    up = np.asarray(Image.fromarray(inpaint(generator, small, small_hole)).resize((400, 240), Image.BICUBIC))
    np.testing.assert_array_equal(result, np.where(hole[..., None], up, image))


def test_original_is_inpaint_itself(generator):
    image = _photo(60, 90)
    mask = np.zeros((60, 90, 1), np.float32)
    mask[10:30, 20:50] = 1
    np.testing.assert_array_equal(inpaint_hd(generator, image, mask, HDOptions(strategy="original")),
                                  inpaint(generator, image, mask))


def test_crop_model_inputs_stay_within_the_trained_size(generator):
    recording = _Recording(generator)
    image = _photo(240, 400)
    hole = _three_holes(240, 400)
    inpaint_hd(recording, image, hole, HDOptions(strategy="crop", trained_size=64, crop_margin=8))
    assert sum(shape[0] for shape in recording.shapes) == 3  # three windows, the two of one size in one batch
    assert len(recording.shapes) == 2
    assert all(shape[1] <= 64 and shape[2] <= 64 for shape in recording.shapes), recording.shapes


def test_empty_mask_returns_the_image_without_running_the_model():
    recording = _Recording(None)
    image = _photo(50, 70)
    for strategy in ("original", "crop", "resize"):
        result = inpaint_hd(recording, image, np.zeros((50, 70)), HDOptions(strategy=strategy))
        np.testing.assert_array_equal(result, image)
    assert recording.shapes == []
    assert plan(check_size(50, 70, HDOptions(strategy="crop"), 10_000), np.zeros((50, 70), bool)) == ("crop", [])


def test_original_still_refuses_images_over_the_budget_with_the_old_message(generator):
    image = _photo(300, 400)
    with pytest.raises(PixelBudgetError, match=r"^image: 400x300 = 120,000 pixels exceeds the budget of 100,000 pixels"):
        inpaint_hd(generator, image, _three_holes(300, 400), HDOptions(strategy="original"), max_pixels=100_000)
    with pytest.raises(PixelBudgetError, match=r"^photo.jpg: 400x300"):
        check_budget(300, 400, HDOptions(strategy="original"), 100_000, source="photo.jpg")


def test_budget_applies_to_the_model_input_of_crop_and_resize(generator):
    image = _photo(300, 400)
    hole = _three_holes(300, 400)
    # The photo is over the budget, the crop windows (<= 64 x 64) and the resized photo (75 x 100) are not.
    for options in (HDOptions(strategy="crop", trained_size=64), HDOptions(strategy="resize", resize_limit=100)):
        check_budget(300, 400, options, 10_000)
        result = inpaint_hd(generator, image, hole, options, max_pixels=10_000)
        np.testing.assert_array_equal(result[~hole], image[~hole])
    with pytest.raises(PixelBudgetError, match=r"^photo.jpg \(crop strategy, the model's input\): 64x64 = 4,096 pixels exceeds the budget of 4,000"):
        inpaint_hd(generator, image, hole, HDOptions(strategy="crop", trained_size=64), max_pixels=4_000, source="photo.jpg")
    with pytest.raises(PixelBudgetError, match=r"^image \(resize strategy, the model's input\): 200x150 = 30,000 pixels exceeds"):
        check_budget(300, 400, HDOptions(strategy="resize", resize_limit=200), 10_000)


def _pairwise_merged_windows(hole, options):
    """Reference: pixel-level regions, then merge any two whose windows overlap until none do."""
    from scipy import ndimage

    from dmfn_tf.inpaint.windows import _grown

    def _window(box, height, width, options):
        return _grown(box, height, width, options.trained_size, options.crop_margin)

    labels, _ = ndimage.label(hole, structure=np.ones((3, 3), bool))
    boxes = [(r.start, c.start, r.stop, c.stop) for r, c in ndimage.find_objects(labels)]
    merged = True
    while merged:
        merged = False
        windows = [_window(box, *hole.shape, options) for box in boxes]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = windows[i], windows[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = tuple(min(boxes[i][k], boxes[j][k]) if k < 2 else max(boxes[i][k], boxes[j][k]) for k in range(4))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(_window(box, *hole.shape, options) for box in boxes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crop_windows_of_specks_match_pairwise_merging(seed):
    rng = np.random.default_rng(seed)
    # Specks on a jittered 30-pixel grid, ten of them doubled 3-5 pixels below (merged): windows reach
    # 6 beyond a region, so specks 13 or more apart stay apart; between blocks of 4 margins they would not.
    rows, cols = np.mgrid[10:200:30, 10:300:30].reshape(2, -1) + rng.integers(-4, 5, (2, 70))
    hole = np.zeros((200, 300), bool)
    hole[rows, cols] = True
    pairs = rng.choice(70, 10, replace=False)
    hole[rows[pairs] + rng.integers(3, 6, 10), cols[pairs]] = True
    options = HDOptions(trained_size=8, crop_margin=6)
    windows = crop_windows(hole, options, pack_specks=False)
    assert [tuple(w[:4]) for w in windows] == _pairwise_merged_windows(hole, options)
    assert len(windows) > 20  # most specks stay apart: the grouping is put to the test
    _assert_disjoint_and_covering(windows, hole, 8)


@pytest.fixture
def toy_strategy():
    """A strategy registered for one test: the model runs on the photo's top half only (holes below stay)."""
    from dmfn_tf.inpaint.strategies import HDStrategy, register_strategy, unregister_strategy
    from dmfn_tf.inpaint.windows import Window

    def top_half(hole, options):
        height, width = hole.shape
        return [Window(0, 0, height // 2, width, height // 2, width)]

    register_strategy(HDStrategy("top-half", "the top half of the image at its own size", top_half,
                                 lambda height, width, options: (height // 2, width),
                                 over_budget="crop the photo's top half first", out_of_memory="use a smaller photo"))
    yield "top-half"
    unregister_strategy("top-half")


def test_a_registered_strategy_runs_end_to_end_through_the_cli(tiny_generator_file, tmp_path, toy_strategy, capsys):
    from dmfn_tf.cli import main

    image = _photo(40, 60)
    hole = np.zeros((40, 60), bool)
    hole[5:10, 5:15] = hole[30:35, 40:50] = True
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = ["inpaint", "--model", tiny_generator_file, "--image", str(tmp_path / "photo.png"),
            "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out"), "--hd-strategy", toy_strategy]
    assert main(args) == 0
    result = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(result[5:10, 5:15] != image[5:10, 5:15]) > 0.5  # the top hole is filled
    np.testing.assert_array_equal(result[30:35, 40:50], image[30:35, 40:50])  # the bottom one is not in its window
    # Its declared input (20 x 60 = 1,200 pixels) is what the budget checks; the refusal names the strategy.
    assert main(args + ["--max-pixels", "1000"]) == 2
    error = capsys.readouterr().err
    assert "(top-half strategy, the model's input): 60x20 = 1,200 pixels" in error
    assert "(crop the photo's top half first, or raise it with --max-pixels" in error  # what its registration says


def test_what_helps_a_strategy_that_ran_out_of_memory_is_its_own(tiny_generator_file, tmp_path, toy_strategy, capsys,
                                                                 monkeypatch):
    from dmfn_tf.cli import main
    from dmfn_tf.inpaint import streamed

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(streamed, "fill_windows", exhausted)  # `dmfn inpaint` runs its windows there
    Image.fromarray(_photo(40, 60)).save(tmp_path / "photo.png")
    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(tmp_path / "mask.png")
    assert main(["inpaint", "--model", tiny_generator_file, "--image", str(tmp_path / "photo.png"), "--mask",
                 str(tmp_path / "mask.png"), "--out", str(tmp_path / "out"), "--hd-strategy", toy_strategy]) == 2
    assert "photo.png: ran out of memory (top-half strategy); use a smaller photo" in capsys.readouterr().err


def test_the_hd_strategy_help_lists_the_registry(toy_strategy, capsys):
    from dmfn_tf.cli import main

    with pytest.raises(SystemExit):
        main(["inpaint", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "top-half: the top half of the image at its own size" in text
    assert "{auto,original,crop,resize,top-half}" in text


def test_batches_group_windows_of_one_size_within_the_budget():
    from dmfn_tf.inpaint.windows import Window

    windows = [Window(0, 0, 8, 8, 8, 8), Window(0, 10, 8, 18, 8, 8), Window(0, 20, 16, 36, 8, 8), Window(20, 0, 30, 9, 10, 9)]
    assert batches(windows, 128) == [windows[:2], windows[2:3], windows[3:]]
    many = [Window(0, 0, 128, 128, 128, 128)] * 20
    assert [len(batch) for batch in batches(many, 10**6)] == [8, 8, 4]  # BATCH_PIXELS: 8 windows of 128²
    assert batches(windows, 10) == [[w] for w in windows[:3]] + [windows[3:]]  # one window even over the budget


def test_specks_share_windows_and_stay_filled(generator):
    """400 one-pixel holes, 20 pixels apart: 400 windows of 16², or packed per cell of 4 trained sizes (64 pixels)."""
    image = _photo(400, 400)
    hole = np.zeros((400, 400), bool)
    spots = np.arange(20) * 20 + 6
    hole[np.ix_(spots, spots)] = True
    options = HDOptions(strategy="crop", trained_size=16, crop_margin=4)
    unpacked, packed = crop_windows(hole, options, pack_specks=False), crop_windows(hole, options)
    assert len(unpacked) == 400 and len(packed) <= 49  # 7 x 7 cells of 64 pixels at most
    covered = np.zeros(hole.shape, bool)
    for top, left, bottom, right, model_height, model_width in packed:
        covered[top:bottom, left:right] = True
        assert max(model_height, model_width) == 16
    assert covered[hole].all()
    result = inpaint_hd(generator, image, hole, options)
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(np.any(result[hole] != image[hole], axis=-1)) > 0.5


def test_a_speck_near_a_large_hole_joins_its_window():
    hole = np.zeros((300, 300), bool)
    hole[100:160, 100:160] = True  # large
    hole[95, 170] = hole[97, 175] = True  # two specks in the large hole's window
    hole[280, 280] = hole[285, 290] = True  # two specks far away: one pack
    windows = crop_windows(hole, HDOptions(trained_size=64, crop_margin=8))
    assert len(windows) == 2
    first = windows[0]
    assert first.top <= 95 and first.right > 175  # the large hole's window holds the near specks
