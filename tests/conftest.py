"""Shared test set-up: quiet TensorFlow, the shared fixtures' path, photo folders, image files and tiny trainers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib
import warnings

import numpy as np
import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"
TINY_IMAGE_SIZE = 64


@pytest.fixture(scope="session")
def fixtures_dir():
    """`../shared/fixtures`, or a skip that says it is missing."""
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES} (they live beside the project as ../shared/fixtures)")
    return FIXTURES


def _write_images(folder, count=6, seed=0):
    """Small smooth colour PNGs of varied sizes (64–80 × 72–92): the random crop and resize have work to do."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height, width = 64 + 8 * (i % 3), 72 + 4 * i
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        phases = rng.uniform(0, 2 * np.pi, 3)
        image = np.stack([np.sin(6 * x + phases[0]), np.cos(5 * y + phases[1]), np.sin(4 * (x + y) + phases[2])], -1)
        Image.fromarray(((image + 1) * 127.5).astype(np.uint8)).save(folder / f"photo_{i}.png")
    return folder


@pytest.fixture(scope="session")
def write_images():
    """`write_images(folder, count=6, seed=0) -> folder`: writes small smooth colour PNGs of varied sizes."""
    return _write_images


@pytest.fixture(scope="session")
def training_photos(tmp_path_factory):
    """A folder of six small photos for training runs (shared, read-only)."""
    return _write_images(tmp_path_factory.mktemp("photos"))


def _image_array(array_or_shape, fill: int = 0) -> np.ndarray:
    """The array itself, or for a shape tuple an image of that shape filled with `fill` (uint8)."""
    if isinstance(array_or_shape, tuple):
        return np.full(array_or_shape, fill, np.uint8)
    return np.asarray(array_or_shape)


def _save_image(path, array_or_shape, mode=None, fill=0, **options):
    from PIL import Image

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_image_array(array_or_shape, fill), mode).save(path, **options)
    return path


def _encoded_image(array_or_shape, format="PNG", mode=None, fill=0, **options) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_image_array(array_or_shape, fill), mode).save(buffer, format=format, **options)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def save_image():
    """`save_image(path, array_or_shape, mode=None, fill=0, **options) -> path`: writes an image file with PIL.

    A shape tuple stands for a uint8 image of that shape filled with `fill`; `mode` is PIL's (e.g. "L",
    "RGBA"); the format follows the suffix (`.png`, `.jpg` with `quality=`...); missing folders are created.
    """
    return _save_image


@pytest.fixture(scope="session")
def encoded_image():
    """`encoded_image(array_or_shape, format="PNG", mode=None, fill=0, **options) -> bytes`: `save_image` in memory."""
    return _encoded_image


@pytest.fixture(scope="session")
def png_declaring():
    """`png_declaring(width, height) -> bytes`: a few dozen bytes whose PNG header declares width x height, with one
    tiny compressed row: never decodable, for tests of the size checks made from the header."""
    return _png_declaring


def _tiny_config(loss=None, **train):
    """An `ExperimentConfig` small enough for CPU tests: 64², nf 4, one block, random VGG weights."""
    from dmfn_tf.config import ExperimentConfig, LossConfig, ModelConfig, PerceptualConfig, TrainConfig

    return ExperimentConfig(
        model=ModelConfig(nf=4, n_blocks=1, image_size=TINY_IMAGE_SIZE),
        perceptual=PerceptualConfig(weights="none"),
        loss=loss if loss is not None else LossConfig(),
        train=TrainConfig(**{"batch_size": 2, "learning_rate": 1e-3, "lr_decay_steps": [], **train}),
    )


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(loss=None, **train) -> ExperimentConfig`; `train` keywords set `TrainConfig` fields."""
    return _tiny_config


@pytest.fixture(scope="session")
def tiny_trainer():
    """`tiny_trainer(seed=0, loss=None, **train) -> DMFNTrainer`, built from `tiny_config` with a fixed seed."""
    import keras

    from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
    from dmfn_tf.training.trainer import build_trainer

    def build(seed=0, loss=None, **train):
        keras.utils.set_random_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
            return build_trainer(_tiny_config(loss, **train))

    return build


def run_cases_measured(setup: str, cases: dict, timeout: float = 300) -> dict:
    """Runs each case's statement in one fresh Python process and reports how it ended and the memory it took.

    Memory is the growth of the process's peak resident set over its size just before the case:
    Linux's `VmHWM` (the peak RSS of this process image), reset before each case through
    `/proc/self/clear_refs`. (`ru_maxrss` is not used: after fork and exec it starts at the parent's
    peak, which in a pytest process can hide the growth.) Where the reset is refused, the peak is
    cumulative, which still bounds every case.

    Args:
        setup: statements run first (imports, building inputs).
        cases: name -> a statement to run (e.g. `load_state_dict(path)`).
        timeout: seconds for the whole process.

    Returns:
        name -> {"error": exception class name or None, "message": str, "user_error": bool,
        "growth_mb": peak RSS growth during the case}.
    """
    import json
    import subprocess
    import sys
    import textwrap

    script = "\n".join([
        "import json, sys",
        "from dmfn_tf.errors import UserError",
        textwrap.dedent(setup),
        "def _status_mb(key):",
        "    with open('/proc/self/status') as f:",
        "        return next(int(line.split()[1]) for line in f if line.startswith(key + ':')) / 1024",
        "def _reset_peak():",
        "    try:",
        "        with open('/proc/self/clear_refs', 'w') as f:",
        "            f.write('5')",
        "    except OSError:",
        "        pass",
        "_results = {}",
        "for _name, _statement in json.loads(sys.argv[1]).items():",
        "    _reset_peak()",
        "    _base = _status_mb('VmRSS')",
        "    try:",
        "        exec(_statement)",
        "        _results[_name] = {'error': None, 'message': '', 'user_error': False}",
        "    except Exception as _err:",
        "        _results[_name] = {'error': type(_err).__name__, 'message': str(_err),",
        "                           'user_error': isinstance(_err, UserError)}",
        "    _results[_name]['growth_mb'] = _status_mb('VmHWM') - _base",
        "print('RESULTS' + json.dumps(_results))",
    ])
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, timeout=timeout, env=env
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULTS")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    return json.loads(lines[-1][len("RESULTS"):])


@pytest.fixture(scope="session")
def tiny_generator_file(tmp_path_factory):
    """A `.keras` file of a tiny random DMFN generator (nf 4, one block), for command and app tests."""
    from dmfn_tf.models.generator import build_generator

    path = tmp_path_factory.mktemp("tiny_model") / "generator.keras"
    build_generator(nf=4, n_blocks=1).save(path)
    return str(path)


def tiny_metadata(trained_size: int, made_by: str = "tests"):
    """A `ModelMetadata` of `tiny_generator_file`'s generator (nf 4, one paper block) trained at `trained_size`."""
    from dmfn_tf.model_metadata import Architecture, ModelMetadata, Provenance

    return ModelMetadata(trained_size, Architecture(4, 1, "paper"), Provenance(made_by=made_by))


@pytest.fixture
def shipped_model(tmp_path, monkeypatch, tiny_generator_file):
    """A tiny generator placed where the package looks for its shipped model, describing itself as trained at
    128² as the real one does; returns that file's path."""
    from dmfn_tf import model_io
    from dmfn_tf.model_metadata import copy_with_metadata

    folder = tmp_path / "saved_models"
    folder.mkdir()
    path = folder / model_io.SHIPPED_MODEL
    copy_with_metadata(tiny_generator_file, str(path), tiny_metadata(128, "the shipped_model fixture"))
    monkeypatch.setattr(model_io, "SHIPPED_MODEL_DIR", folder)
    return str(path)


@pytest.fixture
def no_shipped_model(tmp_path, monkeypatch):
    """The package's shipped model absent (as in an installed wheel)."""
    from dmfn_tf import model_io

    monkeypatch.setattr(model_io, "SHIPPED_MODEL_DIR", tmp_path / "empty")
