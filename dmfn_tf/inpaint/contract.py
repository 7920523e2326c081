"""The inpainting contract: how an image and a mask become the generator's input and the result.

Every caller (`dmfn_tf.inpaint.runner`, the evaluation protocol, the SavedModel signatures, the
TFLite models, the training image summaries) goes through these functions, written in TensorFlow
so that they run eagerly on NumPy arrays and trace into SavedModel and TFLite graphs alike.

- pixels: uint8 `[0, 255]` <-> float32 `[-1, 1]` as `x / 127.5 - 1` and back with
  `to_uint8` (`clip(round((x + 1) * 127.5), 0, 255)` in float32, rounding half to even).
- mask rule (`binarise_mask`): 1 = hole. A mask whose largest value exceeds 1 is a 0/255 mask and
  is divided by 255 (per image); then values > 0.5 are holes (anti-aliased edges split at half
  intensity). The result is float32 {0, 1}.
- size: the generator's sides must be multiples of `SIZE_MULTIPLE` (two stride-2 stages). Other
  sizes are padded at the bottom and on the right by reflection without the edge pixel
  (`[a b c] -> [a b c b a ...]`), repeated when the padding is longer than the side (a side of 1
  repeats its pixel), and the output is cropped back. This is the only padding mode.
- generator input: `concat([image * (1 - mask), mask])`, image in [-1, 1].
- composite: `mask * output + (1 - mask) * image`: generated pixels in the holes, the known pixels
  elsewhere (bit for bit in `inpaint_uint8`; `paste_holes` writes generated uint8 pixels into a
  photo in place, for the strategies that run the model on windows of it).

Tolerances between runtimes (tested in `tests/inpaint_contract_test.py`). Eager calls
(`dmfn_tf.inpaint.runner.inpaint`, the evaluation protocol) give identical composites. The SavedModel's
graph and the TFLite model compute the same float composite up to float32 summation order: measured
with a tiny generator, at most 1.2e-5 (SavedModel) and 7e-6 (TFLite) at 61 x 83, 3.5e-5 and 4.6e-5
at 127 x 129, growing with the pixel count (TFLite's instance-norm means sum sequentially; 3e-4 at
192²), so a rounded pixel can land one 8-bit level apart where the float sits next to a half. Known
pixels are the input's, bit for bit, everywhere.

Example:

```python
hole = binarise_mask(mask)                          # [B, H, W, 1] float32 {0, 1}
out = inpaint_uint8(generator, image_uint8, hole)   # [B, H, W, 3] uint8, any H and W
```
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Sides of the generator's input must be multiples of this (two stride-2 stages).
SIZE_MULTIPLE = 4


def to_model_range(image_uint8) -> tf.Tensor:
    """uint8 `[0, 255]` -> float32 `[-1, 1]`: `x / 127.5 - 1`."""
    return tf.cast(image_uint8, tf.float32) / 127.5 - 1.0


def to_uint8(image) -> tf.Tensor:
    """float `[-1, 1]` -> uint8: `clip(round((x + 1) * 127.5), 0, 255)` in float32, half to even.

    Images that came from uint8 through `to_model_range` map back to the same pixels.
    """
    scaled = (tf.cast(image, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


def binarise_mask(mask) -> tf.Tensor:
    """float32 {0, 1} holes from a `[B, H, W, 1]` 0/1 or 0/255 mask (the module's mask rule)."""
    mask = tf.cast(mask, tf.float32)
    scale = tf.where(tf.reduce_max(mask, axis=[1, 2, 3], keepdims=True) > 1.0, 1.0 / 255.0, 1.0)
    return tf.cast(mask * scale > 0.5, tf.float32)


def padded_size(size):
    """The smallest multiple of `SIZE_MULTIPLE` that is at least `size` (an int or a scalar tensor)."""
    return -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE


def reflect_indices(size, padded):
    """Source indices of the reflection padding of an axis of `size` to `padded` (at the end).

    Args:
        size: length of the axis, at least 1 (int or scalar int32 tensor).
        padded: length after padding, at least `size`.
    """
    period = tf.maximum(2 * (size - 1), 1)
    phase = tf.range(padded) % period
    return tf.where(phase < size, phase, period - phase)


def _static_multiple(dimension) -> bool:
    return dimension is not None and dimension % SIZE_MULTIPLE == 0


def pad_to_multiple(images) -> tf.Tensor:
    """Pads `[B, H, W, C]` at the bottom and right by reflection to sides that are multiples of 4.

    Sides known to be multiples already (static shapes) add no operation to the graph.
    """
    images = tf.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    if not _static_multiple(height):
        size = tf.shape(images)[1]
        images = tf.gather(images, reflect_indices(size, padded_size(size)), axis=1)
    if not _static_multiple(width):
        size = tf.shape(images)[2]
        images = tf.gather(images, reflect_indices(size, padded_size(size)), axis=2)
    return images


def generator_input(image, mask) -> tf.Tensor:
    """`concat([image * (1 - mask), mask])`: the generator's 4-channel input."""
    return tf.concat([image * (1.0 - mask), mask], axis=-1)


def composite(raw_output, image, mask) -> tf.Tensor:
    """The image users see: `mask * raw_output + (1 - mask) * image`."""
    return mask * raw_output + (1.0 - mask) * image


def generate(generator, image, hole, training: bool = False) -> tf.Tensor:
    """The raw generator output `[B, H, W, 3]` for any H and W (padded, run, cropped back).

    Args:
        generator: a DMFN generator (`[B, H, W, 4]` -> `[B, H, W, 3]`).
        image: float32 `[B, H, W, 3]` in [-1, 1].
        hole: float32 `[B, H, W, 1]` {0, 1} (see `binarise_mask`).
        training: passed to the generator.
    """
    image, hole = tf.cast(image, tf.float32), tf.cast(hole, tf.float32)
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    raw = generator(pad_to_multiple(generator_input(image, hole)), training=training)
    return tf.cast(raw, tf.float32)[:, :height, :width, :]


def inpaint_float(generator, image, mask) -> tf.Tensor:
    """The composite in [-1, 1] of float images `[B, H, W, 3]` in [-1, 1] and masks `[B, H, W, 1]`."""
    image, hole = tf.cast(image, tf.float32), binarise_mask(mask)
    return composite(generate(generator, image, hole), image, hole)


def generate_uint8(generator, image, hole) -> tf.Tensor:
    """The generated pixels as uint8 `[B, H, W, 3]`, for uint8 images and holes already binary.

    Args:
        generator: a DMFN generator.
        image: uint8 `[B, H, W, 3]`.
        hole: `[B, H, W, 1]` {0, 1} (bool or numbers): the mask rule was applied already, once.
    """
    hole = tf.cast(hole, tf.float32)
    return to_uint8(generate(generator, to_model_range(tf.convert_to_tensor(image, tf.uint8)), hole))


def inpaint_uint8(generator, image, mask) -> tf.Tensor:
    """uint8 composites of uint8 images `[B, H, W, 3]`: known pixels are the input's, bit for bit."""
    image = tf.convert_to_tensor(image, tf.uint8)
    hole = binarise_mask(mask)
    generated = generate_uint8(generator, image, hole)
    return tf.where(tf.broadcast_to(hole > 0.5, tf.shape(image)), generated, image)


def paste_holes(photo: np.ndarray, generated: np.ndarray, hole: np.ndarray) -> None:
    """The uint8 composite in place: `photo[hole] = generated[hole]`, every other pixel left as it is.

    Args:
        photo: writable uint8 `[H, W, 3]` (a window of a larger photo, as a view, works too).
        generated: uint8 `[H, W, 3]`, the generated pixels.
        hole: bool `[H, W]`, True = hole.
    """
    photo[hole] = generated[hole]
