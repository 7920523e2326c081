"""Tests of reading `torch.save` checkpoints without PyTorch (PyTorch is not installed here).

Three kinds of input: the authors' generator checkpoint from the shared fixtures (against the same
tensors exported to `.npz`), small files written by PyTorch itself (`tests/data/`, made by
`scripts/make_torch_checkpoint_fixtures.py`, against the arrays PyTorch read back), and checkpoints
built here opcode by opcode, laid out as `torch.save` lays them out, for views, dtypes, byte orders,
malicious pickles and damaged files.
"""

import io
import os
import pathlib
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.convert.torch_checkpoint import (
    CheckpointFormatError,
    NotAStateDictError,
    load_state_dict,
    load_torch_state_dict,
)
from dmfn_tf.errors import UserError
from dmfn_tf.restricted_pickle import PickleSecurityError
from conftest import run_cases_measured

DATA = pathlib.Path(__file__).resolve().parent / "data"


class PickleWriter:
    """Writes a protocol-2 pickle opcode by opcode, as torch.save's pickler emits it."""

    def __init__(self):
        self.stream = io.BytesIO()
        self.stream.write(b"\x80\x02")

    def op(self, code: bytes):
        self.stream.write(code)
        return self

    def global_(self, module: str, name: str):
        return self.op(b"c" + f"{module}\n{name}\n".encode())

    def string(self, value: str):
        data = value.encode()
        return self.op(b"X" + struct.pack("<I", len(data)) + data)

    def int(self, value: int):
        return self.op(b"J" + struct.pack("<i", value))

    def int_tuple(self, values):
        self.op(b"(")
        for value in values:
            self.int(value)
        return self.op(b"t")

    def empty_ordered_dict(self):
        return self.global_("collections", "OrderedDict").op(b")R")

    def tensor(self, storage_type: str, key: str, numel: int, offset: int, size, stride):
        """`_rebuild_tensor_v2((storage pid), offset, size, stride, False, OrderedDict())`."""
        self.global_("torch._utils", "_rebuild_tensor_v2").op(b"(")
        self.op(b"(").string("storage").global_("torch", storage_type).string(key).string("cpu").int(numel)
        self.op(b"tQ")  # the storage tuple, as a persistent id
        self.int(offset).int_tuple(size).int_tuple(stride).op(b"\x89").empty_ordered_dict()
        return self.op(b"tR")

    def getvalue(self) -> bytes:
        return self.stream.getvalue() + b"."


def state_dict_pickle(tensors) -> bytes:
    """An OrderedDict of tensors; each item is `(name, storage_type, key, numel, offset, size, stride)`."""
    writer = PickleWriter().empty_ordered_dict().op(b"(")
    for name, *tensor in tensors:
        writer.string(name).tensor(*tensor)
    return writer.op(b"u").getvalue()


def write_checkpoint(path, pickled: bytes, storages: dict, byteorder: str | None = "little", prefix="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", pickled)
        if byteorder is not None:
            archive.writestr(f"{prefix}/byteorder", byteorder)
        for key, blob in storages.items():
            archive.writestr(f"{prefix}/data/{key}", blob)
        archive.writestr(f"{prefix}/version", "3\n")
    return path


def strided_reference(storage: np.ndarray, offset: int, size, stride) -> np.ndarray:
    """Element [i, j] of a 2-D view is storage[offset + i*stride[0] + j*stride[1]], by definition."""
    out = np.empty(size, storage.dtype)
    for i in range(size[0]):
        for j in range(size[1]):
            out[i, j] = storage[offset + i * stride[0] + j * stride[1]]
    return out


def assert_bit_exact(actual: dict, expected: dict):
    assert list(actual) == list(expected)
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        assert actual[name].shape == expected[name].shape, name
        assert actual[name].tobytes() == expected[name].tobytes(), name


def test_official_generator_checkpoint_matches_its_npz_export(fixtures_dir):
    expected = np.load(fixtures_dir / "official_G_nf16_res2_weights.npz")
    expected = {name: expected[name] for name in expected.files}
    assert len(expected) == 44
    assert_bit_exact(load_torch_state_dict(fixtures_dir / "official_G_nf16_res2.pth"), expected)
    assert_bit_exact(load_state_dict(fixtures_dir / "official_G_nf16_res2.pth"), expected)
    assert_bit_exact(load_state_dict(fixtures_dir / "official_G_nf16_res2_weights.npz"), expected)


@pytest.mark.parametrize("file_name", ["torch_views.pth", "torch_views_legacy.pth"])
def test_torch_written_views_and_dtypes_match_what_torch_reads(file_name):
    expected = np.load(DATA / "torch_checkpoint_expected.npz")
    names = [name for name in expected.files if not name.startswith("wrapped/")]
    state = load_torch_state_dict(DATA / file_name)
    assert_bit_exact(state, {name: expected[name] for name in names})
    assert state["float16"].dtype == np.float16 and state["bfloat16"].dtype == np.float32
    assert state["uint16"].tolist() == [0, 1, 40000, 65535]
    # Views of one base tensor (saved as `base.t()`, `base[1:5, 2]`, `base[::2, 1::2]`) agree with each other.
    np.testing.assert_array_equal(state["transposed"][2, 1:5], state["column_slice"])
    np.testing.assert_array_equal(state["transposed"].T[::2, 1::2], state["strided_2d"])
    np.testing.assert_array_equal(state["shared_head"].ravel(), np.arange(8, dtype=np.float32))
    np.testing.assert_array_equal(state["shared_tail"], np.arange(12, 20, dtype=np.float32).reshape(4, 2).T)
    assert state["scalar"].shape == () and state["scalar"] == 7
    assert state["empty"].shape == (0, 3)


def test_wrapped_checkpoint_with_parameters_and_optimizer_state_is_unwrapped():
    expected = np.load(DATA / "torch_checkpoint_expected.npz")
    wrapped = {name[len("wrapped/") :]: expected[name] for name in expected.files if name.startswith("wrapped/")}
    assert list(wrapped) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert_bit_exact(load_torch_state_dict(DATA / "torch_wrapped.pth"), wrapped)


def test_hand_built_offset_and_strided_views_share_one_storage(tmp_path):
    storage = np.arange(24, dtype=np.float32) * 0.5 - 3
    views = {"transposed": (2, (3, 4), (1, 3)), "strided": (5, (2, 3), (8, 2)), "row": (20, (1, 4), (4, 1))}
    pickled = state_dict_pickle((name, "FloatStorage", "0", 24, *view) for name, view in views.items())
    state = load_torch_state_dict(write_checkpoint(tmp_path / "views.pth", pickled, {"0": storage.tobytes()}))
    assert list(state) == list(views)
    for name, view in views.items():
        np.testing.assert_array_equal(state[name], strided_reference(storage, *view))
        assert state[name].flags.c_contiguous and state[name].flags.writeable


def test_half_bfloat16_and_big_endian_storages_convert(tmp_path):
    half = np.array([0.5, -1.25, 65504.0, 2.0**-24], np.float16)
    # Values whose float32 bits end in 16 zeros, so their upper halves are exact bfloat16 numbers.
    bfloat = np.array([1.0, -2.5, 3.140625, 1e-38], np.float32)
    bfloat = (bfloat.view(np.uint32) >> 16 << 16).view(np.float32)
    doubles = np.array([1.0 / 3.0, -7.0], ">f8")
    pickled = state_dict_pickle(
        [
            ("half", "HalfStorage", "0", 4, 0, (2, 2), (2, 1)),
            ("bfloat", "BFloat16Storage", "1", 4, 0, (4,), (1,)),
            ("double", "DoubleStorage", "2", 2, 0, (2,), (1,)),
        ]
    )
    bfloat_bits = (bfloat.view(np.uint32) >> 16).astype(">u2")
    storages = {"0": half.astype(">f2").tobytes(), "1": bfloat_bits.tobytes(), "2": doubles.tobytes()}
    state = load_torch_state_dict(write_checkpoint(tmp_path / "big.pth", pickled, storages, byteorder="big"))
    assert state["half"].dtype == np.float16 and state["half"].dtype.isnative
    np.testing.assert_array_equal(state["half"], half.reshape(2, 2))
    assert state["bfloat"].dtype == np.float32
    np.testing.assert_array_equal(state["bfloat"], bfloat)
    np.testing.assert_array_equal(state["double"], [1.0 / 3.0, -7.0])


def test_missing_byteorder_record_means_little_endian(tmp_path):
    values = np.array([1.5, -2.0, 4.0], "<f4")
    pickled = state_dict_pickle([("w", "FloatStorage", "0", 3, 0, (3,), (1,))])
    path = write_checkpoint(tmp_path / "old.pth", pickled, {"0": values.tobytes()}, byteorder=None, prefix="old")
    np.testing.assert_array_equal(load_torch_state_dict(path)["w"], values)


def _payload_pickle(module: str, name: str, argument) -> bytes:
    """A pickle that calls `module.name(argument)` when loaded by an unrestricted unpickler."""
    writer = PickleWriter().global_(module, name).op(b"(")
    if isinstance(argument, list):
        writer.op(b"(")
        for item in argument:
            writer.string(item)
        writer.op(b"l")
    else:
        writer.string(argument)
    return writer.op(b"tR").getvalue()


def _malicious_calls(marker: pathlib.Path):
    create = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": ("os", "system", f"touch {marker}"),
        "posix.system": ("posix", "system", f"touch {marker}"),
        "builtins.eval": ("builtins", "eval", create),
        "builtins.exec": ("builtins", "exec", create),
        "subprocess.Popen": ("subprocess", "Popen", ["touch", str(marker)]),
    }


@pytest.mark.parametrize("call", ["os.system", "posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_pickle_calling_code_is_refused_and_nothing_runs(tmp_path, call):
    marker = tmp_path / "marker"
    module, name, argument = _malicious_calls(marker)[call]
    payload = _payload_pickle(module, name, argument)
    # The payload must be live: an ordinary unpickler would run it (checked on eval, which is harmless here).
    if call == "builtins.eval":
        pickle.loads(payload)
        assert marker.exists()
        marker.unlink()
    path = write_checkpoint(tmp_path / "evil.pth", payload, {})
    refusal = rf"{re.escape(str(path))}: refused .*'{module}\.{name}'.*nothing was executed"
    for load in (load_torch_state_dict, load_state_dict):
        with pytest.raises(PickleSecurityError, match=refusal):
            load(path)
    assert not marker.exists()


def test_reduce_payload_after_valid_tensors_is_refused(tmp_path):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    valid = state_dict_pickle([("w", "FloatStorage", "0", 1, 0, (1,), (1,))])
    # Replace the final SETITEMS + STOP by one more item whose value is the payload.
    evil_item = PickleWriter().string("evil").getvalue()[2:-1] + pickle.dumps(Payload(), protocol=2)[2:-1]
    pickled = valid[:-2] + evil_item + b"u."
    path = write_checkpoint(tmp_path / "evil.pth", pickled, {"0": np.zeros(1, np.float32).tobytes()})
    with pytest.raises(PickleSecurityError, match=re.escape(str(path))):
        load_torch_state_dict(path)
    assert not marker.exists()


def test_legacy_format_refuses_code_too(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "legacy.pth"
    path.write_bytes(_payload_pickle("os", "system", f"touch {marker}"))
    with pytest.raises(PickleSecurityError, match=re.escape(str(path))):
        load_torch_state_dict(path)
    assert not marker.exists()


def test_build_opcode_cannot_alter_a_checked_tensor(tmp_path):
    # A BUILD after the tensor tries to move its offset far outside the 4-element storage.
    writer = PickleWriter().empty_ordered_dict().op(b"(").string("w").tensor("FloatStorage", "0", 4, 0, (4,), (1,))
    writer.op(b"}").string("offset").int(10**9).op(b"s").op(b"b")
    path = write_checkpoint(tmp_path / "build.pth", writer.op(b"u").getvalue(), {"0": bytes(16)})
    with pytest.raises(CheckpointFormatError, match=rf"{re.escape(str(path))}.*not a valid pickle"):
        load_torch_state_dict(path)


def _damaged_files(tmp_path):
    """(path, expected message fragment) for each kind of unreadable file."""
    tensor = [("w", "FloatStorage", "0", 6, 0, (2, 3), (3, 1))]
    good = write_checkpoint(tmp_path / "good.pth", state_dict_pickle(tensor), {"0": bytes(24)})
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    random_bytes = tmp_path / "random.pth"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    png = tmp_path / "photo.pth"
    Image.new("RGB", (4, 4), (200, 10, 10)).save(png, format="PNG")
    no_pickle = tmp_path / "no_pickle.pth"
    with zipfile.ZipFile(no_pickle, "w") as archive:
        archive.writestr("archive/data/0", bytes(24))
    return {
        "truncated zip": (truncated, "cannot be read, it may be truncated"),
        "random bytes": (random_bytes, "not a PyTorch checkpoint"),
        "empty file": (empty, "the file is empty"),
        "png": (png, "PNG image"),
        "zip without data.pkl": (no_pickle, "data.pkl"),
        "missing file": (tmp_path / "absent.pth", "no such file"),
        "missing storage": (
            write_checkpoint(tmp_path / "no_blob.pth", state_dict_pickle(tensor), {}),
            "storage record 'archive/data/0' is missing",
        ),
        "storage too short": (
            write_checkpoint(tmp_path / "short.pth", state_dict_pickle(tensor), {"0": bytes(20)}),
            "holds 20 bytes, but 6 float32 elements need 24",
        ),
        "view past the storage": (
            write_checkpoint(
                tmp_path / "overrun.pth",
                state_dict_pickle([("w", "FloatStorage", "0", 6, 2, (2, 3), (3, 1))]),
                {"0": bytes(24)},
            ),
            "reaches element 7 of storage '0', which holds only 6",
        ),
        "unknown storage type": (
            write_checkpoint(
                tmp_path / "complex.pth",
                state_dict_pickle([("w", "ComplexFloatStorage", "0", 1, 0, (1,), (1,))]),
                {"0": bytes(8)},
            ),
            "torch.ComplexFloatStorage",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "truncated zip",
        "random bytes",
        "empty file",
        "png",
        "zip without data.pkl",
        "missing file",
        "missing storage",
        "storage too short",
        "view past the storage",
        "unknown storage type",
    ],
)
@pytest.mark.parametrize("load", [load_torch_state_dict, load_state_dict], ids=["torch", "any"])
def test_unreadable_files_give_a_clear_error_naming_the_file(tmp_path, case, load):
    path, fragment = _damaged_files(tmp_path)[case]
    with pytest.raises(UserError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and fragment in message, message


@pytest.mark.parametrize(
    "pickled,fragment",
    [
        (PickleWriter().op(b"]").getvalue(), "a list"),
        (PickleWriter().tensor("FloatStorage", "0", 1, 0, (1,), (1,)).getvalue(), "a single tensor"),
        (PickleWriter().op(b"}").getvalue(), "an empty dict"),
        (PickleWriter().op(b"}").int(1).tensor("FloatStorage", "0", 1, 0, (1,), (1,)).op(b"s").getvalue(), "keys 1"),
    ],
    ids=["list", "tensor", "empty", "int key"],
)
def test_pickles_that_are_not_state_dicts_are_rejected(tmp_path, pickled, fragment):
    path = write_checkpoint(tmp_path / "odd.pth", pickled, {"0": bytes(4)})
    with pytest.raises(NotAStateDictError, match=rf"{re.escape(str(path))}: holds .*{fragment}"):
        load_torch_state_dict(path)


def test_two_nested_state_dicts_are_ambiguous(tmp_path):
    writer = PickleWriter().op(b"}(")
    for name in ("generator", "discriminator"):
        writer.string(name).op(b"}").string("w").tensor("FloatStorage", "0", 1, 0, (1,), (1,)).op(b"s")
    path = write_checkpoint(tmp_path / "both.pth", writer.op(b"u").getvalue(), {"0": bytes(4)})
    with pytest.raises(NotAStateDictError, match="several state dicts.*'generator', 'discriminator'"):
        load_torch_state_dict(path)


def test_npz_archives_load_in_order_and_object_arrays_are_refused(tmp_path):
    arrays = {"b": np.arange(3.0), "a": np.ones((2, 2), np.float16)}
    np.savez(tmp_path / "weights.npz", **arrays)
    assert_bit_exact(load_state_dict(tmp_path / "weights.npz"), arrays)
    np.savez(tmp_path / "objects.npz", bad=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointFormatError, match="objects.npz.*without running pickled code"):
        load_state_dict(tmp_path / "objects.npz")


def test_compressed_npz_archives_load_bit_exact(tmp_path):
    arrays = {"w": np.random.default_rng(0).normal(size=(8, 4, 3, 3)).astype(np.float32), "b": np.zeros(8, ">f4")}
    np.savez_compressed(tmp_path / "weights.npz", **arrays)
    assert_bit_exact(load_state_dict(tmp_path / "weights.npz"), arrays)


def _npy_header(shape, descr="<f4") -> bytes:
    """A version 1.0 `.npy` header (magic, length, dict padded to 64 bytes) declaring `shape`."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _write_deflated(archive: zipfile.ZipFile, name: str, head: bytes, zero_bytes: int):
    """A deflated record: `head`, then `zero_bytes` zeros (which compress about 1000-fold)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as record:
        record.write(head)
        for _ in range(zero_bytes >> 20):
            record.write(bytes(1 << 20))


def _hostile_archives(folder: pathlib.Path) -> dict:
    """name -> path of small files (all under 5 MB) declaring far more data than they hold."""
    files = {}
    bias = state_dict_pickle([("bias", "FloatStorage", "0", 16, 0, (16,), (1,))])
    files["zip bomb storage"] = folder / "bomb_storage.pth"
    with zipfile.ZipFile(files["zip bomb storage"], "w") as archive:
        archive.writestr("archive/data.pkl", bias)
        _write_deflated(archive, "archive/data/0", bytes(64), 256 << 20)  # 16 floats, then 256 MiB more

    files["inflating data.pkl"] = folder / "bomb_pickle.pth"
    with zipfile.ZipFile(files["inflating data.pkl"], "w") as archive:
        # A list of 64 Mi Nones: 64 MiB of pickle, 512 MiB of list, from a 64 KB record.
        _write_deflated(archive, "archive/data.pkl", b"\x80\x02(" + b"N" * (64 << 20) + b"l.", 0)
        archive.writestr("archive/data/0", bytes(4))

    files["empty dicts up to the pickle cap"] = folder / "dicts.pth"
    with zipfile.ZipFile(files["empty dicts up to the pickle cap"], "w") as archive:
        # The most objects per pickle byte: 1 Mi empty dicts (about 83 MB) from 1 MiB of pickle.
        _write_deflated(archive, "archive/data.pkl", b"\x80\x02(" + b"}" * ((1 << 20) - 5) + b"l.", 0)
        archive.writestr("archive/data/0", bytes(4))

    # torch's expand saves stride-0 views; this one is a 16000 x 16000 float32 (1 GB) view of one float.
    huge_view = state_dict_pickle([("w", "FloatStorage", "0", 1, 0, (16000, 16000), (0, 0))])
    files["oversized view"] = write_checkpoint(folder / "huge_view.pth", huge_view, {"0": bytes(4)})

    files["npz header of 10^13 elements"] = folder / "huge_header.npz"
    with zipfile.ZipFile(files["npz header of 10^13 elements"], "w") as archive:
        archive.writestr("w.npy", _npy_header((10**13,)) + bytes(16))

    files["npz deflated bomb"] = folder / "bomb.npz"
    with zipfile.ZipFile(files["npz deflated bomb"], "w") as archive:
        _write_deflated(archive, "w.npy", _npy_header((64 << 20,)), 256 << 20)  # consistent header, 256 MiB

    files["legacy pickle over the cap"] = folder / "long_pickle_legacy.pth"
    with open(files["legacy pickle over the cap"], "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(b"\x80\x02(" + b"N" * (9 << 19) + b"l.")  # 4.5 MiB pickle
    return files


def test_hostile_archives_are_refused_in_one_line_with_bounded_memory(tmp_path):
    files = _hostile_archives(tmp_path)
    assert all(path.stat().st_size < 5e6 for path in files.values())
    outcomes = run_cases_measured(
        "from dmfn_tf.convert.torch_checkpoint import load_state_dict",
        {name: f"load_state_dict({str(path)!r})" for name, path in files.items()},
    )
    for name, path in files.items():
        outcome = outcomes[name]
        assert outcome["user_error"], (name, outcome)
        assert outcome["message"].startswith(f"{path}: ") and "\n" not in outcome["message"], outcome
        assert outcome["growth_mb"] < 300, (name, outcome)  # peak RSS over the baseline, this case and all before


def test_npy_header_must_account_for_its_record(tmp_path):
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", _npy_header((4,)) + bytes(12))  # 4 floats declared, 3 present
    with pytest.raises(CheckpointFormatError, match=r"short.npz: record 'w.npy' declares 4 float32 elements"):
        load_state_dict(path)
