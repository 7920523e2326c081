"""Inpainting photos larger than the model's training scale: the `original`, `crop` and `resize` strategies.

A DMFN generator is trained on small squares (the paper's 256², the demo's 128²) with holes of
about half the side. Run on a 12-megapixel photo as a whole (`original`), it fills a small hole at
a scale it never saw, and its memory grows with the photo (about 5 KiB per pixel with the default
generator), so `dmfn_tf.inference.inpaint` refuses photos over its pixel budget. Two strategies
run the model on small images instead; every strategy calls `dmfn_tf.inference.inpaint` (the one
place that pads, builds the generator input and composites) and keeps every known pixel of the
photo bit for bit: only pixels of the hole are ever written.

- `original`: the whole image through the model at its own size, as `inpaint` does. Refused over
  the pixel budget with `inpaint`'s message.
- `crop`: each connected hole region (8-connectivity) gets a window: its bounding box grown by a
  context margin on every side (`max(crop_margin, half the region's longer side)`), at least
  `trained_size` wide and high where the photo allows, kept inside the photo. Regions whose windows
  overlap are merged into one window, until no two windows overlap. A window whose longer side is
  over `trained_size` is scaled down (bicubic) so that its longer side is `trained_size`: the hole
  takes about half the model's input, as in training. Windows are never scaled up. The generated
  window is scaled back (bicubic) and only its hole pixels are pasted. Memory is bounded by the
  window (at most `trained_size`² pixels through the model), not by the photo.
- `resize`: the whole photo scaled down so that its longer side is at most `resize_limit`,
  inpainted once, the generated image scaled back up and pasted into the hole only.

`auto` (the default) is the rule: `original` when the photo's longer side is at most
`crop_trigger` (default 1024, the side of the default pixel budget), `crop` above it.

When scaling down, the hole is widened by two pixels of the small image: the bicubic filter mixes
hole pixels (the object being removed) into their neighbours, and those neighbours must not be
shown to the model as known context.

The pixel budget (`max_pixels`) always applies to what the model runs on: the whole image for
`original`, each scaled window for `crop`, the scaled-down photo for `resize`; the error message
names that input.

Example:

```python
from dmfn_tf.high_resolution import HDOptions, inpaint_hd
result = inpaint_hd(generator, photo, mask, HDOptions(strategy="crop", trained_size=256))
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

from dmfn_tf.errors import UserError
from dmfn_tf.inference import DEFAULT_MAX_PIXELS, MaskMismatchError, check_pixel_budget, inpaint

STRATEGIES = ("auto", "original", "crop", "resize")
DEFAULT_TRAINED_SIZE = 256
DEFAULT_CROP_TRIGGER = 1024
DEFAULT_CROP_MARGIN = 64
DEFAULT_RESIZE_LIMIT = 1024
# Pixels of the scaled-down image by which the hole grows (the bicubic filter's reach, see above).
SCALED_HOLE_GROWTH = 2


class HDOptionError(UserError):
    """A high-resolution option has an invalid value."""


@dataclass(frozen=True)
class HDOptions:
    """How to inpaint images larger than the model's training scale (see the module docstring).

    Args:
        strategy: "auto", "original", "crop" or "resize".
        trained_size: the side of the squares the model was trained on; `crop` scales windows to it.
        crop_trigger: with "auto", images whose longer side is above this use `crop`.
        crop_margin: the least context, in photo pixels, around each hole region for `crop`.
        resize_limit: the longest side of the image the model sees with `resize`.

    Example:

    ```python
    HDOptions(strategy="resize", resize_limit=768)
    ```
    """

    strategy: str = "auto"
    trained_size: int = DEFAULT_TRAINED_SIZE
    crop_trigger: int = DEFAULT_CROP_TRIGGER
    crop_margin: int = DEFAULT_CROP_MARGIN
    resize_limit: int = DEFAULT_RESIZE_LIMIT

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise HDOptionError(f"unknown high-resolution strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        for name in ("trained_size", "crop_trigger", "resize_limit"):
            if getattr(self, name) < 1:
                raise HDOptionError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.crop_margin < 0:
            raise HDOptionError(f"crop-margin must be 0 or more, got {self.crop_margin}")

    def resolve(self, height: int, width: int) -> str:
        """The strategy used for an image of this size ("auto" resolved by the rule above)."""
        if self.strategy != "auto":
            return self.strategy
        return "crop" if max(height, width) > self.crop_trigger else "original"


class Window(NamedTuple):
    """A rectangle of the photo, `[top:bottom, left:right]`, and the size the model sees it at."""

    top: int
    left: int
    bottom: int
    right: int
    model_height: int
    model_width: int


def _scaled_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """(height, width) scaled down so that the longer side is at most `longest`; never scaled up."""
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


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


def holes_of(mask: np.ndarray) -> np.ndarray:
    """bool holes `[H, W]` of a `[H, W]` or `[H, W, 1]` mask by the contract's rule (`inpainting.binarise_mask`)."""
    from dmfn_tf.inpainting import binarise_mask  # TensorFlow only once a mask is read

    mask = np.asarray(mask, np.float32)
    return binarise_mask(mask.reshape(1, mask.shape[0], mask.shape[1], 1)).numpy()[0, :, :, 0] > 0.5


def _window(box: tuple[int, int, int, int], height: int, width: int, options: HDOptions) -> tuple[int, int, int, int]:
    top, left, bottom, right = box
    margin = max(options.crop_margin, math.ceil(max(bottom - top, right - left) / 2))
    top, bottom = _span(top, bottom, margin, options.trained_size, height)
    left, right = _span(left, right, margin, options.trained_size, width)
    return top, left, bottom, right


def crop_windows(hole: np.ndarray, options: HDOptions = HDOptions()) -> list[Window]:
    """The windows the `crop` strategy inpaints for a hole mask (see the module docstring).

    Args:
        hole: bool `[H, W]`, True = hole.
        options: `trained_size` and `crop_margin` are used.

    Returns:
        Non-overlapping windows, each holding whole hole regions, sorted by position.

    Example:

    ```python
    hole = np.zeros((3000, 4000), bool); hole[100:150, 200:260] = True
    crop_windows(hole, HDOptions(trained_size=256))
    # -> [Window(top=0, left=102, bottom=256, right=358, model_height=256, model_width=256)]
    ```
    """
    from scipy import ndimage
    from scipy.sparse.csgraph import connected_components

    height, width = hole.shape
    # Hole pixels in neighbouring blocks of `crop_margin` pixels are less than two margins apart, so
    # their windows overlap and would be merged below anyway: grouping them first gives the same
    # windows and keeps the merging fast for masks of thousands of specks.
    block = max(1, options.crop_margin)
    padded = np.pad(hole, ((0, -height % block), (0, -width % block)))
    blocks = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).any(axis=(1, 3))
    block_labels, _ = ndimage.label(blocks, structure=np.ones((3, 3), bool))
    labels = block_labels[np.arange(height) // block][:, np.arange(width) // block]
    labels[~hole] = 0
    boxes = [(rows.start, cols.start, rows.stop, cols.stop) for rows, cols in ndimage.find_objects(labels) if rows]
    del labels, padded  # a 12 MP label image is 48 MB; only the boxes are needed
    boxes = np.array(boxes, np.int64).reshape(-1, 4)
    while True:
        windows = np.array([_window(tuple(box), height, width, options) for box in boxes], np.int64).reshape(-1, 4)
        # Windows [top, bottom) x [left, right) overlap when they overlap on both axes.
        overlap = (
            (windows[:, None, 0] < windows[None, :, 2])
            & (windows[None, :, 0] < windows[:, None, 2])
            & (windows[:, None, 1] < windows[None, :, 3])
            & (windows[None, :, 1] < windows[:, None, 3])
        )
        count, group = connected_components(overlap, directed=False)
        if count == len(boxes):
            break
        boxes = np.array(
            [[boxes[group == g, 0].min(), boxes[group == g, 1].min(), boxes[group == g, 2].max(), boxes[group == g, 3].max()]
             for g in range(count)]
        )
    return [
        Window(top, left, bottom, right, *_scaled_size(bottom - top, right - left, options.trained_size))
        for top, left, bottom, right in sorted(windows.tolist())
    ]


def plan(hole: np.ndarray, options: HDOptions = HDOptions()) -> tuple[str, list[Window]]:
    """The strategy used for a hole mask and the windows the model will run on.

    Args:
        hole: bool `[H, W]`, True = hole.
        options: the strategy and its parameters.

    Returns:
        `(strategy, windows)`: "auto" resolved; `original` and `resize` have one window, the whole
        image (at its own size, or scaled to `resize_limit`); no windows when there is no hole.
    """
    height, width = hole.shape
    strategy = options.resolve(height, width)
    if not hole.any():
        return strategy, []
    if strategy == "crop":
        return strategy, crop_windows(hole, options)
    longest = options.resize_limit if strategy == "resize" else max(height, width)
    return strategy, [Window(0, 0, height, width, *_scaled_size(height, width, longest))]


def largest_model_input(height: int, width: int, options: HDOptions = HDOptions()) -> tuple[str, int, int]:
    """The strategy for an image of this size and the largest model input it can lead to.

    Known from the image's size alone (no mask), so that a command can check the pixel budget
    before loading anything. `crop` windows are at most `trained_size` on their longer side.

    Returns:
        `(strategy, height, width)`.
    """
    strategy = options.resolve(height, width)
    if strategy == "crop":
        return strategy, min(height, options.trained_size), min(width, options.trained_size)
    longest = options.resize_limit if strategy == "resize" else max(height, width)
    return (strategy, *_scaled_size(height, width, longest))


def check_budget(height: int, width: int, options: HDOptions, max_pixels: int, source: str = "image") -> None:
    """Raises `PixelBudgetError` when the model's input for an image of this size could exceed `max_pixels`.

    `original` gives `check_pixel_budget`'s message about the image; the other strategies name the
    model's input.

    Args:
        height: image height.
        width: image width.
        options: the high-resolution options.
        max_pixels: the budget.
        source: the file name for the message.
    """
    strategy, model_height, model_width = largest_model_input(height, width, options)
    check_pixel_budget(model_height, model_width, max_pixels, source=_input_name(source, strategy))


def _input_name(source: str, strategy: str) -> str:
    if strategy == "original":
        return source
    return f"{source} ({strategy} strategy, the model's input)"


def _resize(array: np.ndarray, height: int, width: int, resample) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((width, height), resample))


def _covered(hole: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Along `axis`, small pixel j covers photo pixels [j*n // size, ceil((j+1)*n / size)): any of them a hole?"""
    n = hole.shape[axis]
    j = np.arange(size)
    low, high = j * n // size, -(-(j + 1) * n // size)
    counts = np.concatenate([np.zeros_like(np.take(hole, [0], axis), np.int64), np.cumsum(hole, axis, np.int64)], axis)
    return (np.take(counts, high, axis) - np.take(counts, low, axis)) > 0


def _scaled_hole(hole: np.ndarray, height: int, width: int) -> np.ndarray:
    """The hole on a smaller grid: every small pixel covering a hole pixel, grown by `SCALED_HOLE_GROWTH`."""
    from scipy import ndimage

    small = _covered(_covered(hole, height, 0), width, 1)
    return ndimage.binary_dilation(small, structure=np.ones((3, 3), bool), iterations=SCALED_HOLE_GROWTH)


def inpaint_hd(
    generator,
    image: np.ndarray,
    mask: np.ndarray,
    options: HDOptions = HDOptions(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source: str = "image",
) -> np.ndarray:
    """Fills the holes of an image of any size with the chosen high-resolution strategy.

    Args:
        generator: a DMFN generator (`dmfn_tf.model_io.load_generator`).
        image: uint8 `[H, W, 3]` RGB.
        mask: `[H, W, 1]` or `[H, W]`, 1 (or anything > 0.5) = hole.
        options: the strategy and its parameters (module docstring).
        max_pixels: the budget for each model input (`PixelBudgetError` before any work).
        source: the file name used in error messages.

    Returns:
        uint8 `[H, W, 3]`: the input's pixels everywhere except in the holes.

    Example:

    ```python
    result = inpaint_hd(generator, photo, mask, HDOptions(strategy="crop", trained_size=128))
    ```
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    mask = np.asarray(mask)
    if mask.shape not in (image.shape[:2], image.shape[:2] + (1,)):
        raise MaskMismatchError(f"mask of shape {mask.shape} does not fit an image of shape {image.shape}")
    if options.resolve(*image.shape[:2]) == "original":
        # The whole image at its own size: `inpaint` itself, with today's checks and messages.
        check_pixel_budget(*image.shape[:2], max_pixels, source=source)
        return inpaint(generator, image, mask, max_pixels=max_pixels)
    hole = holes_of(mask.reshape(image.shape[:2]))
    strategy, windows = plan(hole, options)
    for window in windows:  # every budget check before any model work
        check_pixel_budget(
            window.model_height, window.model_width, max_pixels,
            source=_input_name(source, strategy),
        )
    result = image.copy()
    for top, left, bottom, right, model_height, model_width in windows:
        window_image, window_hole = image[top:bottom, left:right], hole[top:bottom, left:right]
        if (model_height, model_width) == window_hole.shape:
            filled = inpaint(generator, window_image, window_hole, max_pixels=max_pixels)
        else:
            small = inpaint(
                generator,
                _resize(window_image, model_height, model_width, Image.BICUBIC),
                _scaled_hole(window_hole, model_height, model_width),
                max_pixels=max_pixels,
            )
            filled = _resize(small, bottom - top, right - left, Image.BICUBIC)
        result[top:bottom, left:right][window_hole] = filled[window_hole]
    return result
