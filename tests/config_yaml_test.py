"""Tests for dmfn_tf.config_yaml: the bounded YAML reading under every configuration file.

The hostile-file cases (alias bombs, deep nesting, oversized files) go through `load_config` in
config_test.py; these check the module's own functions.
"""

import pytest

from dmfn_tf.config_yaml import MAX_CONFIG_BYTES, dump_yaml, parse_yaml, read_yaml_file
from dmfn_tf.errors import ConfigError


def test_parse_yaml_reads_exponents_without_a_dot_as_numbers():
    assert parse_yaml("train: {learning_rate: 1e-4, seed: 3}", "example") == {"train": {"learning_rate": 1e-4, "seed": 3}}


@pytest.mark.parametrize(
    "text, problem",
    [("a: 1\na: 2\n", "duplicate key 'a'"), ("a: &x 1\nb: *x\n", "anchors and aliases"), ("a: [\n", "not valid YAML")],
)
def test_parse_yaml_refuses_in_one_line_naming_the_source(text, problem):
    with pytest.raises(ConfigError) as raised:
        parse_yaml(text, "--set a")
    assert str(raised.value).startswith("--set a: ") and problem in str(raised.value) and "\n" not in str(raised.value)


def test_dump_yaml_keeps_the_order_and_reads_back():
    values = {"z": {"b": [1, 2], "a": 1e-8}, "a": "text"}
    text = dump_yaml(values)
    assert text.index("z:") < text.index("a: text")
    assert parse_yaml(text, "round trip") == values


def test_read_yaml_file_names_a_missing_or_oversized_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml_file(str(tmp_path / "missing.yaml"))
    big = tmp_path / "big.yaml"
    big.write_text("name: " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=f"{big}: larger than {MAX_CONFIG_BYTES} bytes"):
        read_yaml_file(str(big))
