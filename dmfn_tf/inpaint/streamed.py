"""Filling a photo file in memory bounded by its windows, not by the photo: `dmfn inpaint`'s way.

The runner's `run_plan` fills a decoded photo in place, so the photo is held whole (3 bytes a
pixel: 432 MB for 12000²). Here the photo file is read strip by strip, twice
(`dmfn_tf.inpaint.files.rgb_strips`: an 8-bit PNG a strip at a time, other files decoded whole by
Pillow only while they are read):

1. `gather`: the holes' plan (`dmfn_tf.inpaint.planner.plan`) and each window's pixels, copied out
   of the strips as they pass (every strip is decoded, so a corrupt file is found here);
2. `fill_windows`: the model runs on the windows in the runner's batches
   (`dmfn_tf.inpaint.runner.fill_batch`); the holes a batch filled are copied into the windows of
   later batches that overlap it, so each window sees what it would have seen in the photo
   filled in place;
3. `filled_strips`: the strips again, each window's hole pixels pasted in the order the windows
   ran, ready to be encoded (`dmfn_tf.inpaint.files.write_png_strips`).

The result is `run_plan`'s, pixel for pixel; memory holds the hole map, the windows and a strip.

Example:

```python
gathered = gather("photo.png", hole, plan(checked, hole), header.orientation)  # header: image_header's
order = fill_windows(generator, gathered, max_pixels)
write_png_strips("out.png", filled_strips(gathered, order), height, width)
```
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from dmfn_tf.inpaint import files
from dmfn_tf.inpaint.planner import Plan
from dmfn_tf.inpaint.runner import fill_batch, index_batches
from dmfn_tf.inpaint.windows import Window


class GatheredPhoto(NamedTuple):
    """A photo file to fill: its holes, its plan, each planned window's pixels (filled in place), and the
    EXIF orientation its header declared (None: read with the pixels)."""

    path: str
    hole: np.ndarray
    plan: Plan
    pixels: list[np.ndarray]
    orientation: int | None = None

    @property
    def nbytes(self) -> int:
        return self.hole.nbytes + sum(pixels.nbytes for pixels in self.pixels)


def _overlap(a: Window, b: Window) -> tuple[int, int, int, int] | None:
    top, bottom = max(a.top, b.top), min(a.bottom, b.bottom)
    left, right = max(a.left, b.left), min(a.right, b.right)
    return (top, left, bottom, right) if top < bottom and left < right else None


def _part(array: np.ndarray, window: Window, box: tuple[int, int, int, int]) -> np.ndarray:
    """The part `box` (photo coordinates) of `array`, which holds `window` of the photo."""
    top, left, bottom, right = box
    return array[top - window.top:bottom - window.top, left - window.left:right - window.left]


def _strip_window(top: int, rows: int, width: int) -> Window:
    return Window(top, 0, top + rows, width, rows, width)


def gather(path: str, hole: np.ndarray, planned: Plan, orientation: int | None = None) -> GatheredPhoto:
    """Reads the photo at `path` once, strip by strip, keeping the pixels of each window of `planned`.

    `orientation`: the EXIF orientation its header declared (`dmfn_tf.input_limits.image_header`),
    so that it is not read again; None reads it with the pixels.
    """
    windows = planned.windows
    pixels = [np.empty((w.bottom - w.top, w.right - w.left, 3), np.uint8) for w in windows]
    size, strips = files.rgb_strips(path, orientation)
    if (size.height, size.width) != hole.shape:
        raise files.ImageReadError(f"{path}: decodes to {size.width}x{size.height} but its holes are "
                                   f"{hole.shape[1]}x{hole.shape[0]}")
    for top, rgb, _ in strips:
        strip = _strip_window(top, len(rgb), rgb.shape[1])
        for window, kept in zip(windows, pixels):
            box = _overlap(window, strip)
            if box is not None:
                _part(kept, window, box)[...] = _part(rgb, strip, box)
    return GatheredPhoto(path, hole, planned, pixels, orientation)


def _holes(hole: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, bottom, right = box
    return hole[top:bottom, left:right]


def fill_windows(generator, gathered: GatheredPhoto, max_pixels: int) -> list[int]:
    """Runs the model on every window (in place) and returns the order the windows ran in."""
    from dmfn_tf.inpaint.contract import paste_holes  # TensorFlow only once the model runs

    windows, pixels, order = gathered.plan.windows, gathered.pixels, []
    for batch in index_batches(windows, max_pixels):
        fill_batch(generator, [windows[i] for i in batch],
                   [(pixels[i], _holes(gathered.hole, windows[i][:4])) for i in batch])
        order += batch
        done = set(order)
        waiting = [j for j in range(len(windows)) if j not in done]
        for i in batch:
            for j in waiting:
                box = _overlap(windows[i], windows[j])
                if box is not None:
                    paste_holes(_part(pixels[j], windows[j], box), _part(pixels[i], windows[i], box),
                                _holes(gathered.hole, box))
    return order


def filled_strips(gathered: GatheredPhoto, order: list[int]) -> Iterator[np.ndarray]:
    """The photo's strips (uint8 `[rows, W, 3]`) read again, the windows' hole pixels pasted in `order`."""
    from dmfn_tf.inpaint.contract import paste_holes

    windows, pixels = gathered.plan.windows, gathered.pixels
    for top, rgb, _ in files.rgb_strips(gathered.path, gathered.orientation)[1]:
        rgb = np.array(rgb)  # writable, contiguous
        strip = _strip_window(top, len(rgb), rgb.shape[1])
        for i in order:
            box = _overlap(windows[i], strip)
            if box is not None:
                paste_holes(_part(rgb, strip, box), _part(pixels[i], windows[i], box), _holes(gathered.hole, box))
        yield rgb
