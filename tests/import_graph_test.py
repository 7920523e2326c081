"""The package's imports point one way: cli -> app -> jobs -> model files -> model parts and data -> base."""

import ast
import pathlib

import pytest

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "dmfn_tf"

# Layers from the bottom. A module may import modules of a lower layer, or of its own package
# (e.g. `dmfn_tf.data.masks` -> `dmfn_tf.data.image_files`); never a higher layer or a sibling package
# of its own layer. Longest prefix wins, so `dmfn_tf.convert.converter` sits above `dmfn_tf.convert`.
LAYERS = (
    ("dmfn_tf.errors",),
    ("dmfn_tf.atomic_files", "dmfn_tf.input_limits", "dmfn_tf.restricted_pickle", "dmfn_tf.models.layers",
     "dmfn_tf.inpaint.contract", "dmfn_tf.config_yaml"),
    ("dmfn_tf.config", "dmfn_tf.output_files", "dmfn_tf.inpaint.precision", "dmfn_tf.model_file_checks"),
    ("dmfn_tf.models", "dmfn_tf.data", "dmfn_tf.model_metadata"),
    ("dmfn_tf.convert",),  # reading the authors' checkpoints into models
    ("dmfn_tf.model_io", "dmfn_tf.inpaint"),  # inpaint: files, request, planner, runner
    ("dmfn_tf.training", "dmfn_tf.evaluation", "dmfn_tf.serving", "dmfn_tf.convert.converter"),
    ("dmfn_tf.app",),  # the painting page: calls the planner and the runner
    ("dmfn_tf.cli",),
    ("dmfn_tf.__main__",),
)


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> tuple[int, str]:
    """(layer, the prefix that placed it) of a module."""
    matches = [(len(prefix), layer, prefix) for layer, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer of LAYERS; add it")
    _, layer, prefix = max(matches)
    return layer, prefix


def _is_module(path: pathlib.Path) -> bool:
    """`path` (without suffix) is a module file or a package folder."""
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: pathlib.Path) -> set[str]:
    """Every `dmfn_tf` module a file imports, at any depth (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            # `from dmfn_tf.data import masks` imports the module `dmfn_tf.data.masks`.
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if _is_module(PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")))
    return {name for name in found if name == "dmfn_tf" or name.startswith("dmfn_tf.")}


def _sources():
    return [path for path in sorted(PACKAGE.rglob("*.py")) if _module_name(path) != "dmfn_tf"]


def test_every_module_has_a_layer():
    for path in _sources():
        _unit(_module_name(path))


def _violations(importer: str, imported_modules: set[str]) -> list[str]:
    layer, unit = _unit(importer)
    wrong = []
    for imported in sorted(imported_modules):
        if imported == "dmfn_tf":
            wrong.append(f"{imported} (the package facade)")
            continue
        imported_layer, imported_unit = _unit(imported)
        if imported_unit != unit and imported_layer >= layer:  # own package: free
            wrong.append(f"{imported} (layer {imported_layer})")
    return wrong


@pytest.mark.parametrize("path", _sources(), ids=lambda path: _module_name(path))
def test_imports_point_down(path):
    importer = _module_name(path)
    wrong = _violations(importer, _imports(path))
    assert not wrong, f"{importer} (layer {_unit(importer)[0]}) imports {', '.join(wrong)}"


def test_the_rule_catches_upward_and_sideways_imports(tmp_path):
    copy = tmp_path / "perceptual.py"
    copy.write_text("def build():\n    from dmfn_tf.evaluation.lpips import LPIPS\n    from dmfn_tf.data import masks\n")
    assert _violations("dmfn_tf.models.perceptual", _imports(copy)) == [
        "dmfn_tf.data (layer 3)", "dmfn_tf.data.masks (layer 3)", "dmfn_tf.evaluation.lpips (layer 6)"]
    assert _violations("dmfn_tf.convert.reference", {"dmfn_tf.convert.converter", "dmfn_tf.convert.official_mapping"}) == [
        "dmfn_tf.convert.converter (layer 6)"]
    assert _violations("dmfn_tf.serving.tflite_export", {"dmfn_tf.convert.converter"}) == [
        "dmfn_tf.convert.converter (layer 6)"]
