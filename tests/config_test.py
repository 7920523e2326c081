"""Tests of `dmfn_tf.config`: typed sections, overrides, and refusal of hostile or careless files."""

import pathlib
import time
import tracemalloc

import pytest

from dmfn_tf.config import ExperimentConfig, apply_overrides, load_config, parse_overrides, save_config
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
        ("model: 0\n", "section 'model' must be a mapping, got int"),
        ("false\n", "section 'top level' must be a mapping, got bool"),
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
    cfg = load_config(CONFIGS / "tiny.yaml", overrides={"model.nf": 4, "loss.mu_adv": 0})
    assert cfg.model.nf == 4 and cfg.loss.mu_adv == 0.0 and isinstance(cfg.loss.mu_adv, float)
    out = tmp_path / "saved.yaml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    assert ExperimentConfig() == load_config(_write(tmp_path, "{}\n"))


def test_discriminator_width_defaults_to_nf():
    cfg = load_config(CONFIGS / "tiny.yaml")
    assert cfg.model.discriminator_kwargs()["nf"] == cfg.model.nf
    cfg = load_config(CONFIGS / "tiny.yaml", overrides={"model.discriminator_nf": 32})
    assert cfg.model.discriminator_kwargs()["nf"] == 32 and cfg.model.generator_kwargs()["nf"] == 8


# ----- Hostile and careless files -------------------------------------------------------------------


def _alias_bomb():
    """Nine levels of nine aliases in one list value: under 400 bytes that stand for 9**9 (387 million)
    values. Before aliases were refused, the error message's repr of it ran for minutes and gigabytes."""
    levels = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return f"model:\n  nf: [{', '.join(levels)}]\n"


def _one_line_error(function):
    """The message of the `ConfigError` that `function()` raises, checked to be one line."""
    with pytest.raises(ConfigError) as raised:
        function()
    message = str(raised.value)
    assert "\n" not in message
    return message


def _measured(function):
    """Runs `function`; returns (its one-line ConfigError message, seconds, peak bytes Python allocated meanwhile)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = _one_line_error(function)
        return message, time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "text, message",
    [
        (_alias_bomb(), "anchors and aliases"),
        ("model: &m {nf: 8}\nname: x\n", "anchors and aliases"),
        ("model: {nf: " + "[" * 5000 + "\n", "nested deeper than 32 levels"),
        ("- " * 4000 + "1\n", "nested deeper than 32 levels"),
        ("name: " + "x" * 20000 + "\n", "larger than 16384 bytes"),
    ],
    ids=["alias_bomb", "anchor", "deep_flow", "deep_block", "oversized"],
)
def test_hostile_yaml_fails_fast_in_little_memory(tmp_path, text, message):
    path = _write(tmp_path, text)
    error, seconds, peak = _measured(lambda: load_config(path))
    assert message in error and "exp.yaml" in error
    print(f"{len(text.encode())} bytes: refused in {seconds:.3f} s, peak {peak / 1e6:.2f} MB")
    assert seconds < 1.0 and peak < 8e6


def test_alias_bomb_is_under_500_bytes():
    assert len(_alias_bomb().encode()) < 500
    assert _alias_bomb().count("*a") == 8 * 9


def test_non_utf8_file_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    message = _one_line_error(lambda: load_config(path))
    assert message.startswith(f"{path}: not UTF-8 text (byte 9")


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("train:\n  learning_rate: .nan\n", "train.learning_rate", "finite"),
        ("train:\n  learning_rate: -0.1\n", "train.learning_rate", "positive"),
        ("train:\n  learning_rate: 0\n", "train.learning_rate", "positive"),
        ("loss:\n  lambda_vgg: .inf\n", "loss.lambda_vgg", "finite"),
        ("loss:\n  mu_adv: -.inf\n", "loss.mu_adv", "finite"),
        ("loss:\n  eta_dis_fm: -1\n", "loss.eta_dis_fm", ">= 0"),
        ("loss:\n  gamma_align: 1" + "0" * 400 + "\n", "loss.gamma_align", "finite"),
        ("train:\n  beta_1: 7\n", "train.beta_1", "in [0, 1)"),
        ("train:\n  beta_2: 1.0\n", "train.beta_2", "in [0, 1)"),
        ("train:\n  beta_1: -0.1\n", "train.beta_1", "in [0, 1)"),
        ("train:\n  lr_decay_factor: -3\n", "train.lr_decay_factor", "in (0, 1]"),
        ("train:\n  lr_decay_factor: 0\n", "train.lr_decay_factor", "in (0, 1]"),
        ("train:\n  lr_decay_factor: 1.5\n", "train.lr_decay_factor", "in (0, 1]"),
        ("train:\n  batch_size: 0\n", "train.batch_size", "at least 1"),
        ("train:\n  total_steps: -5\n", "train.total_steps", "at least 1"),
        ("train:\n  steps_per_epoch: 0\n", "train.steps_per_epoch", "at least 1"),
        ("train:\n  seed: -1\n", "train.seed", "in [0, 4294967295]"),
        ("train:\n  total_steps: 99999999999999999999\n", "train.total_steps", "64-bit"),
        ("train:\n  lr_decay_steps: [0, 5]\n", "train.lr_decay_steps", "steps >= 1"),
        ("train:\n  lr_decay_steps: [5, 5]\n", "train.lr_decay_steps", "increasing"),
        ("train:\n  lr_decay_steps: 5\n", "train.lr_decay_steps", "expects a list"),
        ("train:\n  lr_decay_steps: [1, x]\n", "train.lr_decay_steps[1]", "expects int, got str 'x'"),
        ("train:\n  lr_decay_steps: [1, 2.5]\n", "train.lr_decay_steps[1]", "expects int, got float"),
        ("train:\n  lr_decay_steps: [[1]]\n", "train.lr_decay_steps[0]", "expects int, got list"),
        ("data:\n  mask_delta: -2\n", "data.mask_delta", ">= 0"),
        ("model:\n  nf: 8\n  nf: 9\n", "duplicate key 'nf'", "line 3"),
        ("loss:\n  mu_adv: true\n", "loss.mu_adv", "expects float, got bool"),
    ],
)
def test_out_of_range_values_name_key_and_file(tmp_path, text, key, problem):
    message = _one_line_error(lambda: load_config(_write(tmp_path, text)))
    assert message.startswith(f"{tmp_path / 'exp.yaml'}: ")
    assert key in message and problem in message, message


@pytest.mark.parametrize(
    "assignment, key, problem",
    [
        ("train.lr_decay_steps=[1, x]", "train.lr_decay_steps[1]", "expects int, got str 'x'"),
        ("train.learning_rate=.nan", "train.learning_rate", "finite"),
        ("train.beta_1=7", "train.beta_1", "in [0, 1)"),
        ("model.nf=*a", "--set model.nf", "anchors and aliases"),
        ("model.nf=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "--set model.nf", "nested"),
        ("model.nf.width=3", "model.nf.width", "'model.nf' is a value, not a section"),
    ],
)
def test_set_values_are_checked_like_file_values(assignment, key, problem):
    message = _one_line_error(lambda: load_config(CONFIGS / "tiny.yaml", parse_overrides([assignment])))
    assert key in message and problem in message, message
    assert "tiny.yaml" in message or message.startswith("--set")


def test_overrides_reach_only_the_keys_they_name():
    tiny = load_config(CONFIGS / "tiny.yaml")
    cfg = apply_overrides(tiny, {"model": {"nf": 4}, "train.lr_decay_steps": [2, 4], "data.path": "photos"})
    assert (cfg.model.nf, cfg.model.n_blocks, cfg.model.image_size) == (4, tiny.model.n_blocks, tiny.model.image_size)
    assert cfg.train.lr_decay_steps == [2, 4] and cfg.data.path == "photos"
    assert tiny.model.nf == 8  # the input is left unchanged
    flat = cfg.to_flat_dict()
    assert flat["model.nf"] == 4 and flat["train.lr_decay_steps"] == [2, 4]
    assert apply_overrides(ExperimentConfig(), flat) == cfg


def test_parse_overrides_reads_yaml_values():
    assignments = ["model.nf=8", "train.lr_decay_steps=[10, 20]", "train.deterministic=true", "data.crop=center"]
    assert parse_overrides(assignments) == {
        "model.nf": 8,
        "train.lr_decay_steps": [10, 20],
        "train.deterministic": True,
        "data.crop": "center",
    }
    with pytest.raises(ConfigError, match="'model' is a value, not a section"):
        load_config(CONFIGS / "tiny.yaml", parse_overrides(["model=1", "model.nf=8"]))
    for bad in ("model.nf", "=8", "model..nf=8"):
        with pytest.raises(ConfigError, match="--set expects key=value"):
            parse_overrides([bad])


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


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    # PyYAML alone reads `1e-7` as the string '1e-7'; the configuration reads the number.
    cfg = load_config(_write(tmp_path, "train:\n  learning_rate: 3e-4\n  adam_epsilon: 1E-7\n"))
    assert (cfg.train.learning_rate, cfg.train.adam_epsilon) == (3e-4, 1e-7)
    assert parse_overrides(["train.learning_rate=5e-5", "name=1e3x"]) == {"train.learning_rate": 5e-5, "name": "1e3x"}
    with pytest.raises(ConfigError, match="adam_epsilon"):  # read as the number -1e-8, then range-checked
        load_config(CONFIGS / "tiny.yaml", parse_overrides(["train.adam_epsilon=-1e-8"]))
