"""The dense multi-scale fusion block (DMFB), in the paper's and in the reference code's variant."""

from __future__ import annotations

import keras
from keras import ops

from dmfn_tf.config import BLOCK_VARIANTS
from dmfn_tf.models.layers import InstanceNormalization, PaddedConv2D

DILATIONS = (1, 2, 4, 8)


@keras.saving.register_keras_serializable(package="dmfn_tf")
class DMFB(keras.layers.Layer):
    """Dense multi-scale fusion block.

    With `C` input channels and inner width `c = C // 4`:

    `variant="paper"` (docs/design.md §2a, the paper's Fig. 2):
        h = ReLU(IN(conv3x3(x)));  x_i = ReLU(IN(conv3x3_dil(h, d_i))) for d = 1, 2, 4, 8;
        y1 = x1, y_i = K_i(y_{i-1} + x_i) with K_i a plain 3x3 conv;
        out = x + IN(conv1x1(ReLU(IN(concat[y1..y4])))).
    `variant="official"` (docs/design.md §2b, the authors' code and published checkpoints):
        h = ReLU(IN(conv3x3(x)));  d_i = conv3x3_dil(h, d_i) (no norm, no activation);
        cumulative sums d1, d1+d2, d1+d2+d3, d1+..+d4 (no K_i);
        out = x + IN(conv3x3(ReLU(IN(concat[...])))).

    Sub-layer names follow the reference checkpoints where they exist (`c1`, `d1`..`d4`, `c2`) so
    that the weight mapping is one line per tensor; the paper's extra convs are `k2`..`k4`.

    Args:
        channels: `C`, the number of input and output channels (a multiple of 4).
        variant: "paper" or "official".
        use_combination: paper variant only; `False` drops the K_i convs (the paper's Table 2
            "w/o K_i" ablation: then y_i = y_{i-1} + x_i).
        **kwargs: standard layer arguments.

    Example:

    ```python
    block = DMFB(64, variant="paper")
    block(keras.random.normal((1, 16, 16, 64))).shape
    # -> (1, 16, 16, 64)
    ```

    Reference:
        Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609, Section 3.1 and Fig. 2.
    """

    def __init__(self, channels: int, variant: str = "paper", use_combination: bool = True, **kwargs):
        super().__init__(**kwargs)
        if variant not in BLOCK_VARIANTS:
            raise ValueError(f"unknown DMFB variant {variant!r}; expected one of {BLOCK_VARIANTS}")
        if channels <= 0 or channels % 4:
            raise ValueError(f"DMFB channels must be a positive multiple of 4, got {channels}")
        self.channels = channels
        self.variant = variant
        self.use_combination = use_combination
        inner = channels // 4
        # The inner layers take the block's dtype policy: a block loaded from a file saved under
        # mixed precision would otherwise mix its own bfloat16 with float32 inner layers.
        policy = self.dtype_policy
        self.c1 = PaddedConv2D(inner, 3, name="c1", dtype=policy)
        self.dilated = [PaddedConv2D(inner, 3, dilation_rate=d, name=f"d{i + 1}", dtype=policy) for i, d in enumerate(DILATIONS)]
        if variant == "paper":
            self.combination = (
                [PaddedConv2D(inner, 3, name=f"k{i}", dtype=policy) for i in (2, 3, 4)] if use_combination else []
            )
            self.c2 = PaddedConv2D(channels, 1, name="c2", dtype=policy)
        else:
            self.combination = []
            self.c2 = PaddedConv2D(channels, 3, name="c2", dtype=policy)
        self.norm = InstanceNormalization(name="norm", dtype=policy)

    def build(self, input_shape):
        inner_shape = tuple(input_shape[:-1]) + (self.channels // 4,)
        self.c1.build(input_shape)
        for conv in self.dilated + self.combination:
            conv.build(inner_shape)
        self.c2.build(tuple(input_shape[:-1]) + (self.channels,))
        self.built = True

    def _in_relu(self, x):
        return ops.relu(self.norm(x))

    def call(self, inputs):
        h = self._in_relu(self.c1(inputs))
        if self.variant == "paper":
            branches = [self._in_relu(conv(h)) for conv in self.dilated]
            fused = [branches[0]]
            for i, branch in enumerate(branches[1:]):
                combined = fused[-1] + branch
                fused.append(self.combination[i](combined) if self.use_combination else combined)
        else:
            branches = [conv(h) for conv in self.dilated]
            fused = [branches[0]]
            for branch in branches[1:]:
                fused.append(fused[-1] + branch)
        z = self._in_relu(ops.concatenate(fused, axis=-1))
        return inputs + self.norm(self.c2(z))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "variant": self.variant,
            "use_combination": self.use_combination,
        }
