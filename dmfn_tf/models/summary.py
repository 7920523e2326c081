"""Parameter and multiply-accumulate counts of the DMFN models (`dmfn summary`)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dmfn_tf.config import ExperimentConfig
from dmfn_tf.models.dmfb_layers import DMFB
from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.models.generator import build_generator


def count_parameters(model, trainable_only: bool = False) -> int:
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(np.prod(w.shape) for w in weights))


def count_macs(model, input_shapes) -> int:
    """Multiply-accumulates of the convolutions and dense layers of one forward pass.

    Traces the model at fixed input shapes and reads every Conv2D, transposed convolution and MatMul
    of the graph, so whatever TensorFlow lowers a layer to (e.g. a dilated conv to
    SpaceToBatch + Conv2D) is counted as it runs. Element-wise work (norms, activations) is left out.

    Args:
        model: a Keras model.
        input_shapes: one shape (tuple) per model input, batch included.
    """
    specs = [tf.TensorSpec(shape, tf.float32) for shape in input_shapes]
    inputs = specs[0] if len(specs) == 1 else specs
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(inputs).graph
    total = 0
    for op in graph.get_operations():
        if op.type in ("Conv2D", "DepthwiseConv2dNative"):
            kernel = op.inputs[1].shape
            total += int(np.prod(op.outputs[0].shape)) * int(np.prod(kernel[:3]))
        elif op.type == "Conv2DBackpropInput":  # transposed conv: every input pixel meets the whole kernel
            kernel = op.inputs[1].shape
            total += int(np.prod(op.inputs[2].shape)) * int(np.prod(kernel[:2])) * int(kernel[2])
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape, op.outputs[0].shape
            total += int(np.prod(b)) * int(a[-1])
    return total


def summarize(cfg: ExperimentConfig) -> dict:
    """The figures `dmfn summary` prints, as a dict."""
    m = cfg.model
    generator = build_generator(**m.generator_kwargs())
    discriminator = build_discriminator(**m.discriminator_kwargs())
    block = DMFB(4 * m.nf, variant=m.block)
    block.build((None, m.image_size // 4, m.image_size // 4, 4 * m.nf))
    size = m.image_size
    return {
        "block": m.block,
        "nf": m.nf,
        "n_blocks": m.n_blocks,
        "image_size": size,
        "generator_parameters": count_parameters(generator),
        "dmfb_parameters": count_parameters(block),
        "discriminator_parameters_trainable": count_parameters(discriminator, trainable_only=True),
        "generator_macs": count_macs(generator, [(1, size, size, 4)]),
    }
