"""Model files refused from what they declare, before Keras inflates or builds anything (issue 19)."""

import json
import os
import zipfile

import pytest

from dmfn_tf.cli import main
from dmfn_tf.input_limits import MAX_MODEL_CONFIG_BYTES
from dmfn_tf.model_file_checks import MAX_PARAMETERS, ModelLoadError, check_keras_file, parameter_bound, unknown_layers
from dmfn_tf.model_io import load_generator, resolve_generator_path


def _rewritten(source, destination, config=None, extra=None):
    """A copy of the `.keras` file `source` with `config` (a dict or bytes) as config.json, plus `extra` members."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in original.infolist():
            data = original.read(info)
            if info.filename == "config.json" and config is not None:
                data = config if isinstance(config, bytes) else json.dumps(config).encode()
            copy.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            copy.writestr(name, data)
    return str(destination)


def _config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _with_filters(config, filters):
    """The config with its first convolution declaring `filters` output channels."""
    first = next(layer for layer in config["config"]["layers"] if "filters" in layer["config"])
    first["config"]["filters"] = filters
    return config


def test_a_config_that_inflates_hugely_is_refused_before_inflating(tmp_path, tiny_generator_file):
    padded = json.dumps(_config(tiny_generator_file)).encode() + b" " * (2 * MAX_MODEL_CONFIG_BYTES)
    path = _rewritten(tiny_generator_file, tmp_path / "bomb.keras", config=padded)
    assert os.path.getsize(path) < MAX_MODEL_CONFIG_BYTES // 10  # a small file declaring a large config
    with pytest.raises(ModelLoadError, match=r"bomb.keras: config.json declares \d+ bytes, above the limit"):
        load_generator(path)


def test_a_layer_declaring_huge_widths_is_refused_before_building(tmp_path, tiny_generator_file):
    # 20,000 filters: harmless to build, but far beyond any weights the file could hold.
    path = _rewritten(tiny_generator_file, tmp_path / "wide.keras", config=_with_filters(_config(tiny_generator_file), 20_000))
    with pytest.raises(ModelLoadError, match=r"wide.keras: its layers declare up to [\d,]+ parameters, above the limit"):
        load_generator(path)
    assert parameter_bound(_with_filters(_config(tiny_generator_file), 5_000_000)) > MAX_PARAMETERS


def test_layers_sized_by_other_keys_are_refused_before_building(tmp_path, tiny_generator_file):
    config = _config(tiny_generator_file)
    layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "ReLU")
    layer.update(class_name="Embedding", registered_name=None)
    layer["config"].update(input_dim=10**9, output_dim=64)  # 256 GB of weights if built
    path = _rewritten(tiny_generator_file, tmp_path / "embedding.keras", config=config)
    with pytest.raises(ModelLoadError, match=r"embedding.keras: not a DMFN generator file .* class Embedding"):
        load_generator(path)


def test_the_bound_admits_the_largest_shipped_architectures():
    import keras

    from dmfn_tf.models.generator import build_generator

    for block in ("paper", "official"):
        generator = build_generator(nf=64, n_blocks=8, block=block)
        config = keras.saving.serialize_keras_object(generator)
        bound = parameter_bound(config)
        assert generator.count_params() <= bound <= MAX_PARAMETERS, (block, generator.count_params(), bound)
        assert unknown_layers(config) == []


def test_a_file_that_is_not_a_zip_says_so(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive" * 10)
    with pytest.raises(ModelLoadError, match=r"broken.keras: not a Keras model file \(not a zip archive\)"):
        load_generator(str(path))


def test_too_many_members_and_a_missing_config(tmp_path, tiny_generator_file):
    crowded = _rewritten(tiny_generator_file, tmp_path / "crowded.keras", extra={f"m{i}": b"" for i in range(100)})
    with pytest.raises(ModelLoadError, match="crowded.keras: not a Keras model file .a zip archive of 103 members"):
        check_keras_file(crowded)
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ModelLoadError, match="empty.keras: not a Keras model file .no config.json"):
        check_keras_file(str(empty))


def test_a_fifo_or_a_folder_named_keras_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    # resolve_generator_path first: before the fix it returned the FIFO, which load_generator then blocked on.
    with pytest.raises(ModelLoadError, match=r"pipe.keras: not a regular file \(a FIFO\)"):
        resolve_generator_path(str(fifo))
    with pytest.raises(ModelLoadError, match=r"pipe.keras: not a regular file \(a FIFO\)"):
        load_generator(str(fifo))
    folder = tmp_path / "folder.keras"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match="folder.keras: a folder, not a model file"):
        load_generator(str(folder))


@pytest.mark.parametrize("kind", ["fifo", "not a zip", "wide"])
def test_the_command_line_prints_one_line_and_exits_2(tmp_path, capsys, tiny_generator_file, kind):
    path = tmp_path / "model.keras"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "not a zip":
        path.write_bytes(b"\0" * 100)
    else:
        _rewritten(tiny_generator_file, path, config=_with_filters(_config(tiny_generator_file), 5_000_000))
    code = main(["export", "--model", str(path), "--format", "keras", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith(f"dmfn export: error: {path}: "), err


@pytest.mark.parametrize("device", ["/dev/urandom", "/dev/zero", "/dev/null"])
def test_a_link_to_a_device_named_keras_is_refused_without_reading_it(tmp_path, device):
    path = tmp_path / "model.keras"
    path.symlink_to(device)
    with pytest.raises(ModelLoadError, match=r"model.keras: not a regular file \(a character device\)"):
        load_generator(str(path))


def _declaring(path, member, size):
    """Patches the central directory of the zip at `path` so that `member` declares `size` bytes inflated."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.index(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name:
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + 24:at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_a_member_declaring_a_huge_size_is_refused_before_inflating(tmp_path, tiny_generator_file):
    path = tmp_path / "bomb.keras"
    path.write_bytes(open(tiny_generator_file, "rb").read())
    _declaring(path, "model.weights.h5", 2**32 - 1)
    with pytest.raises(ModelLoadError, match="bomb.keras: .*above the limit"):
        load_generator(str(path))


def test_a_symbolic_link_member_or_a_truncated_file_is_one_line(tmp_path, tiny_generator_file):
    linked = tmp_path / "linked.keras"
    with zipfile.ZipFile(tiny_generator_file) as original, zipfile.ZipFile(linked, "w") as copy:
        for info in original.infolist():
            if info.filename == "model.weights.h5":
                link = zipfile.ZipInfo("model.weights.h5")
                link.external_attr = (0o120777 << 16)  # a symbolic link to /dev/zero, as `zip --symlinks` stores it
                copy.writestr(link, "/dev/zero")
            else:
                copy.writestr(info.filename, original.read(info))
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(open(tiny_generator_file, "rb").read()[:-4000])
    for path in (linked, truncated):
        with pytest.raises(ModelLoadError) as raised:
            load_generator(str(path))
        assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value), raised.value
