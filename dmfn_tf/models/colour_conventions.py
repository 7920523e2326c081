"""Colour conventions of the generator: how it learns each image's absolute colour (docs/design.md §2c).

The DMFN generator normalises every layer per instance and has no path from its input to its
output, so the paper's plain generator ("plain") must relearn the absolute colour of every image
from the normalised features, and a young model fills holes with a wrong global colour. Two
conventions put the colour into the model itself, as layers of the saved generator, so Keras,
SavedModel, TFLite and every loader apply them from the model file alone:

- "standardise": the known pixels' per-channel mean `mu` and deviation `sigma` standardise the
  input (`(x - mu) / sigma`, holes at 0, i.e. at the mean colour), and the output is
  `clip(mu + sigma * z, -1, 1)` with `z` the generator's linear output.
- "prefill": a pull-push pyramid fills the hole from the known pixels (smooth, in-graph, builtin
  ops only); the generator sees the prefilled image and its output is `clip(prefill + z, -1, 1)`.

In both the generator's last convolution starts at zero, so the untrained model already returns
the mean colour (standardise) or the prefill. All four layers compute in float32 whatever the
global dtype policy. Input and output of the whole generator are unchanged: `[B, H, W, 4]` =
`concat([image * (1 - mask), mask])` in, `[B, H, W, 3]` in [-1, 1] out (`dmfn_tf.inpaint.contract`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dmfn_tf.config import COLOUR_CONVENTIONS

# Pull-push levels: 2^8 = 256, so a 256² image pulls down to one pixel; larger images fall back to
# the known pixels' mean colour where a coarse cell still holds no known pixel.
PULL_PUSH_LEVELS = 8
# Smallest deviation used to standardise (in [-1, 1] units, about 2.5 levels of 255): a flat
# region must not turn the generator's output noise into visible colour noise.
MIN_DEVIATION = 0.02


def _split(inputs):
    inputs = tf.cast(inputs, tf.float32)
    return inputs[..., :3], inputs[..., 3:4]


def known_mean(values, known):
    """Per-image, per-channel mean of `values` over the known pixels (0 where none is known)."""
    total = tf.reduce_sum(values * known, axis=[1, 2], keepdims=True)
    count = tf.reduce_sum(known, axis=[1, 2], keepdims=True)
    return total / tf.maximum(count, 1.0)


def pull_push_fill(image, hole, levels: int = PULL_PUSH_LEVELS):
    """Fills the hole of `image` [B, H, W, C] from its known pixels with a pull-push pyramid.

    Pull: premultiplied colour `s = image * known` and coverage `w = known` are averaged 2x2 level
    by level. Push, from the coarsest level down: `c = s + (1 - w) * upsample(c_coarser)`, i.e. each
    cell's known share keeps its own colour and the rest comes from the coarser level; the
    coarsest level takes the known pixels' mean colour where it has no coverage. Known pixels come
    back exactly; holes get a smooth blend of the colours around them.
    """
    known = 1.0 - hole
    sums, weights = [image * known], [known]
    for _ in range(levels):
        sums.append(tf.nn.avg_pool2d(sums[-1], 2, 2, "SAME"))
        weights.append(tf.nn.avg_pool2d(weights[-1], 2, 2, "SAME"))
    filled = sums[-1] + (1.0 - weights[-1]) * known_mean(image, known)
    for level in range(levels - 1, -1, -1):
        size = tf.shape(sums[level])[1:3]
        filled = sums[level] + (1.0 - weights[level]) * tf.image.resize(filled, size, method="bilinear")
    return filled


class _Float32Layer(keras.layers.Layer):
    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package="dmfn_tf")
class KnownColourStatistics(_Float32Layer):
    """`[B, H, W, 4]` generator input -> `[B, 1, 1, 6]`: the known pixels' per-channel mean and deviation."""

    def __init__(self, min_deviation: float = MIN_DEVIATION, **kwargs):
        super().__init__(**kwargs)
        self.min_deviation = float(min_deviation)

    def call(self, inputs):
        image, hole = _split(inputs)
        known = 1.0 - hole
        mean = known_mean(image, known)
        variance = known_mean(tf.square(image - mean), known)
        deviation = tf.maximum(tf.sqrt(variance), self.min_deviation)
        return tf.concat([mean, deviation], axis=-1)

    def get_config(self):
        return {**super().get_config(), "min_deviation": self.min_deviation}


@keras.saving.register_keras_serializable(package="dmfn_tf")
class StandardiseKnown(_Float32Layer):
    """`[input, statistics]` -> the input with its known pixels standardised and its holes at 0."""

    def call(self, inputs):
        image, hole = _split(inputs[0])
        statistics = tf.cast(inputs[1], tf.float32)
        standardised = (image - statistics[..., :3]) / statistics[..., 3:] * (1.0 - hole)
        return tf.concat([standardised, hole], axis=-1)


@keras.saving.register_keras_serializable(package="dmfn_tf")
class RestoreColour(_Float32Layer):
    """`[z, statistics]` -> `clip(mean + deviation * z, -1, 1)`."""

    def call(self, inputs):
        z, statistics = tf.cast(inputs[0], tf.float32), tf.cast(inputs[1], tf.float32)
        return tf.clip_by_value(statistics[..., :3] + statistics[..., 3:] * z, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="dmfn_tf")
class PullPushPrefill(_Float32Layer):
    """`[B, H, W, 4]` generator input -> the same with the hole prefilled by `pull_push_fill`."""

    def __init__(self, levels: int = PULL_PUSH_LEVELS, **kwargs):
        super().__init__(**kwargs)
        self.levels = int(levels)

    def call(self, inputs):
        image, hole = _split(inputs)
        return tf.concat([pull_push_fill(image, hole, self.levels), hole], axis=-1)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


@keras.saving.register_keras_serializable(package="dmfn_tf")
class ResidualOverPrefill(_Float32Layer):
    """`[z, prefilled input]` -> `clip(prefill + z, -1, 1)`."""

    def call(self, inputs):
        z, prefilled = tf.cast(inputs[0], tf.float32), tf.cast(inputs[1], tf.float32)
        return tf.clip_by_value(prefilled[..., :3] + z, -1.0, 1.0)
