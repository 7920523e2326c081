"""Running a plan: the model on each window, in batches, the result composited into the photo in place.

`run_plan` takes a request (`dmfn_tf.inpaint.request`) and its plan (`dmfn_tf.inpaint.planner`).
Windows the model sees at the same size run together, up to `BATCH_PIXELS` (and the pixel budget)
per call (a 128² window alone costs as much Python and TensorFlow dispatch as its convolutions; 16
of them in one call ran five times faster on a CPU). A window larger than its model input is scaled down
(bicubic) with its hole (`dmfn_tf.inpaint.windows.scaled_hole`), and the generated pixels scaled
back up. Only hole pixels are written into the photo (`dmfn_tf.inpaint.contract.paste_holes`), so
every known pixel stays bit for bit, and memory beyond the photo is bounded by the windows.

`inpaint_hd` and `inpaint` are the Python entry points for arrays (one request, one check, one plan).
`inpaint_model_range` is the evaluation's (`dmfn_tf.evaluation.report.generator_inpaint_fn`): a
batch of images in the model's range [-1, 1], one size check, a plan per image, the composites
kept in float (the protocol scores the model's own values, not 8-bit ones), so it takes only
strategies whose windows the model sees at their own size (`original`, the protocol's).

Example:

```python
result = inpaint_hd(generator, photo, mask, HDOptions(strategy="crop", trained_size=128))
```
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS
from dmfn_tf.inpaint.planner import Plan, check_size, plan
from dmfn_tf.inpaint.request import InpaintRequest, request_from_arrays
from dmfn_tf.inpaint.strategies import HDOptions
from dmfn_tf.inpaint.windows import Window, scaled_hole

# Most pixels in one model call of several windows (8 windows of 128², 2 of 256²): the dispatch time a
# batch saves is mostly saved by then, and its memory stays small; a single window may be larger.
BATCH_PIXELS = 8 * 128 * 128


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((width, height), Image.BICUBIC))


def _model_input(pixels: np.ndarray, hole: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """The window's pixels and holes at the size the model sees them."""
    if not window.scaled:
        return pixels, hole
    return _resize(pixels, window.model_height, window.model_width), scaled_hole(hole, window.model_height,
                                                                                 window.model_width)


def batches(windows: list, max_pixels: int, batch_pixels: int = BATCH_PIXELS) -> list[list]:
    """Windows of equal model size grouped into batches of at most `min(max_pixels, batch_pixels)` pixels (at least one window).

    `windows` are `Window`s, or `(index, Window)` pairs (an image's index in a batch, a window's position).
    """
    groups: dict[tuple[int, int], list] = {}
    for item in windows:
        window = item if isinstance(item, Window) else item[1]
        groups.setdefault((window.model_height, window.model_width), []).append(item)
    result = []
    for (height, width), group in groups.items():
        size = max(1, min(max_pixels, batch_pixels) // (height * width))
        result += [group[start:start + size] for start in range(0, len(group), size)]
    return result


def index_batches(windows: list[Window], max_pixels: int) -> list[list[int]]:
    """`batches`, as positions in `windows`."""
    return [[index for index, _ in batch] for batch in batches(list(enumerate(windows)), max_pixels)]


def fill_batch(generator, batch: list[Window], regions: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Runs the model once on a batch of windows and writes the generated pixels into their holes.

    Args:
        generator: a DMFN generator.
        batch: windows of one model size.
        regions: each window's writable pixels uint8 `[h, w, 3]` (a view of the photo, or its own
            array) and bool holes `[h, w]`; all are read before any is written.
    """
    from dmfn_tf.inpaint.contract import generate_uint8, paste_holes

    inputs = [_model_input(pixels, hole, window) for (pixels, hole), window in zip(regions, batch)]
    images = np.stack([pixels for pixels, _ in inputs])
    holes = np.stack([hole for _, hole in inputs])[..., None]
    del inputs
    generated = np.asarray(generate_uint8(generator, images, holes))
    for window, filled, (pixels, hole) in zip(batch, generated, regions):
        if window.scaled:
            filled = _resize(filled, window.bottom - window.top, window.right - window.left)
        paste_holes(pixels, filled, hole)


def _run_batch(generator, request: InpaintRequest, batch: list[Window]) -> None:
    regions = [(request.image[w.top:w.bottom, w.left:w.right], request.hole[w.top:w.bottom, w.left:w.right])
               for w in batch]
    fill_batch(generator, batch, regions)


def run_plan(generator, request: InpaintRequest, planned: Plan, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Fills `request.image` in place by `planned` and returns it.

    Args:
        generator: a DMFN generator (`dmfn_tf.model_io.load_generator`).
        request: the decoded photo and its holes.
        planned: `dmfn_tf.inpaint.planner.plan` of the request's holes.
        max_pixels: the budget each model call stays within (windows per batch).
    """
    for batch in batches(planned.windows, max_pixels):
        _run_batch(generator, request, batch)
    return request.image


def inpaint_hd(generator, image: np.ndarray, mask: np.ndarray, options: HDOptions = HDOptions(),
               max_pixels: int = DEFAULT_MAX_PIXELS, source: str = "image") -> np.ndarray:
    """Fills the holes of an image of any size with the chosen high-resolution strategy.

    Args:
        generator: a DMFN generator (`dmfn_tf.model_io.load_generator`).
        image: uint8 `[H, W, 3]` RGB (left as it is: the result is a new array).
        mask: `[H, W, 1]` or `[H, W]`, 1 (or anything > 0.5; 0/255 masks too) = hole, or bool.
        options: the strategy and its parameters (`dmfn_tf.inpaint.strategies`).
        max_pixels: the budget for each model input (`PixelBudgetError` before any work).
        source: the file name used in error messages.

    Returns:
        uint8 `[H, W, 3]`: the input's pixels everywhere except in the holes.

    Example:

    ```python
    result = inpaint_hd(generator, photo, mask, HDOptions(strategy="crop", trained_size=128))
    ```
    """
    request = request_from_arrays(image, mask, source)
    checked = check_size(*request.hole.shape, options, max_pixels, source=source)
    return run_plan(generator, request, plan(checked, request.hole), max_pixels)


def inpaint(generator, image: np.ndarray, mask: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Fills the holes of one image of any size with the generator run on the whole image (`original`).

    Args:
        generator: a DMFN generator (`build_generator` or `dmfn_tf.model_io.load_generator`).
        image: uint8 `[H, W, 3]` RGB.
        mask: `[H, W, 1]` or `[H, W]`, 1 = hole, 0 = known (0/255 masks too; see
            `dmfn_tf.inpaint.contract.binarise_mask`).
        max_pixels: refuse images with more pixels than this (`PixelBudgetError`).

    Returns:
        uint8 `[H, W, 3]`: generated pixels in the holes, the input's pixels everywhere else. An
        all-zero mask returns a copy of the input without running the generator.

    Example:

    ```python
    generator = build_generator(nf=4, n_blocks=1)
    image = np.zeros((30, 45, 3), np.uint8)
    mask = np.zeros((30, 45, 1), np.float32); mask[10:20, 10:30] = 1
    inpaint(generator, image, mask).shape
    # -> (30, 45, 3)
    ```
    """
    return inpaint_hd(generator, image, mask, HDOptions(strategy="original"), max_pixels=max_pixels)


def _run_model_range_batch(generator, images: np.ndarray, holes: np.ndarray, result: np.ndarray, batch: list) -> None:
    from dmfn_tf.inpaint.contract import generate, paste_holes

    cuts = [(index, slice(window.top, window.bottom), slice(window.left, window.right)) for index, window in batch]
    pixels = np.stack([images[index, rows, cols] for index, rows, cols in cuts])
    window_holes = np.stack([holes[index, rows, cols] for index, rows, cols in cuts])[..., None].astype(np.float32)
    generated = np.asarray(generate(generator, pixels, window_holes))
    for (index, rows, cols), filled in zip(cuts, generated):
        paste_holes(result[index, rows, cols], filled, holes[index, rows, cols])


def inpaint_model_range(generator, images, masks, options: HDOptions = HDOptions(strategy="original"),
                        max_pixels: int = DEFAULT_MAX_PIXELS, source: str = "image", helps: str | None = None,
                        batch_pixels: int | None = None) -> np.ndarray:
    """Composites in [-1, 1] of a batch of images in the model's range, planned and run as photos are.

    The masks are binarised once (the contract's rule), the images' size checked against the budget
    once (`check_size`), each image's holes planned (`plan`) and the windows run in batches; only
    hole pixels take the generator's values, every other value is the input's.

    Args:
        generator: a DMFN generator.
        images: float `[B, H, W, 3]` in [-1, 1].
        masks: `[B, H, W, 1]`, 1 (or > 0.5; 0/255 masks too) = hole.
        options: a strategy whose windows are not scaled (the model range has no bicubic resize).
        max_pixels: the budget of each model input (`PixelBudgetError`).
        source: the images' name in messages.
        helps: what helps when they are over the budget (default: the strategy's).
        batch_pixels: most pixels per model call (default: the whole batch, as one call).

    Returns:
        float32 `[B, H, W, 3]`, a new array.
    """
    from dmfn_tf.inpaint.contract import binarise_mask

    images = np.asarray(images, np.float32)
    holes = np.asarray(binarise_mask(masks))[..., 0] > 0.5
    checked = check_size(*images.shape[1:3], options, max_pixels, source=source, helps=helps)
    windows = [(index, window) for index, hole in enumerate(holes) for window in plan(checked, hole).windows]
    if any(window.scaled for _, window in windows):
        raise ValueError(f"strategy {checked.strategy!r} scales its windows; in the model range only unscaled "
                         "windows run (use uint8 photos: run_plan)")
    result = images.copy()
    for batch in batches(windows, max_pixels, batch_pixels or images[..., 0].size):
        _run_model_range_batch(generator, images, holes, result, batch)
    return result
