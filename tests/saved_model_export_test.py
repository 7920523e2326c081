"""Tests for the self-contained SavedModel: parity with Keras, signatures, errors, saved_model_cli."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from dmfn_tf.models.generator import build_generator
from conftest import run_cases_measured
from dmfn_tf.serving.saved_model_export import SIGNATURE_NAMES
from round_trips import assert_saved_model_round_trip, keras_composite, round_trip_batch

MAX_PIXELS = 100 * 100


@pytest.fixture(scope="module")
def generator():
    return build_generator(nf=4, n_blocks=1)


@pytest.fixture(scope="module")
def batch():
    return round_trip_batch()


@pytest.fixture(scope="module")
def exported(generator, batch, tmp_path_factory):
    """`(export folder, loaded SavedModel)`, after the shared SavedModel round trip checked its composite."""
    export_dir = str(tmp_path_factory.mktemp("served") / "dmfn" / "1")
    return export_dir, assert_saved_model_round_trip(generator, export_dir, batch, max_pixels=MAX_PIXELS)


@pytest.fixture(scope="module")
def export_dir(exported):
    return exported[0]


@pytest.fixture(scope="module")
def served(exported):
    return exported[1]


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

    expected = keras_composite(generator, image, mask)
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



def _first_line_of_assertion(message: str) -> str:
    """The line of a TF error that carries the graph assertion's text."""
    return next(line for line in message.splitlines() if "assertion failed" in line or "Invalid" in line)


def _pil_bytes(image, fmt: str, **options) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _hostile_requests() -> dict:
    """name -> (image_bytes list, mask_bytes list, expected message fragment); every input under 100 KB."""
    from PIL import Image

    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8))
    png = _pil_bytes(small, "PNG")
    mask = _pil_bytes(Image.new("L", (45, 30), 255), "PNG")

    def with_bytes(data: bytes, offset: int, replacement: bytes) -> bytes:
        return data[:offset] + replacement + data[offset + len(replacement):]

    webp_lossy = _pil_bytes(small, "WEBP", quality=50)
    webp_lossless = _pil_bytes(small, "WEBP", lossless=True)
    # VP8L header: 14 bits width - 1, 14 bits height - 1 after the 0x2f signature byte at 20.
    huge_lossless = with_bytes(webp_lossless, 21, ((16383 - 1) | (16383 - 1) << 14).to_bytes(4, "little"))
    huge_lossy = with_bytes(webp_lossy, 26, (16383).to_bytes(2, "little") * 2)
    other = Image.fromarray(255 - np.asarray(small))
    animated = _pil_bytes(small, "WEBP", save_all=True, append_images=[other], duration=100)
    assert animated[12:16] == b"VP8X" and animated[20] & 2
    huge_canvas = with_bytes(_pil_bytes(small.convert("RGBA"), "WEBP"), 24, (16000 - 1).to_bytes(3, "little") * 2)
    gif = with_bytes(_pil_bytes(small, "GIF"), 6, (65535).to_bytes(2, "little") * 2)
    bmp = _pil_bytes(small, "BMP")
    huge_bmp = with_bytes(bmp, 18, (1 << 16).to_bytes(4, "little") + (-(2**31)).to_bytes(4, "little", signed=True))
    jpeg = _pil_bytes(small, "JPEG")
    sof = jpeg.index(b"\xff\xc0")
    huge_jpeg = with_bytes(jpeg, sof + 5, (65000).to_bytes(2, "big") * 2)
    wrapping_png = with_bytes(png, 16, b"\xff" * 8)  # (2^32 - 1)^2 pixels: wraps to 1 - 2^33 in int64
    # 16000 x 16000 of zeros, 1 bit per pixel: 31 KB of PNG, 256 MB decoded.
    big_mask = _pil_bytes(Image.new("1", (16000, 16000)), "PNG", optimize=True)
    eighty = _pil_bytes(Image.new("RGB", (80, 80)), "PNG")
    eighty_mask = _pil_bytes(Image.new("L", (80, 80), 255), "PNG")
    budget = "declares more than the budget of 10000 pixels"
    return {
        "16000x16000 PNG mask": ([png], [big_mask], "mask_bytes[0] is 16000x16000 but image_bytes[0] is 45x30"),
        "lossless WebP declaring 16383^2": ([huge_lossless], [huge_lossless], budget),
        "lossy WebP declaring 16383^2": ([huge_lossy], [mask], budget),
        "VP8X canvas declaring 16000^2": ([huge_canvas], [mask], budget),
        "animated WebP": ([animated], [mask], "image_bytes[0] is an animated WebP"),
        "GIF declaring 65535^2": ([png, gif], [mask, mask], "image_bytes[1] is a GIF"),
        "GIF mask": ([png], [gif], "mask_bytes[0] is a GIF"),
        "BMP declaring 65536 x -2^31": ([huge_bmp], [mask], budget),
        "JPEG declaring 65000^2": ([huge_jpeg], [mask], budget),
        "PNG declaring (2^32-1)^2": ([wrapping_png], [wrapping_png], budget),
        "two 80x80 images, budget over the request": ([eighty, eighty], [eighty_mask, eighty_mask], budget),
        "short string starting with the PNG signature": ([png[:12]], [mask], "image_bytes[0] is truncated"),
        "not an image": ([b"GIF8 nothing"], [mask], "image_bytes[0] is not a PNG, JPEG, BMP or WebP image"),
        "truncated PNG body": ([png[: len(png) // 2]], [mask], "PNG"),
        "truncated JPEG header": ([jpeg[:40]], [mask], "JPEG"),
    }


def test_hostile_encoded_inputs_raise_one_line_invalid_argument_with_bounded_memory(export_dir, tmp_path):
    import pickle

    requests = _hostile_requests()
    assert all(len(item) < 100_000 for images, masks, _ in requests.values() for item in images + masks)
    with open(tmp_path / "requests.pickle", "wb") as f:
        pickle.dump({name: (images, masks) for name, (images, masks, _) in requests.items()}, f)
    setup = f"""
        import pickle
        import tensorflow as tf
        signature = tf.saved_model.load({export_dir!r}).signatures["inpaint_bytes"]
        requests = pickle.load(open({str(tmp_path / "requests.pickle")!r}, "rb"))
        def call(name):
            images, masks = requests[name]
            try:
                signature(image_bytes=tf.constant(images), mask_bytes=tf.constant(masks))
            except tf.errors.InvalidArgumentError as err:
                raise UserError(err.message) from None
    """
    outcomes = run_cases_measured(setup, {name: f"call({name!r})" for name in requests})
    for name, (images, masks, fragment) in requests.items():
        outcome = outcomes[name]
        assert outcome["user_error"], (name, outcome)  # an InvalidArgumentError
        line = _first_line_of_assertion(outcome["message"])
        assert fragment in line, (name, outcome["message"])
        assert "\\x" not in outcome["message"] and outcome["message"].isascii(), (name, outcome["message"])
        assert outcome["growth_mb"] < 300, (name, outcome)


def test_valid_webp_and_bmp_requests_round_trip(served):
    from PIL import Image

    image = np.random.default_rng(3).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    mask = np.zeros((30, 45), np.uint8)
    mask[5:20, 10:30] = 255
    for fmt, options in (("WEBP", {"lossless": True}), ("BMP", {})):
        image_bytes = _pil_bytes(Image.fromarray(image), fmt, **options)
        mask_bytes = _pil_bytes(Image.fromarray(mask), fmt, **options)
        out = served.signatures["inpaint_bytes"](
            image_bytes=tf.constant([image_bytes]), mask_bytes=tf.constant([mask_bytes])
        )
        result = tf.io.decode_png(out["inpainted_png_bytes"][0]).numpy()
        np.testing.assert_array_equal(result[mask == 0], image[mask == 0])


def test_float_signature_ignores_non_finite_hole_pixels_and_refuses_them_elsewhere(served, batch):
    image, mask = batch
    clean = tf.constant(image.astype(np.float32) / 127.5 - 1)
    dirty = clean.numpy().copy()
    dirty[np.broadcast_to(mask > 0.5, dirty.shape)] = np.nan
    dirty[0, 6, 11] = np.inf  # a hole pixel too
    expected = served.signatures["inpaint_float"](image=tf.where(mask > 0.5, 0.0, clean), mask=tf.constant(mask))
    result = served.signatures["inpaint_float"](image=tf.constant(dirty), mask=tf.constant(mask))["inpainted"].numpy()
    assert np.isfinite(result).all()
    np.testing.assert_array_equal(result, expected["inpainted"].numpy())
    known_nan = clean.numpy().copy()
    known_nan[1, 0, 0, 2] = np.nan  # mask[1, 0, 0] is 0: a known pixel
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite values at known"):
        served.signatures["inpaint_float"](image=tf.constant(known_nan), mask=tf.constant(mask))
    nan_mask = mask.copy()
    nan_mask[0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask has NaN"):
        served.signatures["inpaint_float"](image=clean, mask=tf.constant(nan_mask))
