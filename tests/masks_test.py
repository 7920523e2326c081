"""Mask generators and mask files (dmfn_tf.data.masks.generators, .files), checked against NumPy re-derivations.

The registry of mask kinds is tested in mask_kinds_test.py.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dmfn_tf.data import masks
from dmfn_tf.data.masks import generators
from dmfn_tf.errors import UserError

SIZE = 64
HALF = SIZE // 2


def _seed(n):
    return tf.constant([n, 12345], tf.int64)


def _in_graph(draw):
    """`draw(seed)` traced once as a `tf.function`, as the data pipeline runs it: tests that draw
    hundreds of masks would otherwise spend minutes in eager `tf.while_loop`s. Stateless ops give
    the same masks either way."""
    return tf.function(draw)


def _hole_extent(mask):
    """(first row, last row + 1, first col, last col + 1) of the hole, asserting it is one rectangle."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    rectangle = np.zeros_like(mask)
    rectangle[r0:r1, c0:c1] = 1
    np.testing.assert_array_equal(mask, rectangle)
    return r0, r1, c0, c1


def _assert_binary_mask(mask, size=SIZE):
    assert mask.shape == (size, size, 1)
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}


def _assert_bbox_inside(bbox, size=SIZE):
    top, left, height, width = bbox
    assert (height, width) == (size // 2, size // 2)
    assert 0 <= top <= size - height and 0 <= left <= size - width


def test_center_box_is_the_middle_half():
    mask, bbox = masks.center_box(SIZE)
    expected = np.zeros((SIZE, SIZE, 1), np.float32)
    expected[16:48, 16:48] = 1
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert bbox.dtype == tf.int32
    assert bbox.numpy().tolist() == [16, 16, 32, 32]


@pytest.mark.parametrize("size", [0, 30, 66, -4])
def test_sizes_that_cannot_centre_a_half_box_are_rejected(size):
    with pytest.raises(UserError, match="multiple of 4"):
        masks.center_box(size)


def test_random_box_shrinks_each_side_within_half_delta_and_stays_in_its_bbox():
    delta = 8
    shrinks, corners = set(), set()
    for n in range(60):
        mask, bbox = (t.numpy() for t in masks.random_box(SIZE, delta, _seed(n)))
        _assert_binary_mask(mask)
        _assert_bbox_inside(bbox)
        top, left, height, width = bbox
        r0, r1, c0, c1 = _hole_extent(mask[..., 0])
        sides = (r0 - top, c0 - left, top + height - r1, left + width - c1)
        assert all(0 <= s <= delta // 2 for s in sides), (bbox, sides)
        shrinks.update(sides)
        corners.add((top, left))
    # Every shrink 0..delta/2 occurs, and the box moves around.
    assert shrinks == set(range(delta // 2 + 1))
    assert len(corners) > 30


def test_reference_shrink_keeps_the_hole_centred_with_one_draw_per_axis():
    # The authors' masks: one shrink in 0..delta/2 + 1 per axis, for both of its sides (fixture
    # README: with delta 16 at 128² their holes lost 5 rows and 9 columns a side).
    delta = 8
    row_shrinks, col_shrinks = set(), set()
    for n in range(80):
        mask, bbox = (t.numpy() for t in masks.random_box(SIZE, delta, _seed(n), shrink="reference"))
        _assert_binary_mask(mask)
        _assert_bbox_inside(bbox)
        top, left, height, width = bbox
        r0, r1, c0, c1 = _hole_extent(mask[..., 0])
        assert r0 - top == top + height - r1 and c0 - left == left + width - c1, (bbox, (r0, r1, c0, c1))
        row_shrinks.add(r0 - top)
        col_shrinks.add(c0 - left)
    assert row_shrinks == col_shrinks == set(range(delta // 2 + 2))


def test_reference_shrink_range_is_checked_against_the_box():
    # delta 14 at 64²: up to 8 pixels a side, a 32-pixel box keeps 16; delta 30 could take all 32.
    masks.random_box(SIZE, 14, _seed(0), shrink="reference")
    with pytest.raises(UserError, match="mask_shrink 'reference'"):
        masks.random_box(SIZE, 30, _seed(0), shrink="reference")
    with pytest.raises(UserError, match="unknown mask shrink"):
        masks.random_box(SIZE, 8, _seed(0), shrink="both")


def test_random_box_with_zero_delta_is_exactly_its_bbox():
    mask, bbox = (t.numpy() for t in masks.random_box(SIZE, 0, _seed(3)))
    top, left, height, width = bbox
    assert _hole_extent(mask[..., 0]) == (top, top + height, left, left + width)


def test_random_box_rejects_a_delta_that_could_erase_the_hole():
    with pytest.raises(UserError, match="mask_delta"):
        masks.random_box(SIZE, HALF, _seed(0))


def test_random_masks_are_reproducible_from_their_seed():
    for make in (lambda s: masks.random_box(SIZE, 8, s), lambda s: masks.free_form(SIZE, s)):
        first, again, other = make(_seed(5)), make(_seed(5)), make(_seed(6))
        np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
        np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
        assert not np.array_equal(first[0].numpy(), other[0].numpy())


def test_free_form_hole_ratio_stays_in_the_documented_range():
    ratios = []
    draw = _in_graph(lambda seed: masks.free_form(SIZE, seed))
    for n in range(30):
        mask, bbox = (t.numpy() for t in draw(_seed(n)))
        _assert_binary_mask(mask)
        _assert_bbox_inside(bbox)
        ratios.append(mask.mean())
    assert min(ratios) >= 0.1 and max(ratios) < 0.6, ratios
    # The target is drawn from a wide range, not a constant.
    assert min(ratios) < 0.2 and max(ratios) > 0.3, ratios


def test_free_form_respects_a_custom_ratio_range():
    draw = _in_graph(lambda seed: masks.free_form(SIZE, seed, min_ratio=0.05, max_ratio=0.3))
    ratios = [draw(_seed(n))[0].numpy().mean() for n in range(20)]
    assert min(ratios) >= 0.05 and max(ratios) < 0.3, ratios


def test_free_form_refuses_a_range_narrower_than_one_stroke():
    with pytest.raises(UserError, match="too narrow"):
        masks.free_form(SIZE, _seed(0), min_ratio=0.3, max_ratio=0.35)


@pytest.mark.parametrize("size", [64, 256])
def test_one_stroke_never_exceeds_the_bound_the_ratio_guarantee_relies_on(size):
    bound = masks.max_stroke_fraction(size)
    draw = _in_graph(lambda seed: generators._stroke(size, seed))
    areas = [draw(_seed(n)).numpy().mean() for n in range(40)]
    assert 0 < min(areas) and max(areas) <= bound, (max(areas), bound)


@pytest.fixture
def hole_pattern():
    """A 64² 0/255 pattern with a disc and a bar, plus an anti-aliased (blurred) version."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    hard = (((yy - 24) ** 2 + (xx - 30) ** 2) < 12**2) | ((yy > 44) & (yy < 52) & (xx > 8))
    hard = hard.astype(np.uint8) * 255
    soft = np.asarray(Image.fromarray(hard).resize((SIZE // 4, SIZE // 4), Image.BILINEAR).resize((SIZE, SIZE)))
    assert len(np.unique(soft)) > 20  # Really anti-aliased.
    return hard, soft


def test_mask_files_0_255_and_anti_aliased_match_a_numpy_threshold(tmp_path, hole_pattern, save_image):
    for name, pattern in zip(("hard", "soft"), hole_pattern):
        path = save_image(tmp_path / f"{name}.png", pattern)
        mask = masks.load_mask_file(path)
        _assert_binary_mask(mask)
        np.testing.assert_array_equal(mask[..., 0], (pattern / 255.0 > 0.5).astype(np.float32))


def test_mask_files_with_values_0_and_1_are_taken_as_is(tmp_path, hole_pattern, save_image):
    zero_one = (hole_pattern[0] // 255).astype(np.uint8)
    mask = masks.load_mask_file(save_image(tmp_path / "01.png", zero_one))
    np.testing.assert_array_equal(mask[..., 0], zero_one.astype(np.float32))


def test_mask_file_invert_swaps_holes(tmp_path, hole_pattern, save_image):
    path = save_image(tmp_path / "m.png", hole_pattern[1])
    np.testing.assert_array_equal(masks.load_mask_file(path, invert=True), 1 - masks.load_mask_file(path))


def test_rgb_masks_use_luminance_and_rgba_masks_ignore_alpha_unless_asked(tmp_path, save_image):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    alpha = (rng.random((SIZE, SIZE)) > 0.7).astype(np.uint8) * 255
    luma = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140]) / 255
    decisive = np.abs(luma - 0.5) > 1e-4  # Leave float32 rounding at the threshold out of it.

    from_rgb = masks.load_mask_file(save_image(tmp_path / "rgb.png", rgb))[..., 0]
    np.testing.assert_array_equal(from_rgb[decisive], (luma > 0.5)[decisive])

    rgba_path = save_image(tmp_path / "rgba.png", np.dstack([rgb, alpha]))
    np.testing.assert_array_equal(masks.load_mask_file(rgba_path)[..., 0], from_rgb)
    np.testing.assert_array_equal(masks.load_mask_file(rgba_path, from_alpha=True)[..., 0], alpha / 255.0)

    with pytest.raises(UserError, match="rgb.png"):
        masks.load_mask_file(tmp_path / "rgb.png", from_alpha=True)


def test_mask_file_resize_is_a_majority_vote_of_the_covered_pixels(tmp_path, save_image):
    rng = np.random.default_rng(1)
    big = (rng.random((128, 128)) > 0.5).astype(np.uint8) * 255
    mask = masks.load_mask_file(save_image(tmp_path / "big.png", big), size=64)
    expected = big.reshape(64, 2, 64, 2).mean(axis=(1, 3)) / 255 > 0.5
    np.testing.assert_array_equal(mask[..., 0], expected.astype(np.float32))
    # A (height, width) size gives a rectangle, for inference on non-square images.
    assert masks.load_mask_file(tmp_path / "big.png", size=(32, 48)).shape == (32, 48, 1)


@pytest.mark.parametrize(
    "name, contents, problem",
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"not an image at all\n", "Unknown image file format"),
        ("cut.png", None, "Invalid PNG"),
    ],
)
def test_bad_mask_files_raise_a_user_error_naming_the_file(tmp_path, name, contents, problem, save_image):
    path = tmp_path / name
    if contents is None:
        save_image(path, (SIZE, SIZE), fill=255)
        contents = path.read_bytes()[:60]
    path.write_bytes(contents)
    with pytest.raises(UserError, match=problem) as info:
        masks.load_mask_file(path)
    assert name in str(info.value)


def test_missing_mask_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found.*nowhere.png"):
        masks.load_mask_file(tmp_path / "nowhere.png")


def test_mask_files_read_through_a_hook_are_the_same_masks_with_its_status(tmp_path, save_image):
    # The training pipeline reads mask files through its GuardedReader (`read=`): the same seed must
    # pick the same file and box as the plain maker, and `make` passes the hook's status on.
    paths = [str(save_image(tmp_path / f"{i}.png", np.eye(SIZE, k=8 * i, dtype=np.uint8) * 255)) for i in range(4)]
    reads = []

    def read(path):
        reads.append(path)
        return tf.io.read_file(path), tf.constant(True), tf.constant(False)

    for ordered in (False, True):
        plain = masks.mask_file_maker(SIZE, paths, ordered=ordered)
        hooked = masks.mask_file_maker(SIZE, paths, ordered=ordered, read=read)
        picked = set()
        for index in range(8):
            mask, bbox = plain(index, _seed(index))
            hooked_mask, hooked_bbox, ok, hopeless = hooked(index, _seed(index))
            np.testing.assert_array_equal(hooked_mask.numpy(), mask.numpy())
            np.testing.assert_array_equal(hooked_bbox.numpy(), bbox.numpy())
            assert bool(ok) and not bool(hopeless)
            picked.add(int(np.argmax(mask.numpy()[0, :, 0])))
        assert len(picked) > 1  # several files were picked, so a wrong pick would show
    assert len(reads) == 16


def test_any_box_spans_a_quarter_to_a_half_and_lies_in_its_bbox():
    sides = []
    draw = _in_graph(lambda seed: masks.any_box(SIZE, seed))
    for n in range(150):
        mask, bbox = draw(_seed(n))
        mask, bbox = mask.numpy()[..., 0], bbox.numpy()
        _assert_bbox_inside(bbox)
        r0, r1, c0, c1 = _hole_extent(mask)
        assert bbox[0] <= r0 and r1 <= bbox[0] + HALF and bbox[1] <= c0 and c1 <= bbox[1] + HALF
        sides += [r1 - r0, c1 - c0]
    assert min(sides) == SIZE // 4 and max(sides) == HALF


def test_wider_strokes_are_wider():
    def mean_width(scale):
        # Painted area over painted skeleton length, estimated by the ratio of area to boundary pixels.
        areas, borders = 0, 0
        draw = _in_graph(lambda seed: masks.free_form(128, seed, width_scale=scale))
        for n in range(12):
            hole = draw(_seed(n))[0].numpy()[..., 0] > 0
            inner = hole[1:-1, 1:-1] & hole[:-2, 1:-1] & hole[2:, 1:-1] & hole[1:-1, :-2] & hole[1:-1, 2:]
            areas, borders = areas + hole.sum(), borders + hole.sum() - inner.sum()
        return areas / borders

    assert mean_width(masks.WIDE_STROKE_SCALE) > 1.25 * mean_width(1.0)


def test_mixture_draws_each_component_at_its_share():
    counts = {"center": 0, "box": 0, "strokes": 0}
    n = 400
    draw = _in_graph(lambda index, seed: masks.mask_maker("mixture", SIZE)(index, seed))
    for i in range(n):
        mask, bbox = draw(tf.constant(i), _seed(i))
        mask = mask.numpy()
        _assert_binary_mask(mask)
        _assert_bbox_inside(bbox.numpy())
        if np.array_equal(mask, masks.center_box(SIZE)[0].numpy()):
            counts["center"] += 1
        elif _is_rectangle(mask[..., 0]):
            counts["box"] += 1
        else:
            counts["strokes"] += 1
    shares = {name: share for share, name in masks.MIXTURE_SHARES}
    # Binomial standard deviation at n = 400 is at most 0.025; allow four of them.
    assert abs(counts["center"] / n - shares["center_box"]) < 0.1
    assert abs(counts["box"] / n - shares["box"]) < 0.1
    assert abs(counts["strokes"] / n - shares["strokes"] - shares["wide_strokes"]) < 0.1
    again = masks.mask_maker("mixture", SIZE)(7, _seed(7))[0].numpy()
    np.testing.assert_array_equal(again, masks.mask_maker("mixture", SIZE)(7, _seed(7))[0].numpy())


def _is_rectangle(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all() and mask.sum() == len(rows) * len(cols)
