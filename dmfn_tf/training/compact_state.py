"""A run's state in one small file, to continue a training campaign on a fresh machine.

A full checkpoint of the photo campaign is ~31 MB, most of it the discriminator's Adam moments.
The compact state keeps what the run cannot do without, in one `.npz` file of a few MB:

- the generator's weights, its Adam moments and moving average, and its iteration count (exact);
- the discriminator's weights and BatchNorm statistics, in float16;
- the global step, the training clock (CPU and wall seconds) and the run's `config.yaml` (paths
  under the home folder written `~/...`: give `--data` when resuming on another machine);
- the run's records (`RUN_RECORDS`: the validation curve and the keys of its image sets), so the
  curve measured so far travels with the run.

It leaves out the discriminator's Adam moments. `import_compact_state` writes a checkpoint with those
at zero and the discriminator optimizer's iteration count at 0, so its bias correction starts again
as for a new optimizer (its first updates are ordinary Adam steps, not the oversized ones that zero
moments under a large iteration count would give). Everything else restores exactly, so
`dmfn train --resume` continues the run from the same step, data position and clock.

Example:

```python
export_compact_state("runs/campaign", "campaign/photo_campaign_state.npz")
import_compact_state("campaign/photo_campaign_state.npz", "runs/campaign")   # on the new machine
```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from dmfn_tf.atomic_files import atomic_path, write_text_atomically
from dmfn_tf.errors import UserError
from dmfn_tf.model_metadata import home_relative
from dmfn_tf.training.checkpoints import CHECKPOINT_PREFIX, LATEST_FILE, read_latest
from dmfn_tf.training.run_directory import RunDirectory

_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_DISCRIMINATOR_MOMENTS = "d_optimizer/_variables/"
_DISCRIMINATOR_ITERATIONS = "d_optimizer/_iterations/"
_DISCRIMINATOR_WEIGHTS = ("d_optimizer/_trainable_variables/", "discriminator/")
_MANIFEST = "manifest"
FORMAT_VERSION = 1
# Small text files of a run folder that its history cannot be rebuilt without (scripts/validate_run.py writes them).
RUN_RECORDS = ("validation.csv", "validation_sets.json")


class CompactStateError(UserError):
    """A compact state file is missing, damaged, or cannot go where it was asked to."""


def _kind(key: str) -> str:
    if key == _OBJECT_GRAPH:
        return "object_graph"
    if key.startswith(_DISCRIMINATOR_MOMENTS):
        return "zeros"
    if key.startswith(_DISCRIMINATOR_ITERATIONS):
        return "reset"
    if key.startswith(_DISCRIMINATOR_WEIGHTS):
        return "float16"
    return "exact"


def _stored(kind: str, value):
    if kind == "object_graph":
        return np.frombuffer(value, np.uint8)
    if kind == "float16":
        return np.asarray(value).astype(np.float16)
    return np.asarray(value)


def export_compact_state(run_dir: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Writes the compact state of a run's latest checkpoint to `out_path` (atomically); returns its summary."""
    run = RunDirectory(run_dir)
    latest = read_latest(run.checkpoint_dir)
    if latest is None:
        raise CompactStateError(f"{run.path}: no checkpoint to export")
    reader = tf.train.load_checkpoint(os.path.join(run.checkpoint_dir, latest["checkpoint"], CHECKPOINT_PREFIX))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    entries, arrays = [], {}
    for index, key in enumerate(sorted(shapes)):
        kind = _kind(key)
        entries.append({"key": key, "kind": kind, "dtype": dtypes[key].name, "shape": list(shapes[key])})
        if kind not in ("zeros", "reset"):
            arrays[f"t{index}"] = _stored(kind, reader.get_tensor(key))
    with open(run.config_path, encoding="utf-8") as f:
        config_text = home_relative(f.read())  # no path of this machine travels in the file
    manifest = {"format": FORMAT_VERSION, "step": latest["step"], "config_yaml": config_text, "tensors": entries,
                "records": _read_records(run.path)}
    arrays[_MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), np.uint8)
    with atomic_path(out_path) as temporary, open(temporary, "wb") as f:
        np.savez_compressed(f, **arrays)
    return {"step": latest["step"], "bytes": os.path.getsize(out_path), "tensors": len(entries)}


def _read_records(run_path) -> dict[str, str]:
    records = {}
    for name in RUN_RECORDS:
        path = os.path.join(run_path, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                records[name] = home_relative(f.read())
    return records


def _write_records(run_path, records: dict) -> None:
    """Writes the state's records into the run folder, keeping any the folder already has (they may be newer)."""
    for name, text in records.items():
        path = os.path.join(run_path, name)
        if name in RUN_RECORDS and not os.path.exists(path):
            write_text_atomically(path, text)


def _restored(entry: dict, arrays) -> tf.Tensor:
    dtype = tf.as_dtype(entry["dtype"])
    if entry["kind"] == "object_graph":
        return tf.constant(arrays.tobytes(), tf.string)
    if entry["kind"] in ("zeros", "reset"):
        return tf.zeros(entry["shape"], dtype)
    return tf.constant(np.asarray(arrays).astype(dtype.as_numpy_dtype).reshape(entry["shape"]))


def _read(path) -> tuple[dict, dict]:
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        manifest = json.loads(arrays.pop(_MANIFEST).tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise CompactStateError(f"{path}: not a compact training state ({type(err).__name__})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise CompactStateError(f"{path}: compact state format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
    return manifest, arrays


def import_compact_state(path: str | os.PathLike, run_dir: str | os.PathLike) -> int:
    """Makes `run_dir` a run at the state's step (config.yaml, its records and one checkpoint); returns the step.

    Refuses a run folder that already holds a checkpoint at or beyond that step.
    """
    manifest, arrays = _read(path)
    run, step = RunDirectory(run_dir), int(manifest["step"])
    if run.latest_step() >= step:
        raise CompactStateError(f"{run.path} already holds step {run.latest_step()} (the state is at step {step})")
    os.makedirs(run.checkpoint_dir, exist_ok=True)
    entries = manifest["tensors"]
    tensors = [_restored(entry, arrays.get(f"t{i}")) for i, entry in enumerate(entries)]
    temporary = tempfile.mkdtemp(prefix=".ckpt-tmp-", dir=run.checkpoint_dir)
    try:
        tf.raw_ops.SaveV2(prefix=os.path.join(temporary, CHECKPOINT_PREFIX), tensor_names=[e["key"] for e in entries],
                          shape_and_slices=[""] * len(entries), tensors=tensors)
        name = f"{CHECKPOINT_PREFIX}-{step:08d}"
        os.replace(temporary, os.path.join(run.checkpoint_dir, name))
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary)
    write_text_atomically(run.config_path, manifest["config_yaml"])
    _write_records(run.path, manifest.get("records", {}))  # states written before records existed have none
    write_text_atomically(os.path.join(run.checkpoint_dir, LATEST_FILE), json.dumps({"step": step, "checkpoint": name}) + "\n")
    return step
