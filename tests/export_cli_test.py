"""Tests for `dmfn export`: output layout, overwrite protection, bad arguments."""

import os

import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from dmfn_tf.cli import main
from dmfn_tf.models.generator import build_generator


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "generator.keras"
    build_generator(nf=4, n_blocks=1).save(path)
    return str(path)


def _export(model_path, out, *extra):
    return main(["export", "--model", model_path, "--out", str(out), *extra])


def test_keras_format(model_path, tmp_path):
    assert _export(model_path, tmp_path, "--format", "keras", "--name", "g") == 0
    assert os.path.isfile(tmp_path / "g.keras")


def test_tflite_fixed_and_dynamic_files(model_path, tmp_path):
    assert _export(model_path, tmp_path, "--format", "tflite", "--size", "32", "--quantization", "float16") == 0
    assert sorted(os.listdir(tmp_path)) == ["dmfn_32_float16.tflite", "dmfn_dynamic_float16.tflite"]
    fixed = Interpreter(model_path=str(tmp_path / "dmfn_32_float16.tflite"))
    assert sorted(list(d["shape"]) for d in fixed.get_input_details()) == [[1, 32, 32, 1], [1, 32, 32, 3]]


def test_saved_model_layout_for_tf_serving_and_overwrite(model_path, tmp_path, capsys):
    assert _export(model_path, tmp_path, "--format", "saved_model", "--version", "3") == 0
    served = tf.saved_model.load(str(tmp_path / "dmfn" / "3"))
    out = served.signatures["serving_default"](image=tf.zeros((1, 8, 8, 3), tf.uint8), mask=tf.ones((1, 8, 8, 1)))
    assert out["inpainted"].shape == (1, 8, 8, 3)
    assert _export(model_path, tmp_path, "--format", "saved_model", "--version", "3") == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert _export(model_path, tmp_path, "--format", "saved_model", "--version", "3", "--overwrite") == 0


@pytest.mark.parametrize("args, message", [
    (["--format", "tflite", "--size", "30"], "--size must be a positive multiple of 4"),
    (["--format", "saved_model", "--max-pixels", "0"], "--max-pixels must be positive"),
])
def test_bad_arguments(model_path, tmp_path, capsys, args, message):
    assert _export(model_path, tmp_path, *args) == 2
    assert message in capsys.readouterr().err


def test_missing_model(tmp_path, capsys):
    assert _export(str(tmp_path / "none.keras"), tmp_path, "--format", "keras") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dmfn export: error: {tmp_path / 'none.keras'}: no such model file or run directory"


def test_model_omitted_exports_the_shipped_model_and_says_so(shipped_model, tmp_path, capsys):
    import keras
    import numpy as np

    assert main(["export", "--format", "keras", "--out", str(tmp_path)]) == 0
    assert f"using the shipped model {shipped_model}" in capsys.readouterr().err
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 4)).astype(np.float32)
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "dmfn.keras")(x).numpy(),
                                  keras.saving.load_model(shipped_model)(x).numpy())


def test_model_omitted_without_a_shipped_model(no_shipped_model, tmp_path, capsys):
    assert main(["export", "--format", "keras", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dmfn export: error: no shipped model at") and "\n" not in err and "--model" in err
