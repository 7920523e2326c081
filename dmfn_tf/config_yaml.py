"""Reading configuration files: YAML parsed with a bounded, alias-free loader (`dmfn_tf.config` builds on it).

A configuration file is at most `MAX_CONFIG_BYTES` of UTF-8 text. The loader refuses anchors and
aliases, duplicate keys and nesting deeper than `_MAX_YAML_NESTING`, so any file parses in time
and memory roughly linear in its size; it reads `1e-7` as a number (YAML 1.2), not a string.
Every failure is a one-line `ConfigError` naming the file (or the `--set` key).

Example:

```python
parse_yaml("train: {learning_rate: 1e-4}", "example")
# -> {'train': {'learning_rate': 0.0001}}
```
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from dmfn_tf.errors import ConfigError

# Configuration files are a few hundred bytes; the cap bounds parsing time and memory for any file.
MAX_CONFIG_BYTES = 16 * 1024
# Deepest nesting of YAML collections accepted (configurations use 2 or 3 levels).
_MAX_YAML_NESTING = 32


def read_yaml_file(path: str) -> Any:
    """A configuration file parsed with the bounded loader; every failure is a one-line `ConfigError`."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration file ({err.strerror or err})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes, too large for a configuration file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    return parse_yaml(text, path)


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors, aliases (`&a`, `*a`) or duplicate keys, with bounded nesting.

    Configurations never need aliases, and nested aliases let a few hundred bytes stand for
    billions of values; refusing them while composing, and deep `[[[...` while scanning, keeps the
    parse's time and memory roughly linear in the file's size (itself capped by `MAX_CONFIG_BYTES`).
    """

    def fetch_flow_collection_start(self, token_class):
        # The scanner's work grows with the square of the flow nesting depth ("[[[[..."); cap it.
        if self.flow_level >= _MAX_YAML_NESTING:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {_MAX_YAML_NESTING} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(token_class)

    def construct_mapping(self, node, deep=False):
        # PyYAML keeps the last of two equal keys; a repeated key is a mistake to report instead.
        mapping = super().construct_mapping(node, deep=deep)
        if len(mapping) < len(node.value):
            seen = set()
            for key_node, _ in node.value:
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return mapping

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not accepted", event.start_mark
            )
        # Block nesting ("- - - ...") recurses here; stop long before Python's recursion limit.
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > _MAX_YAML_NESTING:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {_MAX_YAML_NESTING} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.1 (PyYAML) reads an exponent without a dot, `1e-7`, as a string; YAML 1.2, and anyone
# writing a learning rate or an epsilon, means a number.
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    """`text` parsed as YAML with `_NoAliasLoader`; any failure is a one-line `ConfigError` naming `source`."""
    loader = _NoAliasLoader(text)
    loader.name = source  # positions in error messages name the file, not "<unicode string>"
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def dump_yaml(values: dict) -> str:
    """`values` as YAML text in their own order, which `parse_yaml` reads back to equal values."""
    return yaml.safe_dump(values, sort_keys=False)
