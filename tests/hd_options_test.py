"""Tests for the high-resolution options of `dmfn inpaint` (dmfn_tf/cli/hd_options.py)."""

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.cli import main

HEIGHT, WIDTH = 60, 1100  # longer side over the default --crop-trigger (1024): auto is crop


def _files(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[20:40, 100:130] = 255
    mask[10:50, 900:1000] = 255
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return image, mask > 0


def _run(model, tmp_path, *extra):
    return main(["inpaint", "--model", model, "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize("extra", [[], ["--hd-strategy", "crop", "--trained-size", "64"], ["--hd-strategy", "resize", "--resize-limit", "550"]])
def test_large_image_over_the_budget_inpaints_with_crop_and_resize(tiny_generator_file, tmp_path, extra):
    image, hole = _files(tmp_path)
    # The photo (66,000 pixels) is over the budget; the model's inputs are not.
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "65000", *extra) == 0
    result = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(result[hole] != image[hole]) > 0.5


def test_original_still_refuses_the_image_over_the_budget(tiny_generator_file, tmp_path, capsys):
    _files(tmp_path)
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "65000", "--hd-strategy", "original") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "photo.png: 1100x60 = 66,000 pixels exceeds the budget of 65,000 pixels" in err
    assert not (tmp_path / "out").exists()


def test_crop_input_over_the_budget_names_the_models_input(tiny_generator_file, tmp_path, capsys):
    _files(tmp_path)
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "1000", "--trained-size", "64") == 2
    assert "photo.png (crop strategy, the model's input): 64x60 = 3,840 pixels exceeds the budget of 1,000" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [("--trained-size", "0", "trained-size must be positive"),
                                                    ("--crop-margin", "-1", "crop-margin must be 0 or more")])
def test_bad_values_are_one_line_errors(tiny_generator_file, tmp_path, capsys, option, value, message):
    _files(tmp_path)
    assert _run(tiny_generator_file, tmp_path, option, value) == 2
    assert message in capsys.readouterr().err


def test_trained_size_defaults_to_the_shipped_models_and_to_256_for_others(shipped_model, tiny_generator_file, tmp_path,
                                                                            capsys):
    _files(tmp_path)
    # The crop window's width is the trained size (the photo is 60 pixels high): the budget error shows it.
    assert main(["inpaint", "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out"), "--max-pixels", "1000"]) == 2
    assert "(crop strategy, the model's input): 128x60 = 7,680 pixels" in capsys.readouterr().err
    assert _run(tiny_generator_file, tmp_path, "--max-pixels", "1000") == 2
    assert "(crop strategy, the model's input): 256x60 = 15,360 pixels" in capsys.readouterr().err


# ---- The trained size comes from the model (issue 18) ----------------------------------------------

@pytest.fixture
def strategy_sizes(monkeypatch):
    """The `trained_size` of every `HDOptions` whose size the planner checks (`check_size`, once per request)."""
    from dmfn_tf.inpaint import planner

    sizes = []
    check_size = planner.check_size

    def record(height, width, options, *args, **kwargs):
        sizes.append(options.trained_size)
        return check_size(height, width, options, *args, **kwargs)

    monkeypatch.setattr(planner, "check_size", record)
    return sizes


def _small_files(tmp_path):
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    mask = np.zeros((40, 48), np.uint8)
    mask[10:20, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")


def _inpaint(tmp_path, *model):
    return main(["inpaint", *model, "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"),
                 "--out", str(tmp_path / "out")])


def test_a_run_folder_from_before_descriptions_gives_its_config_size(tiny_generator_file, tiny_config, tmp_path,
                                                                    strategy_sizes):
    import dataclasses
    import shutil

    from dmfn_tf.config import save_config

    run = tmp_path / "old_run"
    run.mkdir()
    shutil.copyfile(tiny_generator_file, run / "generator.keras")  # a plain Keras file, as older runs wrote
    cfg = tiny_config()
    save_config(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=192)), run / "config.yaml")
    _small_files(tmp_path)
    assert _inpaint(tmp_path, "--model", str(run)) == 0
    assert _inpaint(tmp_path, "--model", str(run / "generator.keras")) == 0
    assert strategy_sizes == [192, 192]


def test_a_converted_checkpoint_inpaints_at_its_trained_size(tmp_path, strategy_sizes):
    from dmfn_tf.convert.converter import convert_checkpoint
    from dmfn_tf.convert.official_mapping import discriminator_to_reference_state_dict, generator_to_reference_state_dict
    from dmfn_tf.model_metadata import read_model_metadata
    from dmfn_tf.models.discriminator import build_discriminator
    from dmfn_tf.models.generator import build_generator

    generator, discriminator = tmp_path / "their_G.npz", tmp_path / "their_D.npz"
    np.savez(generator, **generator_to_reference_state_dict(build_generator(nf=4, n_blocks=1, block="official")))
    np.savez(discriminator, **discriminator_to_reference_state_dict(build_discriminator(nf=4, image_size=128)))
    convert_checkpoint(generator, out_dir=tmp_path / "converted")  # the authors' 256²
    convert_checkpoint(generator, discriminator, out_dir=tmp_path / "with_d")  # their D says 128²
    _small_files(tmp_path)
    for model in (tmp_path / "converted", tmp_path / "with_d", generator):
        assert _inpaint(tmp_path, "--model", str(model)) == 0
    assert strategy_sizes == [256, 128, 256]
    metadata = read_model_metadata(str(tmp_path / "with_d" / "generator.keras"))
    assert metadata.provenance.made_by == "dmfn convert" and str(tmp_path) not in metadata.provenance.data
    assert (metadata.architecture.nf, metadata.architecture.n_blocks, metadata.architecture.block) == (4, 1, "official")


def test_the_shipped_model_inpaints_at_128_and_the_flag_overrides(shipped_model, tiny_generator_file, tmp_path,
                                                                  strategy_sizes, capsys):
    _small_files(tmp_path)
    assert _inpaint(tmp_path) == 0  # no --model: the shipped one
    assert _inpaint(tmp_path, "--model", "shipped", "--trained-size", "96") == 0
    assert _inpaint(tmp_path, "--model", tiny_generator_file) == 0  # records nothing: 256, said once
    assert strategy_sizes == [128, 96, 256]
    assert capsys.readouterr().err.count("does not record the size it was trained on; assuming 256") == 1
