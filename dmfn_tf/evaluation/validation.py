"""Validation during a training campaign: four fixed protocols over `evaluation.protocol.evaluate`.

A corpus (`scripts/build_photo_corpus.py`) holds validation photos at two sizes, `val256/` and
`val128/`. A model is validated at four protocols (`PROTOCOLS`):

| name | images | hole |
|---|---|---|
| `p256` | `val256/` at 256² | centred 128² square (the paper's) |
| `p128` | `val128/` at 128² | centred 64² square |
| `p256_free` | `val256/` at 256² | free-form strokes, as `dmfn evaluate --mask free_form` draws them |
| `p128_free` | `val128/` at 128² | free-form strokes |

The strokes are keyed by the protocol's seed and the image's position in the sorted listing, so every
model scored on the same set gets the same holes. This module adds no scoring of its own: each
protocol is an `EvaluationSettings`, and `evaluate` scores the model. The classic baselines are scored
once per protocol and cached beside the set (`<corpus>/baselines_<protocol>.json`, per-image scores)
under a key made of the set's file names and contents (SHA-256) and the protocol's settings: a
changed set or protocol is rescored. Each model is compared with the best classic method (lowest mean
LPIPS) image by image (`statistics.paired_difference`). Rows of `validation.csv` (a training run's
learning curve, written by `scripts/validate_run.py` and `scripts/recipe_sweep.py`) come from
`curve_row`.

Example:

```python
scores = validate(load_generator("runs/x/snapshots/generator-5000.keras"), "~/data/photo_corpus")
scores["p256_free"].lpips, scores["p256_free"].best_classic, scores["p256_free"].lpips_difference
```
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dmfn_tf.atomic_files import atomic_path, write_text_atomically
from dmfn_tf.evaluation.protocol import EvaluationSettings, evaluate
from dmfn_tf.evaluation.report import EvaluationInputError

# The model's row name in validation results.
MODEL = "model"
CACHE_VERSION = 2  # 2: the hole colour error (`colour`) is scored too


@dataclass(frozen=True)
class ValidationProtocol:
    """One validation protocol: a folder of the corpus and the settings it is scored with."""

    name: str
    folder: str
    settings: EvaluationSettings


def _protocol(name: str, folder: str, size: int, mask: str) -> ValidationProtocol:
    return ValidationProtocol(name, folder, EvaluationSettings(image_size=size, mask=mask, seed=0, grid_cases=0))


PROTOCOLS: dict[str, ValidationProtocol] = {
    protocol.name: protocol for protocol in (
        _protocol("p256", "val256", 256, "center_box"),
        _protocol("p128", "val128", 128, "center_box"),
        _protocol("p256_free", "val256", 256, "free_form"),
        _protocol("p128_free", "val128", 128, "free_form"),
    )
}


@dataclass
class ProtocolScore:
    """A model's validation at one protocol.

    Attributes:
        lpips, psnr, ssim: the model's means.
        colour: the model's mean hole colour error (8-bit levels, `metrics.hole_colour_error`).
        best_classic: the classic method with the lowest mean LPIPS.
        best_classic_lpips: its mean LPIPS.
        lpips_difference: model minus best classic, per image: `{"mean", "low", "high", ...}`
            (`statistics.paired_difference`).
        baselines: classic method -> its means (`report.summarize`).
    """

    lpips: float
    psnr: float
    ssim: float
    colour: float
    best_classic: str
    best_classic_lpips: float
    lpips_difference: dict
    baselines: dict


def protocols_named(protocols: Sequence[str | ValidationProtocol]) -> list[ValidationProtocol]:
    """`ValidationProtocol`s from names of `PROTOCOLS` (or protocols, passed through).

    Raises:
        EvaluationInputError: an unknown name (the message lists the known ones).
    """
    unknown = [name for name in protocols if isinstance(name, str) and name not in PROTOCOLS]
    if unknown:
        raise EvaluationInputError(f"unknown validation protocols {unknown}; expected some of {', '.join(PROTOCOLS)}")
    return [PROTOCOLS[item] if isinstance(item, str) else item for item in protocols]


def set_folder(corpus: str | os.PathLike, protocol: ValidationProtocol) -> Path:
    """The protocol's validation folder in `corpus`; a missing one is an `EvaluationInputError`."""
    folder = Path(corpus).expanduser() / protocol.folder
    if not folder.is_dir():
        raise EvaluationInputError(f"{folder}: no such validation folder (protocol {protocol.name}); "
                                   "build the corpus with scripts/build_photo_corpus.py")
    return folder


def set_key(folder: Path, protocol: ValidationProtocol) -> dict:
    """What the baselines' cache is valid for: the files' names and contents, and the settings."""
    from dmfn_tf.data.image_files import list_source_files

    digest = hashlib.sha256()
    for path in list_source_files(folder):
        digest.update(os.path.relpath(path, folder).encode() + b"\0")
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return {"version": CACHE_VERSION, "files_sha256": digest.hexdigest(), "settings": protocol.settings.record()}


def _read_cache(path: Path, key: dict) -> dict | None:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return cached if isinstance(cached, dict) and cached.get("key") == key else None


def baseline_scores(corpus: str | os.PathLike, protocol: ValidationProtocol, progress=None) -> dict:
    """The classic baselines' per-image scores at `protocol`, from the cache or scored now (and cached).

    Args:
        corpus: the corpus root.
        protocol: a `ValidationProtocol`.
        progress: passed to `evaluate` when scoring.

    Returns:
        `{"files": [...], "scores": method -> metric -> list, "routes": baseline -> route -> images}`.
    """
    folder = set_folder(corpus, protocol)
    cache = Path(corpus).expanduser() / f"baselines_{protocol.name}.json"
    key = set_key(folder, protocol)
    cached = _read_cache(cache, key)
    if cached is not None:
        return cached
    result = evaluate(folder, protocol.settings, progress=progress)
    document = {"key": key, "files": result.files,
                "scores": {method: {metric: values.tolist() for metric, values in by_metric.items()}
                           for method, by_metric in result.scores.items()},
                "routes": result.settings["baseline_routes"]}
    write_text_atomically(cache, json.dumps(document) + "\n")
    return document


def evaluate_protocol(generator, corpus: str | os.PathLike, protocol: ValidationProtocol):
    """`evaluate` of `generator` (row `MODEL`) at `protocol`, beside the cached baselines (`baseline_scores`).

    Returns:
        The `EvaluationResult` (per-image scores of the model and every baseline, comparisons).
    """
    cached = baseline_scores(corpus, protocol)
    folder = set_folder(corpus, protocol)
    result = evaluate(folder, protocol.settings, generator=generator, name=MODEL, scored=cached["scores"])
    if result.files != cached["files"]:
        raise EvaluationInputError(f"{folder}: the files changed while scoring; run again")
    return result


def protocol_score(result) -> ProtocolScore:
    """The figures of a validation curve from `evaluate_protocol`'s result."""
    baselines = {method: means for method, means in result.summary.items() if method != MODEL}
    best = min(baselines, key=lambda method: baselines[method]["lpips"])
    model = result.summary[MODEL]
    return ProtocolScore(model["lpips"], model["psnr"], model["ssim"], model["colour"], best, baselines[best]["lpips"],
                         result.comparisons[MODEL][best]["lpips"], baselines)


def validate(generator, corpus: str | os.PathLike,
             protocols: Sequence[str | ValidationProtocol] = tuple(PROTOCOLS)) -> dict[str, ProtocolScore]:
    """Scores `generator` at each protocol (names of `PROTOCOLS`, or `ValidationProtocol`s)."""
    return {protocol.name: protocol_score(evaluate_protocol(generator, corpus, protocol))
            for protocol in protocols_named(protocols)}


CLOCK_COLUMNS = ("step", "cpu_seconds", "wall_seconds")
PROTOCOL_COLUMNS = ("lpips", "psnr", "ssim", "colour", "best_classic", "best_classic_lpips", "lpips_vs_best",
                    "lpips_vs_best_low", "lpips_vs_best_high")


def curve_columns(protocols: Sequence[str]) -> list[str]:
    """The columns of `validation.csv`: the clocks, then each protocol's figures."""
    return list(CLOCK_COLUMNS) + [f"{name}_{column}" for name in protocols for column in PROTOCOL_COLUMNS]


def curve_row(step: int, cpu_seconds: float, wall_seconds: float, scores: Mapping[str, ProtocolScore]) -> dict:
    """One row of `validation.csv` (see `curve_columns`)."""
    row = {"step": int(step), "cpu_seconds": round(float(cpu_seconds), 1), "wall_seconds": round(float(wall_seconds), 1)}
    for name, score in scores.items():
        difference = score.lpips_difference
        row.update({f"{name}_lpips": round(score.lpips, 5), f"{name}_psnr": round(score.psnr, 4),
                    f"{name}_ssim": round(score.ssim, 5), f"{name}_colour": round(score.colour, 3),
                    f"{name}_best_classic": score.best_classic,
                    f"{name}_best_classic_lpips": round(score.best_classic_lpips, 5),
                    f"{name}_lpips_vs_best": round(difference["mean"], 5),
                    f"{name}_lpips_vs_best_low": round(difference["low"], 5),
                    f"{name}_lpips_vs_best_high": round(difference["high"], 5)})
    return row


def read_curve(path: str | os.PathLike) -> list[dict]:
    """The rows of a `validation.csv` as dicts of strings (none when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def append_curve_row(path: str | os.PathLike, row: dict) -> None:
    """Adds `row` to `validation.csv`, rewriting the file atomically (columns: the first row's keys)."""
    rows = read_curve(path) + [row]
    columns = list(rows[0])
    missing = [column for column in row if column not in columns]
    if missing:
        raise EvaluationInputError(f"{path}: has no columns {missing}; validate into a new file")
    with atomic_path(path, suffix=".csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def baseline_means(corpus: str | os.PathLike, protocol: str) -> dict[str, dict[str, float]]:
    """Classic method -> mean `lpips`/`psnr`/`ssim` at protocol `protocol` (a name), from its cache (for plotting)."""
    cache = Path(corpus).expanduser() / f"baselines_{protocol}.json"
    if not cache.is_file():
        raise EvaluationInputError(f"{cache}: no cached baselines; run scripts/validate_run.py first")
    scores = json.loads(cache.read_text()).get("scores")
    if not isinstance(scores, dict):
        raise EvaluationInputError(f"{cache}: written by an older version; run scripts/validate_run.py to rescore")
    return {method: {metric: float(np.mean(values[metric])) for metric in ("lpips", "psnr", "ssim")}
            for method, values in scores.items()}

