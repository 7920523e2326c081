"""The planner every entry point calls: one budget check per request, then the windows of its strategy.

1. `check_size(height, width, options, max_pixels, source)`: the strategy for an image of this size
   (`auto` resolved) and the one pixel-budget check, on the largest model input the strategy can
   lead to. Known from the size alone, so `dmfn inpaint` calls it from the headers before anything
   is decoded; its result (`CheckedSize`) is what `plan` needs, so no plan exists unchecked.
2. `plan(checked, hole)`: the windows the model runs on (`Plan`); none when there is no hole.

`dmfn inpaint`, `dmfn app`, `dmfn evaluate` (`dmfn_tf.evaluation.report.generator_inpaint_fn`, through
`dmfn_tf.inpaint.runner.inpaint_model_range`) and `dmfn_tf.inpaint.runner.inpaint_hd` all go through these two.

The refusal names what helps, as the strategy's registration says (`HDStrategy.over_budget`):
`original` over the budget suggests `--hd-strategy crop` or `resize`; a `crop` window a smaller
`--trained-size`; `resize` a smaller `--resize-limit`.

Example:

```python
checked = check_size(3000, 4000, HDOptions(strategy="crop", trained_size=256), max_pixels=1024 * 1024)
windows = plan(checked, hole).windows
```
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dmfn_tf.inpaint.budget import check_pixel_budget
from dmfn_tf.inpaint.strategies import HDOptions, get_strategy
from dmfn_tf.inpaint.windows import Window

class CheckedSize(NamedTuple):
    """An image size whose model inputs under `options` were checked against the budget."""

    height: int
    width: int
    strategy: str
    options: HDOptions


class Plan(NamedTuple):
    """What the model runs on for one request: the strategy and its windows (none: nothing to fill)."""

    strategy: str
    windows: list[Window]

    def describe(self) -> str:
        """One line: the strategy and the model's inputs."""
        inputs = ", ".join(f"{w.model_width}x{w.model_height}" for w in self.windows)
        count = len(self.windows)
        return f"{self.strategy} strategy: the model ran on {count} input{'s' if count != 1 else ''} ({inputs})"


def _input_name(source: str, strategy: str) -> str:
    return source if strategy == "original" else f"{source} ({strategy} strategy, the model's input)"


def check_size(height: int, width: int, options: HDOptions, max_pixels: int, source: str = "image",
               helps: str | None = None) -> CheckedSize:
    """The strategy for an image of this size, its largest model input checked against `max_pixels`.

    `helps` says what would help when it is over the budget (default: the strategy's `over_budget`).

    Raises:
        PixelBudgetError: the model's input could exceed `max_pixels`; `original` names the image,
            the other strategies the model's input, and the message says what would help.
    """
    strategy = options.resolve(height, width)
    registration = get_strategy(strategy)
    model_height, model_width = registration.largest_input(height, width, options)
    check_pixel_budget(model_height, model_width, max_pixels, source=_input_name(source, strategy),
                       helps=registration.over_budget if helps is None else helps)
    return CheckedSize(height, width, strategy, options)


def plan(checked: CheckedSize, hole: np.ndarray) -> Plan:
    """The windows the model runs on for `hole` (bool `[H, W]` of the checked size)."""
    if hole.shape != (checked.height, checked.width):
        raise ValueError(f"a hole of {hole.shape} for a checked size of {(checked.height, checked.width)}")
    if not hole.any():
        return Plan(checked.strategy, [])
    registration = get_strategy(checked.strategy)
    windows = registration.windows(hole, checked.options)
    largest = registration.largest_input(checked.height, checked.width, checked.options)
    for window in windows:  # a strategy's windows stay within the size it declared (what the budget checked)
        if window.model_height * window.model_width > largest[0] * largest[1]:
            raise ValueError(f"strategy {checked.strategy!r} planned a {window.model_width}x{window.model_height} "
                             f"input, larger than its declared {largest[1]}x{largest[0]}")
    return Plan(checked.strategy, windows)
