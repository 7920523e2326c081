"""The arithmetic counts behind every FLOP-rate ratio of the benchmarks (scripts/bench_common.py)."""

import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import bench_common  # noqa: E402

from dmfn_tf.models.generator import build_generator  # noqa: E402


def _macs_of_a_forward_pass(model, shape):
    """Sums kernel volume x output pixels over every convolution the model actually runs, from
    the shapes seen at call time (transposed convolutions: x input pixels)."""
    seen = []
    originals = {cls: cls.call for cls in (keras.layers.Conv2D, keras.layers.Conv2DTranspose)}

    def recording(cls):
        def call(self, inputs):
            outputs = originals[cls](self, inputs)
            kh, kw = self.kernel.shape[:2]
            pixels = inputs.shape[1] * inputs.shape[2] if cls is keras.layers.Conv2DTranspose else outputs.shape[1] * outputs.shape[2]
            seen.append(pixels * kh * kw * self.kernel.shape[2] * self.kernel.shape[3])
            return outputs

        return call

    try:
        for cls in originals:
            cls.call = recording(cls)
        model(np.zeros(shape, "float32"))
    finally:
        for cls, call in originals.items():
            cls.call = call
    return sum(seen), len(seen)


@pytest.mark.parametrize("block,convs_per_block", [("paper", 9), ("official", 6)])
def test_generator_macs_match_the_convolutions_keras_runs(block, convs_per_block):
    model = build_generator(nf=8, n_blocks=2, block=block)
    macs, convs = _macs_of_a_forward_pass(model, (1, 48, 64, 4))
    assert convs == 10 + 2 * convs_per_block
    assert bench_common.generator_macs(8, 2, block, 48, 64) == macs


def test_published_sizes():
    # The figures quoted for the 256² generators: about 32 G (paper) and 46 G (official) MACs.
    assert round(bench_common.generator_macs(64, 8, "paper", 256, 256) / 1e9, 1) == 32.3
    assert round(bench_common.generator_macs(64, 8, "official", 256, 256) / 1e9, 1) == 45.9


def test_vgg19_and_discriminator_macs_match_keras_models():
    from dmfn_tf.models.discriminator import build_discriminator
    from dmfn_tf.models.perceptual import build_perceptual_network

    with pytest.warns(Warning):
        vgg = build_perceptual_network(weights="none")
    macs, _ = _macs_of_a_forward_pass(vgg, (1, 64, 64, 3))
    assert bench_common.vgg19_macs(64, 64) == macs

    discriminator = build_discriminator(nf=8, image_size=64)
    seen = []
    original = keras.layers.Conv2D.call

    def call(self, inputs):
        outputs = original(self, inputs)
        seen.append(outputs.shape[1] * outputs.shape[2] * int(np.prod(self.kernel.shape)))
        return outputs

    keras.layers.Conv2D.call = call
    try:
        discriminator([np.zeros((1, 32, 32, 3), "float32"), np.zeros((1, 64, 64, 3), "float32")])
    finally:
        keras.layers.Conv2D.call = original
    dense = sum(int(np.prod(layer.kernel.shape)) for layer in discriminator.layers if isinstance(layer, keras.layers.Dense))
    assert bench_common.discriminator_macs(8, 64) == sum(seen) + dense


def test_interleaved_times_prefers_reported_seconds_and_skips_warmup():
    calls = []
    times = bench_common.interleaved_times({"a": lambda: calls.append("a") or 0.25, "b": lambda: calls.append("b")}, repeats=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert times["a"] == [0.25] * 3
    assert len(times["b"]) == 3 and all(0 <= t < 1 for t in times["b"])
