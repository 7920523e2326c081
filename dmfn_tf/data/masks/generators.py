"""Hole-mask generators for training and evaluation (docs/design.md §1, §6): boxes, strokes, the mixture.

Every generator returns `(mask, bbox)`:

- `mask`: float32 `[S, S, 1]` with values exactly 0 or 1, **1 = hole**, 0 = known pixel;
- `bbox`: int32 `[4]` = `(top, left, height, width)`, the square of side `S / 2` that the local
  discriminator crops. For box masks it is the box itself (before shrinking); for irregular masks
  it is a random square of side `S / 2`, as in the reference recipe.

The random generators are *stateless*: they take a `seed`, a shape-`[2]` integer tensor (see
`tf.random.experimental.stateless_fold_in`), so the same seed gives the same mask on every run. The training pipeline derives that seed from `(run seed, global example index)`,
which is what makes an interrupted run resume exactly.

The names `data.mask` and `dmfn evaluate --mask` take are the kinds of `dmfn_tf.data.masks.kinds`,
which wraps these generators; mask files are read by `dmfn_tf.data.masks.files`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from dmfn_tf.errors import UserError

# Free-form stroke geometry, as fractions of the image side. The hole-ratio guarantee below is
# derived from the largest stroke these allow.
_MIN_VERTICES, _MAX_VERTICES = 4, 8
_MIN_SEGMENT, _MAX_SEGMENT = 1 / 16, 1 / 8
_MIN_WIDTH, _MAX_WIDTH = 1 / 32, 1 / 10
_MAX_TURN = 2 * math.pi / 5
_MAX_STROKES = 200


def check_mask_size(size: int) -> None:
    """Raises a `UserError` unless `size` allows an exactly centred box of half the side.

    Args:
        size: image side `S` in pixels.
    """
    if not isinstance(size, (int, np.integer)) or size <= 0 or size % 4:
        raise UserError(f"mask size must be a positive multiple of 4 (the hole is S/2, centred at S/4), got {size!r}")


def max_box_shrink(delta: int, shrink: str = "independent") -> int:
    """The most a random box's side moves inwards: `delta // 2`, or `delta // 2 + 1` for "reference"."""
    return delta // 2 + (1 if shrink == "reference" else 0)


def check_box_delta(size: int, delta: int, shrink: str = "independent") -> None:
    """Raises a `UserError` unless random boxes of `size`² images can shrink as `random_box` does.

    Args:
        size: image side `S`, a multiple of 4.
        delta: the box's shrink parameter; must be smaller than S/2 (and, for "reference", leave
            `S/2 - 2 * (delta // 2 + 1)` positive) so that the hole never vanishes.
        shrink: "independent" or "reference" (see `random_box`).
    """
    check_mask_size(size)
    if not 0 <= delta < size // 2:
        raise UserError(f"mask_delta must be in [0, {size // 2}) for {size}² images, got {delta}")
    if 2 * max_box_shrink(delta, shrink) >= size // 2:
        raise UserError(
            f"mask_delta {delta} with mask_shrink {shrink!r} can remove the whole {size // 2}-pixel box "
            f"(up to {max_box_shrink(delta, shrink)} pixels a side); use a smaller mask_delta"
        )


def _box_mask(size: int, top, left, bottom, right) -> tf.Tensor:
    """1 on rows [top, bottom) and columns [left, right), 0 elsewhere, as float32 [S, S, 1]."""
    rows = tf.range(size, dtype=tf.int32)[:, None]
    cols = tf.range(size, dtype=tf.int32)[None, :]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    return tf.cast(inside, tf.float32)[..., None]


def center_box(size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The paper's evaluation mask: a hole of side S/2 at rows and columns S/4 : 3S/4.

    Args:
        size: image side `S`, a multiple of 4.

    Returns:
        `(mask [S, S, 1] float32, bbox [4] int32)`; the bbox is the hole itself.

    Example:

    ```python
    mask, bbox = center_box(64)
    bbox.numpy().tolist(), float(mask.numpy().mean())
    # -> ([16, 16, 32, 32], 0.25)
    ```
    """
    check_mask_size(size)
    quarter, half = size // 4, size // 2
    mask = _box_mask(size, quarter, quarter, quarter + half, quarter + half)
    return mask, tf.constant([quarter, quarter, half, half], tf.int32)


def random_bbox(size: int, seed) -> tf.Tensor:
    """A square of side S/2 at a uniformly random position fully inside the image.

    Args:
        size: image side `S`, a multiple of 4.
        seed: shape-[2] integer tensor, a stateless random seed.

    Returns:
        int32 `[4]` = `(top, left, S/2, S/2)` with `0 <= top, left <= S/2`.
    """
    check_mask_size(size)
    half = size // 2
    corner = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=size - half + 1, dtype=tf.int32)
    return tf.concat([corner, tf.constant([half, half], tf.int32)], axis=0)


def random_box(size: int, delta: int, seed, shrink: str = "independent") -> tuple[tf.Tensor, tf.Tensor]:
    """The reference training mask: an S/2 box at a random position, its sides shrunk at random.

    `shrink="independent"`: each of the four sides moves inwards by its own uniform integer in
    `[0, delta // 2]`, so the hole's height and width lie in `[S/2 - 2 * (delta // 2), S/2]`.
    `shrink="reference"` (the authors' masks): one uniform integer in `[0, delta // 2 + 1]` per
    axis moves both of its sides, so the hole stays centred on the box (0..17 pixels a side at
    delta 32).

    Args:
        size: image side `S`, a multiple of 4.
        delta: the reference recipe's `delta` (32 at 256²); see `check_box_delta` for its range.
        seed: shape-[2] integer tensor, a stateless random seed.
        shrink: "independent" or "reference".

    Returns:
        `(mask [S, S, 1] float32, bbox [4] int32)`; the bbox is the unshrunk box, so it covers the
        hole and the local discriminator sees its whole surroundings.

    Example:

    ```python
    mask, bbox = random_box(64, delta=8, seed=tf.constant([1, 2]))
    bbox.numpy()[2:].tolist()
    # -> [32, 32]
    ```
    """
    if shrink not in ("independent", "reference"):
        raise UserError(f"unknown mask shrink {shrink!r}; expected 'independent' or 'reference'")
    check_box_delta(size, delta, shrink)
    box_seed, shrink_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    bbox = random_bbox(size, box_seed)
    top, left, height, width = tf.unstack(bbox)
    most = max_box_shrink(delta, shrink)
    if shrink == "reference":
        rows, cols = tf.unstack(tf.random.stateless_uniform([2], seed=shrink_seed, minval=0, maxval=most + 1, dtype=tf.int32))
        sides = (rows, cols, rows, cols)
    else:
        sides = tf.unstack(tf.random.stateless_uniform([4], seed=shrink_seed, minval=0, maxval=most + 1, dtype=tf.int32))
    mask = _box_mask(size, top + sides[0], left + sides[1], top + height - sides[2], left + width - sides[3])
    return mask, bbox


def _render_step(size: int) -> int:
    """Full-resolution pixels per cell of the grid strokes are measured on (about 64 cells a side)."""
    step = max(1, size // 64)
    while size % step:
        step -= 1
    return step


def max_stroke_fraction(size: int, width_scale: float = 1.0) -> float:
    """An upper bound on the fraction of an S² image that one free-form stroke can cover.

    A stroke is a chain of at most `_MAX_VERTICES - 1` segments of length `L` drawn with radius
    `r`. Its distance field is sampled on a grid `h = _render_step(size)` times coarser and
    interpolated bilinearly, which (distance being 1-Lipschitz) moves the painted edge out by at
    most `h * sqrt(2)`; a pixel is painted when its centre is inside, so painted pixels fit in
    capsules of radius `r' = r + h * sqrt(2) + sqrt(2) / 2`, each of area `2 L r' + pi r'^2`.

    Args:
        size: image side `S`.
        width_scale: the strokes' widths are multiplied by this (see `free_form`).
    """
    step = _render_step(size)
    interpolation = step * math.sqrt(2) if step > 1 else 0.0
    radius = width_scale * _MAX_WIDTH * size / 2 + interpolation + math.sqrt(2) / 2
    capsule = 2 * _MAX_SEGMENT * size * radius + math.pi * radius**2
    return (_MAX_VERTICES - 1) * capsule / size**2


def _stroke(size: int, seed, width_scale: float = 1.0) -> tf.Tensor:
    """One brush stroke: a random walk of 4–8 vertices drawn with a random width, as bool [S, S].

    Distances to the stroke are computed on a grid of about 64² cells and interpolated to S², so a
    stroke costs the same at every image size.
    """
    keys = tf.random.experimental.stateless_split(seed, num=6)
    max_segments = _MAX_VERTICES - 1
    num_vertices = tf.random.stateless_uniform([], keys[0], _MIN_VERTICES, _MAX_VERTICES + 1, dtype=tf.int32)
    start = tf.random.stateless_uniform([2], keys[1], 0.0, size - 1.0)
    heading = tf.random.stateless_uniform([], keys[2], 0.0, 2 * math.pi)
    turns = tf.random.stateless_uniform([max_segments], keys[3], -_MAX_TURN, _MAX_TURN)
    lengths = tf.random.stateless_uniform([max_segments], keys[4], _MIN_SEGMENT * size, _MAX_SEGMENT * size)
    radius = tf.random.stateless_uniform([], keys[5], _MIN_WIDTH * size, _MAX_WIDTH * size) / 2 * width_scale

    angles = heading + tf.cumsum(turns)
    steps = tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1) * lengths[:, None]
    # Clipping keeps the stroke in the image (it runs along the border) and never lengthens a segment.
    vertices = tf.clip_by_value(start + tf.concat([tf.zeros([1, 2]), tf.cumsum(steps)], axis=0), 0.0, size - 1.0)
    seg_start, seg_end = vertices[:-1], vertices[1:]

    # Centres of the coarse cells, in full-resolution pixel coordinates.
    step = _render_step(size)
    cells = size // step
    coords = (tf.cast(tf.range(cells), tf.float32) + 0.5) * step - 0.5
    grid = tf.reshape(tf.stack(tf.meshgrid(coords, coords, indexing="ij"), axis=-1), [-1, 1, 2])
    direction = seg_end - seg_start
    length_sq = tf.maximum(tf.reduce_sum(direction**2, axis=-1), 1e-6)
    along = tf.clip_by_value(tf.reduce_sum((grid - seg_start) * direction, axis=-1) / length_sq, 0.0, 1.0)
    distance = tf.norm(grid - seg_start - along[..., None] * direction, axis=-1)
    in_use = tf.range(max_segments) < num_vertices - 1
    distance = tf.reduce_min(tf.where(in_use, distance, float(2 * size)), axis=-1)
    distance = tf.reshape(distance, [cells, cells, 1])
    if step > 1:
        distance = tf.image.resize(distance, [size, size], method="bilinear")
    return distance[..., 0] <= radius


def free_form(
    size: int, seed, min_ratio: float = 0.1, max_ratio: float = 0.6, width_scale: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Irregular hole made of random brush strokes, covering between `min_ratio` and `max_ratio`.

    A target ratio is drawn uniformly from `[min_ratio, max_ratio)` and strokes are added until the
    hole reaches it; a stroke that would bring the hole to `max_ratio` or beyond is left out and
    another one drawn. So the ratio is always below `max_ratio`, and at least `min_ratio`: below
    `min_ratio` no stroke is ever left out, because one stroke covers at most
    `max_stroke_fraction(size)` (about 0.19 at 64², 0.25 at 256²; a range narrower than that is
    refused). A cap of 200 strokes tried only guards against an endless loop; a typical hole takes
    5–30. Each stroke is a random walk of 4–8 vertices with segments of S/16–S/8 pixels, turns of
    up to ±72° and a width of S/32–S/10 pixels.

    Args:
        size: image side `S`, a multiple of 4.
        seed: shape-[2] integer tensor, a stateless random seed.
        min_ratio: smallest fraction of the image covered by the hole.
        max_ratio: bound on the fraction covered by the hole (exclusive).
        width_scale: multiplies every stroke's width (1: the evaluation's strokes; 2: twice as wide).

    Returns:
        `(mask [S, S, 1] float32, bbox [4] int32)`; the bbox is a random S/2 square.

    Example:

    ```python
    mask, _ = free_form(64, seed=tf.constant([0, 7]))
    0.1 <= float(mask.numpy().mean()) < 0.6
    # -> True
    ```
    """
    check_mask_size(size)
    one_stroke = max_stroke_fraction(size, width_scale)
    if not (0 < min_ratio and min_ratio + one_stroke < max_ratio <= 1):
        raise UserError(
            f"free-form hole ratio range [{min_ratio}, {max_ratio}) is too narrow for {size}² images: one stroke "
            f"can cover {one_stroke:.3f}, so it needs 0 < min_ratio < max_ratio - {one_stroke:.3f} and max_ratio <= 1"
        )
    target_seed, stroke_seed, bbox_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    target = tf.random.stateless_uniform([], target_seed, min_ratio, max_ratio)

    def ratio(hole):
        return tf.reduce_mean(tf.cast(hole, tf.float32))

    def not_done(index, hole):
        return (index < _MAX_STROKES) & (ratio(hole) < target)

    def add_stroke(index, hole):
        candidate = hole | _stroke(size, tf.random.experimental.stateless_fold_in(stroke_seed, index), width_scale)
        return index + 1, tf.where(ratio(candidate) < max_ratio, candidate, hole)

    _, hole = tf.while_loop(not_done, add_stroke, (tf.constant(0), tf.zeros([size, size], tf.bool)))
    return tf.cast(hole, tf.float32)[..., None], random_bbox(size, bbox_seed)


# The training mixture of holes like the ones users make (`mixture`): (share, component).
MIXTURE_SHARES = (
    (0.40, "box"),  # a box of sides S/4..S/2 anywhere in the image
    (0.10, "center_box"),  # the evaluation's centred S/2 box
    (0.30, "strokes"),  # free-form strokes as `dmfn evaluate --mask free_form` draws them
    (0.20, "wide_strokes"),  # the same with strokes 1.5 times as wide
)
WIDE_STROKE_SCALE = 1.5


def any_box(size: int, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """A box of height and width uniform in [S/4, S/2] at a uniformly random position.

    Returns:
        `(mask [S, S, 1] float32, bbox [4] int32)`; the bbox is the S/2 square centred on the box
        as far as the image allows, so it covers the whole box.
    """
    check_mask_size(size)
    half, quarter = size // 2, size // 4
    side_seed, corner_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    sides = tf.random.stateless_uniform([2], side_seed, quarter, half + 1, dtype=tf.int32)
    corner = tf.cast(tf.random.stateless_uniform([2], corner_seed, 0.0, 1.0) * tf.cast(size - sides + 1, tf.float32), tf.int32)
    corner = tf.minimum(corner, size - sides)
    square = tf.clip_by_value(corner + sides // 2 - quarter, 0, size - half)
    mask = _box_mask(size, corner[0], corner[1], corner[0] + sides[0], corner[1] + sides[1])
    return mask, tf.concat([square, tf.constant([half, half], tf.int32)], axis=0)


def mixture(size: int, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """One hole of the training mixture `MIXTURE_SHARES`: boxes of several sizes and positions, and strokes.

    Args:
        size: image side `S`, a multiple of 4.
        seed: shape-[2] integer tensor, a stateless random seed.
    """
    check_mask_size(size)
    pick_seed, hole_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    bounds = tf.constant([sum(share for share, _ in MIXTURE_SHARES[: i + 1]) for i in range(len(MIXTURE_SHARES))])
    draw = tf.random.stateless_uniform([], pick_seed, 0.0, 1.0)
    index = tf.minimum(tf.reduce_sum(tf.cast(draw >= bounds, tf.int32)), len(MIXTURE_SHARES) - 1)
    components = {
        "box": lambda: any_box(size, hole_seed),
        "center_box": lambda: center_box(size),
        "strokes": lambda: free_form(size, hole_seed),
        "wide_strokes": lambda: free_form(size, hole_seed, width_scale=WIDE_STROKE_SCALE),
    }
    return tf.switch_case(index, [components[name] for _, name in MIXTURE_SHARES])
