"""From a photo and its mask to the filled photo: one way, for the CLI, the page, the evaluation and Python.

A request (photo + mask) is decoded once, its mask binarised once, its size checked against the
pixel budget once, then planned by a registered strategy and run:

| module | holds |
|---|---|
| `contract` | the inpainting contract: pixels <-> model range, the mask rule, padding, generator input, composite |
| `budget` | the pixel budget (`DEFAULT_MAX_PIXELS`, `check_pixel_budget`, `PixelBudgetError`) |
| `png_strips` | 8-bit PNGs decoded strip by strip (Pillow's pixels, one strip in memory) and written strip by strip |
| `files` | reading user files: photos (`read_image`, `decode_photo`, `rgb_strips`), masks as holes (`read_holes`); writing PNGs; headers are `dmfn_tf.input_limits.image_header`'s |
| `request` | `InpaintRequest`: the decoded photo and its holes, made once (`read_request`, `request_from_arrays`) |
| `windows` | the geometry of model inputs: `Window`, crop windows around holes, scaled holes |
| `strategies` | `HDOptions` and the registry of strategies (`original`, `crop`, `resize`; `register_strategy`) |
| `planner` | the one budget check (`check_size`) and the plan of a request (`plan`) |
| `runner` | runs a plan, window batches through the contract, compositing into the photo (`run_plan`, `inpaint_hd`), or into images in [-1, 1] (`inpaint_model_range`, the evaluation's) |
| `streamed` | a plan run on a photo file without holding the photo: windows gathered, filled, pasted into its strips (`dmfn inpaint`) |
| `precision` | reduced-precision (bfloat16) copies of a generator for faster inference |

This file imports nothing, so that importing `dmfn_tf.inpaint.contract` (the training and the exports
do) loads only the contract.

Example:

```python
from dmfn_tf.inpaint.runner import inpaint_hd
from dmfn_tf.inpaint.strategies import HDOptions
result = inpaint_hd(generator, photo, mask, HDOptions(strategy="crop", trained_size=256))
```
"""
