"""Tests for the self-contained SavedModel: parity with Keras, signatures, errors, saved_model_cli."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.models.generator import build_generator
from dmfn_tf.serving.saved_model_export import SIGNATURE_NAMES, export_saved_model

MAX_PIXELS = 100 * 100


@pytest.fixture(scope="module")
def generator():
    return build_generator(nf=4, n_blocks=1)


@pytest.fixture(scope="module")
def export_dir(generator, tmp_path_factory):
    return export_saved_model(generator, str(tmp_path_factory.mktemp("served") / "dmfn" / "1"), max_pixels=MAX_PIXELS)


@pytest.fixture(scope="module")
def served(export_dir):
    return tf.saved_model.load(export_dir)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 30, 45, 3), dtype=np.uint8)
    mask = np.zeros((2, 30, 45, 1), np.float32)
    mask[0, 5:20, 10:30] = 1
    mask[1, 12:29, 3:17] = 1
    return image, mask


def _keras_composite(generator, image_uint8, mask):
    """Independent reference: NumPy reflect padding to multiples of 4, the Keras model, crop, composite."""
    height, width = image_uint8.shape[1:3]
    pad = ((0, 0), (0, -height % 4), (0, -width % 4), (0, 0))
    image = image_uint8.astype(np.float32) / 127.5 - 1
    padded_image, padded_mask = np.pad(image, pad, mode="reflect"), np.pad(mask, pad, mode="reflect")
    raw = generator(np.concatenate([padded_image * (1 - padded_mask), padded_mask], -1)).numpy()[:, :height, :width]
    return mask * raw + (1 - mask) * image


def _python():
    return sys.executable


def test_fresh_tensorflow_only_process_matches_keras(generator, export_dir, batch, tmp_path):
    image, mask = batch
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "mask.npy", mask)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["dmfn_tf"] = None  # any import of the package now fails
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({export_dir!r})
        image, mask = np.load({str(tmp_path / "image.npy")!r}), np.load({str(tmp_path / "mask.npy")!r})
        as_float = image.astype(np.float32) / 127.5 - 1
        out = model.signatures["inpaint_float"](image=tf.constant(as_float), mask=tf.constant(mask))["inpainted"]
        np.save({str(tmp_path / "float.npy")!r}, out.numpy())
        for name, m in (("uint8_01", mask), ("uint8_0255", mask * 255)):
            out = model.signatures["serving_default"](image=tf.constant(image), mask=tf.constant(m))["inpainted"]
            np.save({str(tmp_path)!r} + "/" + name + ".npy", out.numpy())
        """
    )
    subprocess.run([_python(), "-c", script], check=True, capture_output=True, cwd=str(tmp_path))

    expected = _keras_composite(generator, image, mask)
    np.testing.assert_allclose(np.load(tmp_path / "float.npy"), expected, atol=1e-5, rtol=0)
    expected_uint8 = np.clip(np.round((expected + 1) * 127.5), 0, 255)
    known = np.broadcast_to(mask == 0, image.shape)
    for name in ("uint8_01", "uint8_0255"):
        result = np.load(tmp_path / f"{name}.npy")
        assert result.dtype == np.uint8 and result.shape == image.shape
        np.testing.assert_array_equal(result[known], image[known])
        np.testing.assert_allclose(result[~known].astype(np.float32), expected_uint8[~known], atol=1)
    np.testing.assert_array_equal(np.load(tmp_path / "uint8_01.npy"), np.load(tmp_path / "uint8_0255.npy"))


def test_anti_aliased_float_mask_binarises_at_half(served, batch):
    image, _ = batch
    soft = np.zeros((1, 30, 45, 1), np.float32)
    soft[0, :, 20:] = 127.0  # 127 / 255 < 0.5: known
    soft[0, :, 30:] = 128.0  # > 0.5: hole
    out = served.signatures["serving_default"](image=tf.constant(image[:1]), mask=tf.constant(soft))["inpainted"].numpy()
    np.testing.assert_array_equal(out[0, :, :30], image[0, :, :30])
    assert not np.array_equal(out[0, :, 30:], image[0, :, 30:])


def _saved_model_cli():
    path = os.path.join(os.path.dirname(_python()), "saved_model_cli")
    if not os.path.exists(path):
        pytest.skip(f"saved_model_cli not found next to {_python()}")
    return path


def test_saved_model_cli_show_lists_signatures(export_dir):
    shown = subprocess.run(
        [_saved_model_cli(), "show", "--dir", export_dir, "--all"], check=True, capture_output=True, text=True
    ).stdout
    for name in SIGNATURE_NAMES:
        assert f"signature_def['{name}']" in shown
    for tensor in ("image_bytes", "mask_bytes", "inpainted_png_bytes", "inpainted"):
        assert f"['{tensor}']" in shown


def test_saved_model_cli_run(export_dir, served, batch, tmp_path):
    image, mask = batch
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "mask.npy", mask)
    subprocess.run(
        [
            _saved_model_cli(), "run", "--dir", export_dir, "--tag_set", "serve", "--signature_def", "serving_default",
            "--inputs", f"image={tmp_path / 'image.npy'};mask={tmp_path / 'mask.npy'}", "--outdir", str(tmp_path / "out"),
        ],
        check=True, capture_output=True,
    )
    expected = served.signatures["serving_default"](image=tf.constant(image), mask=tf.constant(mask))["inpainted"]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "inpainted.npy"), expected.numpy())


def _encode(image, fmt):
    return (tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=90)).numpy()


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_bytes_signature_round_trip(served, batch, fmt):
    image, mask = batch
    image_bytes = [_encode(image[i], fmt) for i in range(2)]
    mask_bytes = [_encode((mask[i] * 255).astype(np.uint8), "png") for i in range(2)]
    # A TF Serving REST request: {"inputs": {"image_bytes": [{"b64": ...}], ...}}, decoded to these strings.
    out = served.signatures["inpaint_bytes"](image_bytes=tf.constant(image_bytes), mask_bytes=tf.constant(mask_bytes))
    pngs = out["inpainted_png_bytes"].numpy()
    assert pngs.shape == (2,)
    for i in range(2):
        decoded_input = tf.io.decode_image(image_bytes[i], channels=3).numpy()
        result = tf.io.decode_png(pngs[i]).numpy()
        assert result.shape == decoded_input.shape
        known = np.broadcast_to(mask[i] == 0, result.shape)
        np.testing.assert_array_equal(result[known], decoded_input[known])
        assert not np.array_equal(result[~known], decoded_input[~known])


def test_bytes_signature_accepts_images_of_different_sizes(served):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((13, 21, 3), (40, 36, 3))]
    masks = [np.full(img.shape[:2] + (1,), 255, np.uint8) for img in images]
    out = served.signatures["inpaint_bytes"](
        image_bytes=tf.constant([_encode(i, "png") for i in images]), mask_bytes=tf.constant([_encode(m, "png") for m in masks])
    )
    shapes = [tf.io.decode_png(png).shape for png in out["inpainted_png_bytes"].numpy()]
    assert shapes == [(13, 21, 3), (40, 36, 3)]


def test_invalid_bytes_raise_invalid_argument(served, batch):
    mask_png = _encode((batch[1][0] * 255).astype(np.uint8), "png")
    with pytest.raises(tf.errors.InvalidArgumentError):
        served.signatures["inpaint_bytes"](image_bytes=tf.constant([b"not an image"]), mask_bytes=tf.constant([mask_png]))


def test_mismatched_sizes_raise_invalid_argument(served, batch):
    image, mask = batch
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size, height and width"):
        served.signatures["serving_default"](image=tf.constant(image), mask=tf.constant(mask[:, :, :40]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size, height and width"):
        served.signatures["serving_default"](image=tf.constant(image), mask=tf.constant(mask[:1]))
    small_mask = _encode(np.zeros((30, 40, 1), np.uint8), "png")
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size, height and width"):
        served.signatures["inpaint_bytes"](image_bytes=tf.constant([_encode(image[0], "png")]), mask_bytes=tf.constant([small_mask]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        served.signatures["inpaint_bytes"](image_bytes=tf.constant([_encode(image[0], "png")] * 2), mask_bytes=tf.constant([small_mask]))


def test_oversized_request_raises_invalid_argument(served):
    image = np.zeros((1, 101, 100, 3), np.uint8)  # 10,100 pixels > 10,000
    mask = np.ones((1, 101, 100, 1), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="exceeds the budget of 10000 pixels"):
        served.signatures["serving_default"](image=tf.constant(image), mask=tf.constant(mask))
    mask_png = _encode((mask[0] * 255).astype(np.uint8), "png")
    for fmt in ("png", "jpeg"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than the budget of 10000 pixels"):
            served.signatures["inpaint_bytes"](image_bytes=tf.constant([_encode(image[0], fmt)]), mask_bytes=tf.constant([mask_png]))


def test_oversized_png_header_is_refused_before_decoding(served):
    # A 60-byte file whose header declares 100000 x 100000 pixels (30 GB decoded).
    png = bytearray(_encode(np.zeros((2, 2, 3), np.uint8), "png"))
    png[16:24] = (100000).to_bytes(4, "big") * 2
    mask_png = _encode(np.zeros((2, 2, 1), np.uint8), "png")
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than the budget"):
        served.signatures["inpaint_bytes"](image_bytes=tf.constant([bytes(png)]), mask_bytes=tf.constant([mask_png]))

