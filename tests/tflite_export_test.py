"""Tests for the TFLite export: accuracy of each variant, dynamic sizes, builtin ops only."""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from dmfn_tf.models.generator import build_generator
from dmfn_tf.serving.export import TFLITE_QUANTIZATIONS as QUANTIZATIONS
from dmfn_tf.serving.tflite_export import convert_to_tflite, operator_names, run_tflite

SIZE = 64


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return build_generator(nf=8, n_blocks=2)


@pytest.fixture(scope="module")
def models(generator):
    """`{(size or None, quantization): flatbuffer bytes}` for every variant."""
    return {(size, q): convert_to_tflite(generator, size=size, quantization=q) for size in (SIZE, None) for q in QUANTIZATIONS}


def _inputs(height, width, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)
    mask = np.zeros((batch, height, width, 1), np.float32)
    mask[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
    return image, mask


def _keras_composite(generator, image, mask):
    raw = generator(np.concatenate([image * (1 - mask), mask], -1)).numpy()
    return mask * raw + (1 - mask) * image


def _invoke(model, image, mask):
    """Runs a model through the plain interpreter API: resize_tensor_input, allocate, set, invoke."""
    interpreter = Interpreter(model_content=model)
    inputs = {detail["name"]: detail for detail in interpreter.get_input_details()}
    by_role = {name: next(d for key, d in inputs.items() if name in key) for name in ("image", "mask")}
    for name, value in (("image", image), ("mask", mask)):
        interpreter.resize_tensor_input(by_role[name]["index"], value.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(by_role["image"]["index"], image)
    interpreter.set_tensor(by_role["mask"]["index"], mask)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_float32_fixed_size_matches_keras(generator, models):
    image, mask = _inputs(SIZE, SIZE)
    result = run_tflite(Interpreter(model_content=models[(SIZE, "float32")]), image, mask)
    np.testing.assert_allclose(result, _keras_composite(generator, image, mask), atol=1e-4, rtol=0)


def test_fixed_size_model_with_a_resized_batch_keeps_samples_apart(generator, models):
    # Each sample's instance-norm statistics are its own, whatever the batch the interpreter runs.
    image, mask = _inputs(SIZE, SIZE, batch=3, seed=4)
    result = run_tflite(Interpreter(model_content=models[(SIZE, "float32")]), image, mask)
    for index in range(3):
        one = _keras_composite(generator, image[index : index + 1], mask[index : index + 1])
        np.testing.assert_allclose(result[index : index + 1], one, atol=1e-4, rtol=0)


def test_quantized_variants_errors_and_sizes(generator, models):
    image, mask = _inputs(SIZE, SIZE, seed=1)
    expected = _keras_composite(generator, image, mask)
    sizes, errors = {}, {}
    for q in QUANTIZATIONS:
        result = run_tflite(Interpreter(model_content=models[(SIZE, q)]), image, mask)
        sizes[q], errors[q] = len(models[(SIZE, q)]), float(np.abs(result - expected).max())
        np.testing.assert_array_equal(result[mask[..., 0] == 0], image[mask[..., 0] == 0])
        print(f"tflite {q} {SIZE}x{SIZE} nf 8 x2 blocks: {sizes[q]:,} bytes, max |diff| vs Keras {errors[q]:.2e}")
    # Loose bounds: half-precision weights change outputs by ~1e-2, int8 weights by ~1e-1 (random weights).
    assert errors["float32"] <= 1e-4
    assert errors["float16"] <= 0.1
    assert errors["int8"] <= 1.0
    assert sizes["float16"] < 0.75 * sizes["float32"]
    assert sizes["int8"] < sizes["float16"]


# TFLite's MEAN sums H * W values one after the other in float32 (TensorFlow sums pairwise), so the
# instance-norm statistics, and the difference from Keras, grow with the pixel count: measured
# 1e-5 at 32², 3e-5 at 64², 1.2e-4 at 96 x 128 and 128², 3.2e-4 at 192².
@pytest.mark.parametrize("height, width, tolerance", [(64, 64, 1e-4), (96, 128, 2.5e-4)])
def test_dynamic_model_after_resize_tensor_input(generator, models, height, width, tolerance):
    image, mask = _inputs(height, width, batch=2, seed=2)
    result = _invoke(models[(None, "float32")], image, mask)
    np.testing.assert_allclose(result, _keras_composite(generator, image, mask), atol=tolerance, rtol=0)


def test_run_tflite_pads_sizes_that_are_not_multiples_of_four(generator, models):
    image, mask = _inputs(30, 45, seed=3)
    result = run_tflite(Interpreter(model_content=models[(None, "float32")]), image, mask)
    pad = ((0, 0), (0, 2), (0, 3), (0, 0))
    expected = _keras_composite(generator, np.pad(image, pad, mode="reflect"), np.pad(mask, pad, mode="reflect"))
    np.testing.assert_allclose(result, expected[:, :30, :45], atol=1e-4, rtol=0)


def test_builtin_ops_only(models):
    for (size, q), model in models.items():
        names = operator_names(model)
        assert {"CONV_2D", "TRANSPOSE_CONV"} <= set(names), (size, q, names)
        assert not [name for name in names if name.startswith("Flex") or name == "CUSTOM"], (size, q, names)
        # The interpreter agrees on which operators the model runs.
        interpreter = Interpreter(model_content=model)
        assert {op["op_name"] for op in interpreter._get_ops_details()} <= set(names)


def test_bad_arguments():
    generator = build_generator(nf=4, n_blocks=1)
    with pytest.raises(ValueError, match="unknown quantization"):
        convert_to_tflite(generator, quantization="int4")
    with pytest.raises(ValueError, match="multiple of 4"):
        convert_to_tflite(generator, size=66)
