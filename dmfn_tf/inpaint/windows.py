"""The geometry of model inputs: windows of a photo, crop windows around holes, holes on a smaller grid.

A `Window` is a rectangle of the photo and the size the model sees it at. `crop_windows` gives the
`crop` strategy's windows (see `dmfn_tf.inpaint.strategies`); `scaled_hole` the hole of a window
scaled down, widened by `SCALED_HOLE_GROWTH` pixels because the bicubic filter mixes hole pixels
(the object being removed) into their neighbours, which must not be shown to the model as known.

Example:

```python
hole = np.zeros((3000, 4000), bool); hole[100:150, 200:260] = True
crop_windows(hole, trained_size=256, crop_margin=64)
# -> [Window(top=0, left=102, bottom=256, right=358, model_height=256, model_width=256)]
```
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# Pixels of the scaled-down image by which the hole grows (the bicubic filter's reach).
SCALED_HOLE_GROWTH = 2
# Columns counted at a time when a hole is scaled down (`scaled_hole`).
STRIP_COLUMNS = 512
# Specks: hole regions whose longer side is at most `trained_size // SPECK_FRACTION`. Specks in one cell
# of `PACK_FACTOR * trained_size` pixels share a window (`crop_windows`).
SPECK_FRACTION = 8
PACK_FACTOR = 4


class Window(NamedTuple):
    """A rectangle of the photo, `[top:bottom, left:right]`, and the size the model sees it at."""

    top: int
    left: int
    bottom: int
    right: int
    model_height: int
    model_width: int

    @property
    def scaled(self) -> bool:
        """Whether the model sees the window at another size than its own."""
        return (self.model_height, self.model_width) != (self.bottom - self.top, self.right - self.left)


def scaled_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """(height, width) scaled down so that the longer side is at most `longest`; never scaled up."""
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def whole_image(height: int, width: int, longest: int) -> Window:
    """The whole image as one window, seen with its longer side at most `longest`."""
    return Window(0, 0, height, width, *scaled_size(height, width, longest))


def _span(low: int, high: int, margin: int, least: int, size: int) -> tuple[int, int]:
    """`[low, high)` grown by `margin` on both ends and to at least `least`, shifted to lie in `[0, size)`."""
    start, stop = low - margin, high + margin
    missing = least - (stop - start)
    if missing > 0:
        start, stop = start - missing // 2, stop + missing - missing // 2
    if start < 0:
        start, stop = 0, stop - start
    if stop > size:
        start, stop = start - (stop - size), size
    return max(start, 0), stop


def _grown(box, height: int, width: int, trained_size: int, crop_margin: int) -> tuple[int, int, int, int]:
    top, left, bottom, right = box
    margin = max(crop_margin, math.ceil(max(bottom - top, right - left) / 2))
    top, bottom = _span(top, bottom, margin, trained_size, height)
    left, right = _span(left, right, margin, trained_size, width)
    return top, left, bottom, right


def _blocks_with_holes(hole: np.ndarray, block: int) -> np.ndarray:
    """bool `[ceil(H / block), ceil(W / block)]`: which `block`-pixel blocks hold a hole pixel.

    Counted in bands of about `STRIP_COLUMNS` rows (whole blocks), never a padded copy of the hole map.
    """
    height, width = hole.shape
    band_rows = block * max(1, STRIP_COLUMNS // block)
    blocks = np.empty((-(-height // block), -(-width // block)), bool)
    for top in range(0, height, band_rows):
        band = hole[top:top + band_rows]
        band = np.pad(band, ((0, -band.shape[0] % block), (0, -width % block)))
        blocks[top // block:top // block + band.shape[0] // block] = band.reshape(
            band.shape[0] // block, block, band.shape[1] // block, block).any(axis=(1, 3))
    return blocks


def _region_boxes(hole: np.ndarray, block: int) -> np.ndarray:
    """Boxes `[top, left, bottom, right]` of the hole regions, regions in neighbouring `block`-pixel blocks joined.

    Hole pixels in neighbouring blocks of `crop_margin` pixels are less than two margins apart, so
    their windows overlap and would be merged anyway: grouping them first gives the same windows and
    keeps the merging fast for masks of thousands of specks. Labels are computed on the block grid
    only (never a full-size label image).
    """
    from scipy import ndimage

    blocks = _blocks_with_holes(hole, block)
    block_labels, _ = ndimage.label(blocks, structure=np.ones((3, 3), bool))
    boxes = []
    for label, (rows, cols) in enumerate(ndimage.find_objects(block_labels), start=1):
        own = block_labels[rows, cols] == label
        inside = hole[rows.start * block:rows.stop * block, cols.start * block:cols.stop * block]
        inside = inside & np.repeat(np.repeat(own, block, 0), block, 1)[:inside.shape[0], :inside.shape[1]]
        hit_rows, hit_cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        boxes.append((rows.start * block + hit_rows[0], cols.start * block + hit_cols[0],
                      rows.start * block + hit_rows[-1] + 1, cols.start * block + hit_cols[-1] + 1))
    return np.array(boxes, np.int64).reshape(-1, 4)


def _merge_overlapping(boxes: np.ndarray, grow) -> np.ndarray:
    """Windows of `boxes`, the boxes of overlapping windows merged until no two windows overlap."""
    from scipy.sparse.csgraph import connected_components

    if len(boxes) == 0:
        return np.zeros((0, 4), np.int64)
    while True:
        windows = np.array([grow(tuple(box)) for box in boxes], np.int64).reshape(-1, 4)
        # Windows [top, bottom) x [left, right) overlap when they overlap on both axes.
        overlap = ((windows[:, None, 0] < windows[None, :, 2]) & (windows[None, :, 0] < windows[:, None, 2])
                   & (windows[:, None, 1] < windows[None, :, 3]) & (windows[None, :, 1] < windows[:, None, 3]))
        count, group = connected_components(overlap, directed=False)
        if count == len(boxes):
            return windows
        boxes = np.array([[boxes[group == g, 0].min(), boxes[group == g, 1].min(), boxes[group == g, 2].max(),
                           boxes[group == g, 3].max()] for g in range(count)])


def _packs(boxes: np.ndarray, trained_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(boxes of the specks packed per cell, where a cell holds two or more; the other boxes)."""
    longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    speck = longer <= max(1, trained_size // SPECK_FRACTION)
    cell = PACK_FACTOR * trained_size
    cells = ((boxes[:, 0] + boxes[:, 2]) // 2 // cell) * (1 << 32) + (boxes[:, 1] + boxes[:, 3]) // 2 // cell
    packed = np.zeros(len(boxes), bool)
    packs = []
    for value in np.unique(cells[speck]):
        members = speck & (cells == value)
        if members.sum() >= 2:
            packs.append(boxes[members])
            packed |= members
    return packs, boxes[~packed]


def _overlaps(window, windows: np.ndarray) -> bool:
    top, left, bottom, right = window
    return bool(np.any((windows[:, 0] < bottom) & (top < windows[:, 2]) & (windows[:, 1] < right) & (left < windows[:, 3])))


def _pack_window(pack: np.ndarray, height: int, width: int, trained_size: int, crop_margin: int):
    """The window of a pack of specks: their box plus `crop_margin`, at least `trained_size`, inside the photo."""
    top, bottom = _span(int(pack[:, 0].min()), int(pack[:, 2].max()), crop_margin, trained_size, height)
    left, right = _span(int(pack[:, 1].min()), int(pack[:, 3].max()), crop_margin, trained_size, width)
    return top, left, bottom, right


def _packed_and_merged(boxes: np.ndarray, height: int, width: int, trained_size: int, crop_margin: int) -> np.ndarray:
    """Windows of packs of specks (each its specks' box plus `crop_margin`) and of the other regions (merged)."""
    grow = lambda box: _grown(box, height, width, trained_size, crop_margin)  # noqa: E731
    packs, rest = _packs(boxes, trained_size)
    while True:
        regular = _merge_overlapping(rest, grow)
        pack_windows = [_pack_window(pack, height, width, trained_size, crop_margin) for pack in packs]
        clashing = [i for i, window in enumerate(pack_windows) if _overlaps(window, regular)]
        if not clashing:  # packs near a larger hole join its window instead
            return np.concatenate([regular, np.array(pack_windows, np.int64).reshape(-1, 4)])
        rest = np.concatenate([rest, *(packs[i] for i in clashing)])
        packs = [pack for i, pack in enumerate(packs) if i not in clashing]


def crop_windows(hole: np.ndarray, trained_size: int, crop_margin: int, pack_specks: bool = True) -> list[Window]:
    """The `crop` strategy's windows for a hole mask.

    Each connected hole region (8-connectivity) gets a window: its bounding box grown by a context
    margin on every side (`max(crop_margin, half the region's longer side)`), at least
    `trained_size` wide and high where the photo allows, kept inside the photo. Regions whose
    windows overlap are merged into one window, until no two windows overlap. With `pack_specks`,
    specks (regions of at most `trained_size / SPECK_FRACTION` pixels a side) that lie in one cell of
    `PACK_FACTOR * trained_size` pixels share one window (their box plus `crop_margin`), so that a
    thousand specks are a few dozen windows, not a thousand; such windows may overlap one another
    (a hole pixel in two is filled by the later), never another window. A window whose longer
    side is over `trained_size` is seen scaled down so that its longer side is `trained_size`.

    Args:
        hole: bool `[H, W]`, True = hole.
        trained_size: the side of the squares the model was trained on.
        crop_margin: the least context around each region, in photo pixels.
        pack_specks: share windows between specks as above.

    Returns:
        Windows holding whole hole regions, sorted by position.
    """
    height, width = hole.shape
    boxes = _region_boxes(hole, max(1, crop_margin))
    if pack_specks:
        windows = _packed_and_merged(boxes, height, width, trained_size, crop_margin)
    else:
        windows = _merge_overlapping(boxes, lambda box: _grown(box, height, width, trained_size, crop_margin))
    return [Window(top, left, bottom, right, *scaled_size(bottom - top, right - left, trained_size))
            for top, left, bottom, right in sorted(windows.tolist())]


def _covered_rows(hole: np.ndarray, size: int) -> np.ndarray:
    """Small row j covers photo rows [j*n // size, ceil((j+1)*n / size)): which columns have a hole there?

    Counted in bands of `STRIP_COLUMNS` columns, so that the running counts never span the whole photo.
    """
    n = hole.shape[0]
    j = np.arange(size)
    low, high = j * n // size, -(-(j + 1) * n // size)
    covered = np.empty((size, hole.shape[1]), bool)
    for left in range(0, hole.shape[1], STRIP_COLUMNS):
        band = hole[:, left:left + STRIP_COLUMNS]
        counts = np.zeros((n + 1, band.shape[1]), np.int32)
        np.cumsum(band, axis=0, dtype=np.int32, out=counts[1:])
        covered[:, left:left + STRIP_COLUMNS] = counts[high] > counts[low]
    return covered


def scaled_hole(hole: np.ndarray, height: int, width: int) -> np.ndarray:
    """The hole on a smaller grid: every small pixel covering a hole pixel, grown by `SCALED_HOLE_GROWTH`."""
    from scipy import ndimage

    small = _covered_rows(np.ascontiguousarray(_covered_rows(hole, height).T), width).T
    return ndimage.binary_dilation(small, structure=np.ones((3, 3), bool), iterations=SCALED_HOLE_GROWTH)
