"""Tests for `load_generator`: .keras files, run directories, reference checkpoints, bad paths."""

import json
import os

import keras
import numpy as np
import pytest
import yaml

from dmfn_tf.errors import UserError
from dmfn_tf.models.generator import build_generator
from dmfn_tf.model_io import ModelLoadError, load_generator

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures")


def test_run_directory_loads_its_generator(tmp_path):
    generator = build_generator(nf=4, n_blocks=1)
    generator.save(tmp_path / "generator.keras")
    loaded = load_generator(str(tmp_path))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), generator(x).numpy())


@pytest.mark.parametrize("name", ["official_G_nf16_res2.pth", "official_G_nf16_res2_weights.npz"])
def test_reference_checkpoint_reproduces_reference_output(name):
    if not os.path.isdir(FIXTURES):
        pytest.skip(f"reference fixtures not found at {FIXTURES}")
    generator = load_generator(os.path.join(FIXTURES, name))
    io = np.load(os.path.join(FIXTURES, "io.npz"))
    x = np.concatenate([io["image"] * (1 - io["mask"]), io["mask"]], axis=-1)
    np.testing.assert_allclose(generator(x).numpy(), io["raw_output"], atol=1e-5, rtol=0)


def test_missing_path_and_empty_run_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="nowhere.keras: no such model file or run directory"):
        load_generator(str(tmp_path / "nowhere.keras"))
    with pytest.raises(ModelLoadError, match="must contain generator.keras"):
        load_generator(str(tmp_path))


def test_unsupported_and_corrupt_files(tmp_path):
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ModelLoadError, match="unsupported model file .h5"):
        load_generator(str(tmp_path / "weights.h5"))
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    with pytest.raises(ModelLoadError, match=r"broken.keras: not a Keras model file \(not a zip archive\)"):
        load_generator(str(tmp_path / "broken.keras"))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="broken.pth"):
        load_generator(str(tmp_path / "broken.pth"))


def test_a_keras_model_that_is_not_a_generator(tmp_path):
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs)).save(tmp_path / "other.keras")
    with pytest.raises(ModelLoadError, match="not a DMFN generator .input has 3 channels"):
        load_generator(str(tmp_path / "other.keras"))


def test_default_model_is_the_shipped_file(shipped_model, tiny_generator_file):
    from dmfn_tf.model_io import SHIPPED, default_model_path, is_shipped, trained_size

    assert default_model_path() == shipped_model
    x = np.random.default_rng(1).uniform(-1, 1, (1, 16, 16, 4)).astype(np.float32)
    expected = keras.saving.load_model(tiny_generator_file)(x).numpy()
    for path in (None, SHIPPED, shipped_model):
        np.testing.assert_array_equal(load_generator(path)(x).numpy(), expected)
        assert is_shipped(path) and trained_size(path) == 128
    assert not is_shipped(tiny_generator_file) and trained_size(tiny_generator_file) is None


def test_absent_shipped_model_is_a_clear_error(no_shipped_model):
    from dmfn_tf.model_io import default_model_path

    for load in (default_model_path, load_generator, lambda: load_generator("shipped")):
        with pytest.raises(ModelLoadError, match=r"no shipped model at .*dmfn_photo_cpu.keras .*name a model with --model"):
            load()


def test_the_shipped_file_describes_itself():
    """`saved_models/dmfn_photo_cpu.keras`: trained at 128², the architecture of the recipe it names (a config of
    configs/) and of the demo that fine-tunes it, its run named relative to ~/runs, no path of the machine it was made on."""
    from dmfn_tf.config import load_config
    from dmfn_tf.model_io import SHIPPED_MODEL, SHIPPED_MODEL_DIR
    from dmfn_tf.model_metadata import read_model_metadata

    path = SHIPPED_MODEL_DIR / SHIPPED_MODEL
    if not path.is_file():
        pytest.skip("no shipped model in this tree")
    metadata = read_model_metadata(str(path))
    provenance = metadata.provenance
    configs = os.path.join(os.path.dirname(__file__), "..", "configs")
    recipe = load_config(os.path.join(configs, yaml.safe_load(provenance.config_yaml)["name"] + ".yaml")).model
    demo = load_config(os.path.join(configs, "demo.yaml")).model
    assert metadata.trained_size == recipe.image_size == 128
    assert metadata.architecture.generator_kwargs() == recipe.generator_kwargs() == demo.generator_kwargs()
    assert provenance.step > 0 and provenance.cpu_hours > 0 and provenance.made_by == "scripts/ship_model.py"
    assert "image_size: 128" in provenance.config_yaml
    text = json.dumps(metadata.to_dict())
    assert os.path.expanduser("~") not in text and not os.path.isabs(provenance.run)
