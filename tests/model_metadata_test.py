"""Tests for `dmfn_tf.model_metadata`: a generator file's description, inside the file, bounded and strict."""

import dataclasses
import json
import os
import zipfile

import numpy as np
import pytest
import yaml

from conftest import tiny_metadata
from dmfn_tf.config import config_from_dict
from dmfn_tf.input_limits import MAX_MODEL_METADATA_BYTES
from dmfn_tf.model_file_checks import METADATA_MEMBER, ModelLoadError
from dmfn_tf.model_io import load_generator, save_model_atomically, trained_size, write_model_metadata
from dmfn_tf.model_metadata import (
    METADATA_KEY,
    InputConvention,
    ModelMetadata,
    home_relative,
    metadata_from_config,
    read_model_metadata,
    run_name,
)
from dmfn_tf.models.generator import build_generator


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _with_metadata_json(source, destination, text: bytes):
    """A copy of `source` whose `metadata.json` is `text` (deflated: a small file may declare a large member)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in original.infolist():
            copy.writestr(info.filename, text if info.filename == METADATA_MEMBER else original.read(info))
    return str(destination)


def test_round_trip_inside_the_file_keeps_the_weights_and_keras_loads_it(tmp_path, tiny_config):
    cfg = dataclasses.replace(tiny_config(), model=dataclasses.replace(tiny_config().model, colour_convention="standardise"))
    generator = build_generator(**cfg.model.generator_kwargs())
    metadata = metadata_from_config(cfg, "tests", run_dir=tmp_path / "my_run", step=12, cpu_seconds=7200.0)
    save_model_atomically(generator, tmp_path / "described.keras", metadata=metadata)
    save_model_atomically(generator, tmp_path / "plain.keras")

    assert read_model_metadata(str(tmp_path / "described.keras")) == metadata
    assert metadata.trained_size == 64 and metadata.provenance.cpu_hours == 2.0 and metadata.provenance.step == 12
    assert metadata.architecture.colour_convention == metadata.input_convention.colour_convention == "standardise"
    assert config_from_dict(yaml.safe_load(metadata.provenance.config_yaml)) == cfg  # the recipe, whole
    described, plain = _members(tmp_path / "described.keras"), _members(tmp_path / "plain.keras")
    assert sorted(described) == sorted(plain)  # Keras' three members, no fourth (Keras would extract them all)
    assert described["model.weights.h5"] == plain["model.weights.h5"] and described["config.json"] == plain["config.json"]
    assert json.loads(described[METADATA_MEMBER])["keras_version"] == json.loads(plain[METADATA_MEMBER])["keras_version"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 4)).astype(np.float32)
    np.testing.assert_array_equal(load_generator(str(tmp_path / "described.keras"))(x).numpy(), generator(x).numpy())
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]  # no temporary left behind


def test_a_file_without_a_description_still_loads(tiny_generator_file, tmp_path):
    assert read_model_metadata(tiny_generator_file) is None and trained_size(tiny_generator_file) is None
    assert load_generator(tiny_generator_file).outputs[0].shape[-1] == 3
    # ... and gets one later, its weights untouched.
    copy = tmp_path / "later.keras"
    copy.write_bytes(open(tiny_generator_file, "rb").read())
    write_model_metadata(copy, tiny_metadata(96))
    assert trained_size(str(copy)) == 96
    assert _members(copy)["model.weights.h5"] == _members(tiny_generator_file)["model.weights.h5"]


def test_the_description_cannot_blow_memory(tiny_generator_file, tmp_path):
    # A few kilobytes on disk declaring a metadata.json of 64 MiB: refused from its declared size, before inflating.
    padded = json.dumps({"keras_version": "3"}).encode() + b" " * (1024 * MAX_MODEL_METADATA_BYTES)
    path = _with_metadata_json(tiny_generator_file, tmp_path / "bomb.keras", padded)
    assert os.path.getsize(path) < 1024 * 1024
    for read in (read_model_metadata, load_generator, trained_size):
        with pytest.raises(ModelLoadError, match=r"bomb.keras: metadata.json declares \d+ bytes, above the limit of 65536"):
            read(path)
    # Writing one larger than the budget is refused too (a recipe's YAML is at most 16 KiB).
    huge = tiny_metadata(64)
    huge = dataclasses.replace(huge, provenance=dataclasses.replace(huge.provenance, config_yaml="x" * MAX_MODEL_METADATA_BYTES))
    copy = tmp_path / "copy.keras"
    copy.write_bytes(open(tiny_generator_file, "rb").read())
    with pytest.raises(ModelLoadError, match="description takes .* above the limit"):
        write_model_metadata(copy, huge)
    assert read_model_metadata(str(copy)) is None  # the file is unchanged


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(trained_size="128"), r"dmfn_tf.trained_size must be int, got str"),
    (lambda d: d.update(trained_size=True), r"dmfn_tf.trained_size must be int, got bool"),
    (lambda d: d.update(trained_size=0), r"dmfn_tf.trained_size must be positive"),
    (lambda d: d.update(colour="red"), r"dmfn_tf has unknown key\(s\) colour"),
    (lambda d: d["architecture"].pop("nf"), r"dmfn_tf.architecture lacks nf"),
    (lambda d: d["architecture"].update(block="fancy"), r"unknown block 'fancy'"),
    (lambda d: d["input_convention"].update(mask="1 = known"), r"input_convention.mask is '1 = known'; this package feeds"),
    (lambda d: d.update(format_version=99), r"format 99, newer than this dmfn_tf reads \(1\); update dmfn_tf"),
    (lambda d: d.update(provenance=[]), r"dmfn_tf.provenance must be a JSON object, got list"),
])
def test_malformed_descriptions_are_one_line_errors(tiny_generator_file, tmp_path, change, message):
    values = tiny_metadata(64).to_dict()
    change(values)
    text = json.dumps({"keras_version": "3", METADATA_KEY: values}).encode()
    path = _with_metadata_json(tiny_generator_file, tmp_path / "odd.keras", text)
    with pytest.raises(ModelLoadError, match=message) as caught:
        read_model_metadata(path)
    assert "odd.keras: metadata.json" in str(caught.value) and "\n" not in str(caught.value)


def test_input_convention_names_the_contract_and_the_colour_convention():
    metadata = ModelMetadata.from_dict(tiny_metadata(64).to_dict())
    assert metadata.input_convention == InputConvention(colour_convention="plain")
    assert "1 = hole" in metadata.input_convention.mask and "[-1, 1]" in metadata.input_convention.pixels
    assert metadata.input_convention.model_input.startswith("concat([image * (1 - mask), mask])")


def test_runs_are_named_relative_to_runs_never_by_an_absolute_path(tmp_path):
    home = tmp_path / "home"
    (home / "runs" / "campaign" / "a").mkdir(parents=True)
    assert run_name(home / "runs" / "campaign" / "a", home=str(home)) == os.path.join("campaign", "a")
    assert run_name(tmp_path / "elsewhere" / "b", home=str(home)) == "b"
    assert home_relative(f"path: {home}/data/x", home=str(home)) == "path: ~/data/x"
