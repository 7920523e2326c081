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


# Atomic exports (issue 19): the previous good output survives a failure, leftovers never block, --overwrite replaces.

def _fake_saved_model_save(files):
    """A stand-in for `tf.saved_model.save` that writes `files` (name -> bytes) into the folder, then maybe fails."""
    def save(module, directory, signatures=None):
        for name, content in files.items():
            path = os.path.join(directory, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as file:
                file.write(content)
        if b"fail" in files.values():
            raise RuntimeError("killed half-way through the export")
    return save


def test_an_interrupted_tflite_export_keeps_the_previous_file(model_path, tmp_path, monkeypatch):
    from dmfn_tf.serving import tflite_export

    good = tmp_path / "dmfn_32_float32.tflite"
    good.write_bytes(b"TFL3 the previous good model")

    def interrupted(generator, size=256, quantization="float32"):
        raise KeyboardInterrupt

    monkeypatch.setattr(tflite_export, "convert_to_tflite", interrupted)
    assert _export(model_path, tmp_path, "--format", "tflite", "--size", "32", "--quantization", "float32",
                   "--overwrite") == 130
    assert good.read_bytes() == b"TFL3 the previous good model"  # before: 0 bytes
    assert sorted(os.listdir(tmp_path)) == ["dmfn_32_float32.tflite"]


def test_a_zero_byte_leftover_does_not_block_the_next_export(model_path, tmp_path, monkeypatch):
    from dmfn_tf.serving import tflite_export

    monkeypatch.setattr(tflite_export, "convert_to_tflite", lambda generator, size=256, quantization="float32": b"TFL3 new")
    (tmp_path / "dmfn_32_float32.tflite").write_bytes(b"")
    stale = tmp_path / ".dmfn_dynamic_float32.tflite.tmp-999999999-abcdefgh.tflite"  # of a killed process
    stale.write_bytes(b"half")
    assert _export(model_path, tmp_path, "--format", "tflite", "--size", "32", "--quantization", "float32") == 0
    assert sorted(os.listdir(tmp_path)) == ["dmfn_32_float32.tflite", "dmfn_dynamic_float32.tflite"]
    assert (tmp_path / "dmfn_32_float32.tflite").read_bytes() == b"TFL3 new"


def test_overwrite_replaces_a_saved_model_folder_and_a_failure_keeps_it(model_path, tmp_path, monkeypatch):
    version = tmp_path / "dmfn" / "1"
    monkeypatch.setattr(tf.saved_model, "save", _fake_saved_model_save({"saved_model.pb": b"old", "old_only.txt": b"x"}))
    assert _export(model_path, tmp_path, "--format", "saved_model") == 0
    failing = {"saved_model.pb": b"new", "variables/variables.index": b"fail"}
    monkeypatch.setattr(tf.saved_model, "save", _fake_saved_model_save(failing))
    with pytest.raises(RuntimeError, match="killed half-way"):
        main(["--debug", "export", "--model", model_path, "--out", str(tmp_path), "--format", "saved_model", "--overwrite"])
    assert sorted(os.listdir(version)) == ["old_only.txt", "saved_model.pb"] and (version / "saved_model.pb").read_bytes() == b"old"
    assert os.listdir(tmp_path / "dmfn") == ["1"]  # no temporary folder left
    monkeypatch.setattr(tf.saved_model, "save", _fake_saved_model_save({"saved_model.pb": b"new"}))
    assert _export(model_path, tmp_path, "--format", "saved_model", "--overwrite") == 0
    assert os.listdir(version) == ["saved_model.pb"] and (version / "saved_model.pb").read_bytes() == b"new"  # not merged


def test_a_partial_saved_model_folder_does_not_block_but_a_users_folder_does(model_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tf.saved_model, "save", _fake_saved_model_save({"saved_model.pb": b"new"}))
    (tmp_path / "dmfn" / "1" / "variables").mkdir(parents=True)  # an export killed before saved_model.pb
    assert _export(model_path, tmp_path, "--format", "saved_model") == 0
    assert os.listdir(tmp_path / "dmfn" / "1") == ["saved_model.pb"]
    (tmp_path / "dmfn" / "2").mkdir()
    (tmp_path / "dmfn" / "2" / "notes.txt").write_text("mine")
    assert _export(model_path, tmp_path, "--format", "saved_model", "--version", "2") == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "", "x\0y", "line\nbreak", "n" * 201])
def test_name_must_be_a_plain_name(model_path, tmp_path, capsys, name):
    out = tmp_path / "out"
    assert _export(model_path, out, "--format", "keras", "--name", name) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dmfn export: error: --name must be a plain file name") and "\n" not in err, err
    assert not os.path.exists(out) and not os.path.exists(tmp_path / "x.keras")


def test_exports_carry_the_description_and_tflite_takes_the_trained_size(tmp_path, monkeypatch):
    import json

    from conftest import tiny_metadata
    from dmfn_tf.model_io import save_model_atomically
    from dmfn_tf.model_metadata import read_model_metadata
    from dmfn_tf.serving import tflite_export
    from dmfn_tf.serving.saved_model_export import METADATA_FILE

    described = str(tmp_path / "described.keras")
    metadata = tiny_metadata(96, "dmfn train")
    save_model_atomically(build_generator(nf=4, n_blocks=1), described, metadata=metadata)
    out = tmp_path / "out"
    assert _export(described, out, "--format", "keras", "--name", "again") == 0
    assert read_model_metadata(str(out / "again.keras")) == metadata
    assert _export(described, out, "--format", "saved_model") == 0
    assert json.loads((out / "dmfn" / "1" / METADATA_FILE).read_text()) == metadata.to_dict()  # plain JSON beside the graph
    assert tf.saved_model.load(str(out / "dmfn" / "1")).signatures["serving_default"] is not None
    sizes = []
    monkeypatch.setattr(tflite_export, "convert_to_tflite",
                        lambda generator, size=256, quantization="float32": sizes.append(size) or b"TFL3")
    assert _export(described, out, "--format", "tflite", "--quantization", "float32") == 0
    assert sizes == [96, None] and os.path.isfile(out / "dmfn_96_float32.tflite")
