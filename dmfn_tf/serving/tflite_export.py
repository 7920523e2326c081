"""TFLite models of the generator: float32, float16 and dynamic-range int8, fixed or dynamic size.

Each model takes `image` float32 `[B, H, W, 3]` in [-1, 1] and `mask` float32 `[B, H, W, 1]`
(1 = hole) and returns `inpainted` float32 `[B, H, W, 3]`, the composite of the package's
inpainting contract (`dmfn_tf.inpaint.contract.inpaint_float`, traced into the model).

- fixed size (`size=256`): inputs `[1, size, size, *]`; the batch can be resized.
- dynamic size (`size=None`): any batch, height and width (the reflection padding to multiples of
  4 and the crop are in the model); call `resize_tensor_input` before `allocate_tensors` (the
  signature runner that `run_tflite` uses does this itself).

Quantisation variants: `float32` (none), `float16` (weights stored as float16, dequantised to
float32 at load time), `int8` (dynamic range: int8 weights, activations quantised on the fly
where the kernel supports it; the converter leaves tensors under 1,024 elements in float32). Only TFLite builtin operators are allowed (no Flex ops), so the
models run with the plain `ai_edge_litert` interpreter.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from dmfn_tf.inpaint.contract import SIZE_MULTIPLE, inpaint_float
from dmfn_tf.serving.export import TFLITE_QUANTIZATIONS



def _inpainting_function(generator, size: int | None):
    """A `tf.function` with named inputs computing the composite, the weights frozen into constants."""
    spatial = (size, size) if size else (None, None)
    # The fixed-size model is traced at batch 1: fully static shapes let XNNPACK run every layer
    # (a dynamic batch leaves the transposed convs to TFLite's slower kernel). Its instance norms
    # then take the one-sample path, so its batch must stay 1: `run_tflite` feeds it sample by
    # sample. The dynamic model keeps an unknown batch and takes any.
    batch = 1 if size else None
    input_signature = [
        tf.TensorSpec((batch, *spatial, 3), tf.float32, name="image"),
        tf.TensorSpec((batch, *spatial, 1), tf.float32, name="mask"),
    ]

    @tf.function(input_signature=input_signature)
    def composite(image, mask):
        return inpaint_float(generator, image, mask)

    # Left as resource variables, the weights reach the TFLite file as variables that the converter
    # neither quantises nor initialises (the model outputs NaN); frozen, they are constants.
    frozen = convert_variables_to_constants_v2(composite.get_concrete_function())

    @tf.function(input_signature=input_signature)
    def inpaint(image, mask):
        return {"inpainted": frozen(image, mask)[0]}

    return inpaint


def convert_to_tflite(generator, size: int | None = 256, quantization: str = "float32") -> bytes:
    """Converts the generator (with compositing) to a TFLite flatbuffer of builtin ops only.

    Args:
        generator: a DMFN generator.
        size: the fixed square input side (a multiple of `SIZE_MULTIPLE`), or None for a dynamic-size
            model.
        quantization: "float32", "float16" or "int8" (dynamic-range).

    Returns:
        The `.tflite` file's bytes.

    Example:

    ```python
    open("dmfn_256_float16.tflite", "wb").write(convert_to_tflite(generator, 256, "float16"))
    ```
    """
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {TFLITE_QUANTIZATIONS}")
    if size is not None and (size <= 0 or size % SIZE_MULTIPLE):
        raise ValueError(f"size must be a positive multiple of {SIZE_MULTIPLE}, got {size}")
    function = _inpainting_function(generator, size)
    # A trackable owner makes the converter keep the function's signature (input and output names).
    owner = tf.Module()
    owner.inpaint = function
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], owner)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def operator_names(model_content: bytes) -> list[str]:
    """Names of the operators a TFLite flatbuffer uses: builtin names, or the custom code of custom ops.

    Flex (TensorFlow) ops are custom ops named `Flex<Op>`; a model of builtins only lists none.

    Args:
        model_content: a `.tflite` file's bytes.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    builtin_names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAs(bytearray(model_content), 0)
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(code.CustomCode().decode())
        else:
            names.append(builtin_names[builtin])
    return sorted(names)


def run_tflite(interpreter, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Runs a model from `convert_to_tflite` on a batch.

    The signature runner resizes the inputs to the batch: a dynamic model takes any size, a
    fixed-size model only its own.

    Args:
        interpreter: an `ai_edge_litert.interpreter.Interpreter` of the model.
        image: float32 `[B, H, W, 3]` in [-1, 1].
        mask: float32 `[B, H, W, 1]`, 1 = hole.

    Returns:
        float32 `[B, H, W, 3]`: the composite.

    Example:

    ```python
    interpreter = Interpreter(model_path="saved_models/dmfn_dynamic_float32.tflite")
    run_tflite(interpreter, image, mask).shape
    ```
    """
    image, mask = np.ascontiguousarray(image, np.float32), np.ascontiguousarray(mask, np.float32)
    runner = interpreter.get_signature_runner()
    if interpreter.get_input_details()[0]["shape_signature"][0] == 1:  # a fixed-size model: batch 1 only
        outputs = np.concatenate(
            [runner(image=image[i : i + 1], mask=mask[i : i + 1])["inpainted"] for i in range(len(image))]
        )
    else:
        outputs = runner(image=image, mask=mask)["inpainted"]
    return outputs
