"""Tests for dmfn_tf.serving.export: the registry of export formats and its one entry point.

A toy format registered here runs end to end through `export` and `dmfn export`, as a new format would.
"""

import os

import numpy as np
import pytest

from dmfn_tf.atomic_files import atomic_path
from dmfn_tf.cli import build_parser, main
from dmfn_tf.model_metadata import read_model_metadata
from dmfn_tf.models.generator import build_generator
from dmfn_tf.serving.export import EXPORT_FORMATS, ExportFormat, export, planned_paths, register_export_format


def _npz_paths(out, name, scale=1.0):
    return [os.path.join(out, f"{name}.npz")]


def _write_npz(generator, paths, metadata, scale=1.0):
    with atomic_path(paths[0], suffix=".npz") as temporary:
        np.savez(temporary, *[scale * weight.numpy() for weight in generator.weights])


@pytest.fixture
def toy_format():
    """The toy format `npz_weights` (the generator's weights, scaled by its option `scale`), registered for one test."""
    yield register_export_format(ExportFormat("npz_weights", "the weights as a NumPy archive: <out>/<name>.npz",
                                              _npz_paths, _write_npz))
    del EXPORT_FORMATS["npz_weights"]


@pytest.fixture(scope="module")
def generator():
    return build_generator(nf=4, n_blocks=1)


def test_a_registered_format_exports_through_the_entry_point(toy_format, generator, tmp_path):
    paths = export(generator, "npz_weights", str(tmp_path / "out"), name="toy", scale=2.0)
    assert paths == planned_paths("npz_weights", str(tmp_path / "out"), "toy", scale=2.0) == [str(tmp_path / "out" / "toy.npz")]
    with np.load(paths[0]) as archive:
        saved = [archive[f"arr_{index}"] for index in range(len(archive.files))]
    assert len(saved) == len(generator.weights)
    np.testing.assert_array_equal(saved[0], 2.0 * generator.weights[0].numpy())
    assert os.listdir(tmp_path / "out") == ["toy.npz"]  # no temporary left


def test_a_registered_format_is_a_choice_of_dmfn_export_with_its_help(toy_format, generator, tmp_path, capsys):
    export_parser = build_parser()._subparsers._group_actions[0].choices["export"]
    format_option = next(action for action in export_parser._actions if action.dest == "format")
    assert "npz_weights" in format_option.choices and "the weights as a NumPy archive" in format_option.help
    model = str(tmp_path / "g.keras")
    generator.save(model)
    assert main(["export", "--model", model, "--format", "npz_weights", "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'out' / 'dmfn.npz'}"
    assert main(["export", "--model", model, "--format", "npz_weights", "--out", str(tmp_path / "out")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_built_in_formats_and_their_planned_files(tmp_path):
    assert list(EXPORT_FORMATS) == ["saved_model", "tflite", "keras"]
    assert planned_paths("saved_model", "out", "m", version=3) == [os.path.join("out", "m", "3")]
    assert planned_paths("tflite", "out", "m", size=64, quantization=["int8"]) == [
        os.path.join("out", "m_64_int8.tflite"), os.path.join("out", "m_dynamic_int8.tflite")]
    assert planned_paths("tflite", "out", "m", size=64, quantization=["int8"], dynamic=False) == [
        os.path.join("out", "m_64_int8.tflite")]


def test_keras_export_carries_the_description(generator, tmp_path):
    from conftest import tiny_metadata

    metadata = tiny_metadata(64, "dmfn train")
    (path,) = export(generator, "keras", str(tmp_path), name="described", metadata=metadata)
    assert path == str(tmp_path / "described.keras") and read_model_metadata(path) == metadata


def test_unknown_and_duplicate_formats_are_refused(toy_format, generator, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'onnx'; expected one of saved_model, tflite, keras, npz_weights"):
        export(generator, "onnx", str(tmp_path))
    with pytest.raises(ValueError, match="'npz_weights' is already registered"):
        register_export_format(toy_format)
