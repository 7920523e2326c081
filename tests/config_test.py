import pathlib

import pytest

from dmfn_tf.config import ExperimentConfig, load_config, save_config
from dmfn_tf.errors import ConfigError

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["celeba_hq", "paris_streetview", "places2", "ffhq"])
def test_shipped_configs_hold_the_reference_recipe(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert (cfg.model.nf, cfg.model.n_blocks, cfg.model.image_size) == (64, 8, 256)
    assert (cfg.loss.lambda_vgg, cfg.loss.eta_dis_fm, cfg.loss.mu_adv, cfg.loss.gamma_align) == (25.0, 5.0, 0.003, 1.0)
    assert (cfg.train.batch_size, cfg.train.learning_rate, cfg.train.beta_1, cfg.train.beta_2) == (16, 2e-4, 0.5, 0.999)
    assert cfg.data.crop == ("center" if name in ("celeba_hq", "ffhq") else "random")
    # The authors' run (SPEC §6): one halving at the last step, PyTorch's Adam epsilon, their box shrink.
    assert (cfg.train.lr_decay_steps, cfg.train.total_steps) == ([100000], 100000)
    assert (cfg.train.adam_epsilon, cfg.train.adam_epsilon_convention) == (1e-8, "pytorch")
    assert (cfg.data.mask_delta, cfg.data.mask_shrink) == (32, "reference")


def test_tiny_config():
    cfg = load_config(CONFIGS / "tiny.yaml")
    assert (cfg.model.nf, cfg.model.image_size, cfg.perceptual.weights) == (8, 64, "none")


def _write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_misspelt_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "model:\n  nff: 32\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*unknown key\(s\) model\.nff"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) modle"):
        load_config(_write(tmp_path, "modle: {}\n"))


@pytest.mark.parametrize(
    "text,match",
    [
        ("model:\n  block: fancy\n", "model.block: unknown block variant 'fancy'"),
        ("model:\n  nf: 0\n", "model.nf: must be a positive integer, got 0"),
        ("model:\n  image_size: 100\n", "model.image_size: .*multiple of 64, got 100"),
        ("model:\n  nf: eight\n", "key 'model.nf' expects int, got str"),
        ("loss:\n  guidance: median\n", "loss.guidance: unknown mode 'median'"),
        ("train:\n  lr_decay_steps: [3, 1]\n", "must be increasing"),
        ("model: 3\n", "section 'model' must be a mapping"),
        ("data:\n  mask: file\n", "data.mask_path: required"),
        ("model:\n  discriminator_nf: -1\n", "model.discriminator_nf: must be >= 0"),
        ("train:\n  precision: float8\n", "train.precision: unknown policy 'float8'"),
    ],
)
def test_bad_values_are_named(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(_write(tmp_path, text))
    assert "exp.yaml" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*absent.yaml"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [\n"))


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "tiny.yaml", overrides={"model": {"nf": 4}, "loss": {"mu_adv": 0}})
    assert cfg.model.nf == 4 and cfg.loss.mu_adv == 0.0 and isinstance(cfg.loss.mu_adv, float)
    out = tmp_path / "saved.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    assert ExperimentConfig() == load_config(_write(tmp_path, "{}\n"))


def test_discriminator_width_defaults_to_nf():
    cfg = load_config(CONFIGS / "tiny.yaml")
    assert cfg.model.discriminator_kwargs()["nf"] == cfg.model.nf
    cfg = load_config(CONFIGS / "tiny.yaml", overrides={"model": {"discriminator_nf": 32}})
    assert cfg.model.discriminator_kwargs()["nf"] == 32 and cfg.model.generator_kwargs()["nf"] == 8


def test_fidelity_options_defaults_and_checks(tmp_path):
    cfg = ExperimentConfig()
    assert (cfg.model.init, cfg.model.batchnorm_variance) == ("keras", "unbiased")
    assert (cfg.train.adam_epsilon, cfg.train.adam_epsilon_convention) == (1e-8, "pytorch")
    assert cfg.data.mask_shrink == "independent" and cfg.perceptual.preprocessing == "auto"
    assert cfg.model.discriminator_kwargs()["unbiased_variance"] is True
    for text, match in (
        ("model: {init: xavier}\n", r"model\.init: unknown initialisation 'xavier'"),
        ("model: {batchnorm_variance: sample}\n", r"model\.batchnorm_variance: unknown value"),
        ("train: {adam_epsilon: 0}\n", r"train\.adam_epsilon: must be positive"),
        ("train: {adam_epsilon_convention: tf}\n", r"train\.adam_epsilon_convention: unknown value 'tf'"),
        ("data: {mask_shrink: both}\n", r"data\.mask_shrink: unknown value 'both'"),
        ("perceptual: {preprocessing: authors}\n", r"perceptual\.preprocessing: unknown value 'authors'"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(_write(tmp_path, text))
    cfg = load_config(_write(tmp_path, "model: {init: reference}\nperceptual: {preprocessing: torch_authors_bug}\n"))
    assert (cfg.model.init, cfg.perceptual.preprocessing) == ("reference", "torch_authors_bug")
