"""Functions stay short: none in `dmfn_tf/` is longer than 60 lines (docstring included), so each reads at once."""

import ast
import pathlib

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "dmfn_tf"
MAX_LINES = 60


def long_functions(path: pathlib.Path, max_lines: int = MAX_LINES) -> list[str]:
    """`"file:line name (N lines)"` for each function or method of `path` longer than `max_lines`, nested ones too."""
    tree = ast.parse(path.read_text(), str(path))
    shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > max_lines:
                found.append(f"{shown}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_of_the_package_is_longer_than_60_lines():
    offenders = [entry for path in sorted(PACKAGE.rglob("*.py")) for entry in long_functions(path)]
    assert not offenders, f"functions longer than {MAX_LINES} lines; split them into steps:\n" + "\n".join(offenders)


def test_the_rule_catches_a_long_function_and_its_nested_ones(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(60))
    source = tmp_path / "long.py"
    source.write_text(f"def short():\n    return 1\n\n\ndef outer():\n    def inner():\n{body}\n    return inner\n")
    found = long_functions(source)
    assert [entry.split(" ", 1)[1] for entry in found] == ["outer (63 lines)", "inner (61 lines)"]
