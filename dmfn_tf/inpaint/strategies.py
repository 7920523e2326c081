"""How photos larger than the model's training scale are inpainted: `HDOptions` and the strategy registry.

A DMFN generator is trained on small squares (the paper's 256², the demo's 128²) with holes of
about half the side. Run on a 12-megapixel photo as a whole (`original`), it fills a small hole at
a scale it never saw, and its memory grows with the photo, so the pixel budget refuses it. The
other strategies run the model on small images instead. Every strategy only says which windows of
the photo the model sees and at what size (`dmfn_tf.inpaint.windows.Window`); the runner
(`dmfn_tf.inpaint.runner`) runs them through the inpainting contract and writes only hole pixels,
so every known pixel of the photo stays bit for bit.

- `original`: the whole image through the model at its own size.
- `crop`: a window around each group of hole regions (`dmfn_tf.inpaint.windows.crop_windows`),
  scaled down to `trained_size` on its longer side when larger; specks (dust, a scatter of
  one-pixel holes) near one another share a window. Memory is bounded by the windows.
- `resize`: the whole photo scaled down so that its longer side is at most `resize_limit`.

`auto` (the default) is the rule: `original` when the photo's longer side is at most
`crop_trigger` (default 1024, the side of the default pixel budget), `crop` above it.

Adding a strategy (an extension point): one function from a hole mask to its windows, one from an
image size to the largest model input it can lead to (the pixel budget is checked with it before
anything is decoded), and one `register_strategy` call; `dmfn inpaint --hd-strategy` and `dmfn app`
offer it. Everything said of a strategy is a field of its registration: its help, what helps when
it is over the budget, what helps when it runs out of memory.

Example:

```python
def whole_at_half(hole, options):
    return [whole_image(*hole.shape, longest=max(hole.shape) // 2)]

register_strategy(HDStrategy("half", "the image at half its size", whole_at_half,
                             lambda height, width, options: scaled_size(height, width, max(height, width) // 2)))
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.windows import Window, crop_windows, scaled_size, whole_image

AUTO = "auto"
DEFAULT_TRAINED_SIZE = 256
DEFAULT_CROP_TRIGGER = 1024
DEFAULT_CROP_MARGIN = 64
DEFAULT_RESIZE_LIMIT = 1024


class HDOptionError(UserError):
    """A high-resolution option has an invalid value."""


@dataclass(frozen=True)
class HDStrategy:
    """A registered way to choose the model's inputs for a photo.

    Attributes:
        name: what `--hd-strategy` and the page call it.
        help: one phrase for `--hd-strategy`'s help.
        windows: `(hole bool [H, W], options) -> [Window, ...]` for a mask with at least one hole.
        largest_input: `(height, width, options) -> (height, width)`, the largest model input the
            strategy can lead to for an image of this size (no mask needed).
        over_budget: what helps when that input is over the pixel budget (said before raising the
            budget, `dmfn_tf.inpaint.planner.check_size`).
        out_of_memory: what lowers the memory of a request that ran out of it (`dmfn inpaint`).
    """

    name: str
    help: str
    windows: Callable[[np.ndarray, "HDOptions"], list[Window]]
    largest_input: Callable[[int, int, "HDOptions"], tuple[int, int]]
    over_budget: str = ""
    out_of_memory: str = "lower --max-pixels (smaller model calls), or downscale the photo"


_REGISTRY: dict[str, HDStrategy] = {}


def register_strategy(strategy: HDStrategy) -> HDStrategy:
    """Adds `strategy` to the registry (replacing one of the same name) and returns it."""
    if strategy.name == AUTO:
        raise ValueError(f"{AUTO!r} is the rule that picks a strategy, not a strategy")
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister_strategy(name: str) -> None:
    """Removes a registered strategy (tests register toy ones)."""
    _REGISTRY.pop(name, None)


def strategy_names() -> tuple[str, ...]:
    """`auto` and every registered strategy, in registration order."""
    return (AUTO, *_REGISTRY)


def registered() -> tuple[HDStrategy, ...]:
    """The registered strategies, in registration order."""
    return tuple(_REGISTRY.values())


def get_strategy(name: str) -> HDStrategy:
    """The registered strategy `name` (not `auto`: see `HDOptions.resolve`)."""
    return _REGISTRY[name]


@dataclass(frozen=True)
class HDOptions:
    """How to inpaint images larger than the model's training scale (see the module docstring).

    Args:
        strategy: "auto" or a registered strategy ("original", "crop", "resize", ...).
        trained_size: the side of the squares the model was trained on; `crop` scales windows to it.
        crop_trigger: with "auto", images whose longer side is above this use `crop`.
        crop_margin: the least context, in photo pixels, around each hole region for `crop`.
        resize_limit: the longest side of the image the model sees with `resize`.

    Example:

    ```python
    HDOptions(strategy="resize", resize_limit=768)
    ```
    """

    strategy: str = AUTO
    trained_size: int = DEFAULT_TRAINED_SIZE
    crop_trigger: int = DEFAULT_CROP_TRIGGER
    crop_margin: int = DEFAULT_CROP_MARGIN
    resize_limit: int = DEFAULT_RESIZE_LIMIT

    def __post_init__(self):
        if self.strategy not in strategy_names():
            raise HDOptionError(f"unknown high-resolution strategy {self.strategy!r}; "
                                f"choose one of {', '.join(strategy_names())}")
        for name in ("trained_size", "crop_trigger", "resize_limit"):
            if getattr(self, name) < 1:
                raise HDOptionError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.crop_margin < 0:
            raise HDOptionError(f"crop-margin must be 0 or more, got {self.crop_margin}")

    def resolve(self, height: int, width: int) -> str:
        """The strategy used for an image of this size ("auto" resolved by the rule above)."""
        if self.strategy != AUTO:
            return self.strategy
        return "crop" if max(height, width) > self.crop_trigger else "original"


register_strategy(HDStrategy(
    "original", "the whole image through the model",
    windows=lambda hole, options: [whole_image(*hole.shape, longest=max(hole.shape))],
    largest_input=lambda height, width, options: (height, width),
    over_budget="use --hd-strategy crop (a window around each hole) or resize",
    out_of_memory="use --hd-strategy crop or resize, or a lower --max-pixels",
))
register_strategy(HDStrategy(
    "crop", "a window around each group of holes, scaled to --trained-size",
    windows=lambda hole, options: crop_windows(hole, options.trained_size, options.crop_margin),
    largest_input=lambda height, width, options: (min(height, options.trained_size), min(width, options.trained_size)),
    over_budget="lower --trained-size",
    out_of_memory="lower --trained-size or --max-pixels (smaller model calls), or downscale the photo",
))
register_strategy(HDStrategy(
    "resize", "the image scaled to --resize-limit, only the hole pasted back",
    windows=lambda hole, options: [whole_image(*hole.shape, longest=options.resize_limit)],
    largest_input=lambda height, width, options: scaled_size(height, width, options.resize_limit),
    over_budget="lower --resize-limit or use --hd-strategy crop",
    out_of_memory="lower --resize-limit, or use --hd-strategy crop",
))
