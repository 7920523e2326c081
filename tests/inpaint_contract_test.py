"""The inpainting contract (dmfn_tf.inpaint.contract): conversions, mask rule, padding, composite."""

import numpy as np
import pytest

from dmfn_tf.inpaint.contract import binarise_mask, composite, generator_input, pad_to_multiple, to_model_range, to_uint8


def test_to_uint8_inverts_the_input_scaling_and_clips():
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(to_uint8(to_model_range(pixels))), pixels)
    np.testing.assert_array_equal(np.asarray(to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 1.2]))), [0, 0, 128, 255, 255])


def test_binarise_mask_takes_01_and_0255_masks_per_image():
    masks = np.zeros((3, 2, 2, 1), np.float32)
    masks[0, 0, 0] = 1.0      # 0/1 mask
    masks[1, 0, 0] = 255.0    # 0/255 mask: 100 is below half intensity
    masks[1, 1, 1] = 100.0
    masks[2, 0, 0] = 0.6      # anti-aliased 0/1 mask: split at 0.5
    masks[2, 1, 1] = 0.4
    expected = np.zeros_like(masks)
    expected[:, 0, 0] = 1.0
    np.testing.assert_array_equal(np.asarray(binarise_mask(masks)), expected)


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (8, 6), (61, 83)])
def test_pad_to_multiple_is_numpy_reflect_padding(height, width):
    images = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype(np.float32)
    pad = ((0, 0), (0, -height % 4), (0, -width % 4), (0, 0))
    np.testing.assert_array_equal(np.asarray(pad_to_multiple(images)), np.pad(images, pad, mode="reflect" if min(height, width) > 1 else "edge"))


def test_generator_input_and_composite():
    rng = np.random.default_rng(1)
    image, raw = rng.uniform(-1, 1, (2, 1, 4, 3, 3)).astype(np.float32)
    mask = (rng.uniform(size=(1, 4, 3, 1)) > 0.5).astype(np.float32)
    x = np.asarray(generator_input(image, mask))
    np.testing.assert_array_equal(x[..., :3], np.where(mask > 0, 0.0, image))
    np.testing.assert_array_equal(x[..., 3:], mask)
    np.testing.assert_array_equal(np.asarray(composite(raw, image, mask)), np.where(mask > 0, raw, image))


# Every runtime applies the contract above; these are the differences measured between them
# (nf 4, 1 block, random weights), as documented in dmfn_tf/inpaint/contract.py.
UINT8_LEVELS = 1           # SavedModel graphs and TFLite vs eager inpaint: at most one 8-bit level
TFLITE_FLOAT_ATOL = 1e-3   # TFLite float32 composite vs the eager one, in [-1, 1] units


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    """A tiny generator, its SavedModel and its dynamic-size float32 TFLite model."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from dmfn_tf.models.generator import build_generator
    from dmfn_tf.serving.saved_model_export import export_saved_model
    from dmfn_tf.serving.tflite_export import convert_to_tflite

    keras.utils.set_random_seed(3)
    generator = build_generator(nf=4, n_blocks=1)
    served = tf.saved_model.load(export_saved_model(generator, str(tmp_path_factory.mktemp("served") / "1")))
    interpreter = Interpreter(model_content=convert_to_tflite(generator, size=None, quantization="float32"))
    return generator, served, interpreter


def _image_and_mask(height, width, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width, 1), np.float32)
    mask[height // 5 : height * 3 // 5 + 1, width // 3 : width * 4 // 5 + 1] = 1
    return image, mask


def _png(array):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("height, width", [(61, 83), (64, 64), (5, 3)])
def test_every_runtime_gives_the_same_composite(runtimes, height, width):
    import tensorflow as tf

    from dmfn_tf.evaluation.report import generator_inpaint_fn
    from dmfn_tf.inpaint.runner import inpaint
    from dmfn_tf.serving.tflite_export import run_tflite

    generator, served, interpreter = runtimes
    image, mask = _image_and_mask(height, width, seed=height)
    hole = mask[..., 0] > 0.5
    # Independent reference: NumPy reflect padding, the generator, crop, composite, rounding.
    pad = ((0, -height % 4), (0, -width % 4), (0, 0))
    mode = "reflect" if min(height, width) > 1 else "edge"
    as_float = image.astype(np.float32) / 127.5 - 1
    padded_image, padded_mask = np.pad(as_float, pad, mode=mode), np.pad(mask, pad, mode=mode)
    raw = np.asarray(generator(np.concatenate([padded_image * (1 - padded_mask), padded_mask], -1)[None]))[0]
    reference_float = np.where(hole[..., None], raw[:height, :width], as_float)
    reference = np.clip(np.round((reference_float + 1) * 127.5), 0, 255).astype(np.uint8)

    results = {
        "inference.inpaint": inpaint(generator, image, mask),
        "serving_default": served.signatures["serving_default"](
            image=tf.constant(image[None]), mask=tf.constant(mask[None] * 255))["inpainted"].numpy()[0],
        "inpaint_bytes": tf.io.decode_png(served.signatures["inpaint_bytes"](
            image_bytes=tf.constant([_png(image)]),
            mask_bytes=tf.constant([_png((mask[..., 0] * 255).astype(np.uint8))]))["inpainted_png_bytes"][0]).numpy(),
    }
    floats = {
        "tflite": run_tflite(interpreter, as_float[None], mask[None])[0],
        "evaluation protocol": generator_inpaint_fn(generator)(as_float[None], mask[None])[0],
    }
    for name, composite_float in floats.items():
        np.testing.assert_allclose(composite_float, reference_float, atol=TFLITE_FLOAT_ATOL, rtol=0, err_msg=name)
        results[name] = np.asarray(to_uint8(composite_float))
    for name, result in results.items():
        assert result.shape == image.shape and result.dtype == np.uint8, name
        np.testing.assert_array_equal(result[~hole], image[~hole], err_msg=name)  # known pixels, bit for bit
        difference = np.abs(result.astype(int) - reference.astype(int)).max()
        assert difference <= UINT8_LEVELS, (name, difference)


def test_evaluation_protocol_scores_the_inference_composite(runtimes, tmp_path):
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    from dmfn_tf.evaluation.protocol import EvaluationSettings, evaluate
    from dmfn_tf.inpaint.runner import inpaint

    generator = runtimes[0]
    image, mask = _image_and_mask(64, 64, seed=7)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "a.png")
    Image.fromarray((mask[..., 0] * 255).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    settings = EvaluationSettings(baselines=(), image_size=64, mask="file", mask_files=tmp_path / "masks", lpips="none")
    result = evaluate(tmp_path / "images", settings, generator=generator)
    expected = peak_signal_noise_ratio(image, inpaint(generator, image, mask), data_range=255)
    assert result.files == ["a.png"]
    assert result.scores["dmfn"]["psnr"][0] == pytest.approx(expected, abs=1e-6)
