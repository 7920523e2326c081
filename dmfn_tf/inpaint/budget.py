"""The pixel budget: how many pixels one model input may have, checked before any work.

A forward pass keeps several full-resolution feature maps of `nf` channels alive. Measured on CPU
with the default generator (nf 64, 8 blocks, float32): peak memory grows by about 5 KiB per pixel
(1.3 GiB at 512 x 512), so a model input of more than `max_pixels` pixels (default
`DEFAULT_MAX_PIXELS`, 1024 x 1024, about 5 GiB) is refused with a `PixelBudgetError` before any
work, instead of running out of memory half-way. The message names what would help.

Example:

```python
check_pixel_budget(2000, 3000, DEFAULT_MAX_PIXELS, source="photo.png", helps="use --hd-strategy crop")
# PixelBudgetError: photo.png: 3000x2000 = 6,000,000 pixels exceeds the budget of 1,048,576 pixels (...)
```
"""

from __future__ import annotations

from dmfn_tf.errors import UserError

DEFAULT_MAX_PIXELS = 1024 * 1024
RAISE_BUDGET = "raise it with --max-pixels / max_pixels= if the machine has the memory"


class PixelBudgetError(UserError):
    """A model input would have more pixels than the configured budget allows."""


def check_pixel_budget(height: int, width: int, max_pixels: int, source: str = "image", helps: str = "") -> None:
    """Raises `PixelBudgetError` when `height * width` exceeds `max_pixels`.

    Args:
        height: the model input's height in pixels.
        width: the model input's width in pixels.
        max_pixels: the budget; see the module docstring for what it protects.
        source: the file or name to put in the message.
        helps: what else would help, said before raising the budget (e.g. another strategy).
    """
    if height * width > max_pixels:
        remedies = f"{helps}, or {RAISE_BUDGET}" if helps else RAISE_BUDGET
        raise PixelBudgetError(
            f"{source}: {width}x{height} = {height * width:,} pixels exceeds the budget of {max_pixels:,} pixels "
            f"({remedies})"
        )
