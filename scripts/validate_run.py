"""Validates every generator snapshot of a training run not yet validated, and draws its curves.

A run keeps snapshots as `RUN/snapshots/generator-<step>.keras` (the step may be zero-padded, as
training writes it) beside `RUN/snapshots/generator-<step>.json` = `{"step": int, "cpu_seconds":
float, "wall_seconds": float}`.
Each snapshot whose step is not yet in `RUN/validation.csv` is scored at the validation protocols
(`dmfn_tf.evaluation.validation`: `p256`, `p128`, `p256_free`, `p128_free` on `<corpus>/val256` and
`<corpus>/val128`, through `evaluation.protocol.evaluate`), and one row per snapshot is appended:
the step, the training's CPU and wall seconds, and per protocol the model's LPIPS / PSNR / SSIM, the
best classic method (lowest LPIPS; scored once and cached beside the set) and the paired LPIPS
difference from it with its 95 % bootstrap interval. Then the curves are drawn
(`scripts/plot_curves.py`, the baselines as horizontal lines) to `RUN/validation.png`.

The strokes are keyed by each image's position in the sorted set, so every snapshot meets the same
holes; the sets' keys are kept in `RUN/validation_sets.json`, and a set changed since earlier rows is
named in a warning (its baselines are rescored; earlier rows measured other images).

Snapshots load through `dmfn_tf.model_io.load_generator` (so a model carrying its own input
convention is run as saved); the LPIPS network is built once per process.

Usage:

```bash
python scripts/validate_run.py --run ~/runs/campaign --corpus ~/data/photo_corpus [--protocols p256 p128_free]
```
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

SNAPSHOT_NAME = re.compile(r"^generator-(\d+)\.keras$")


class SnapshotError(Exception):
    """A snapshot or its description is unusable; the message names the file."""


def snapshots(run: Path) -> list[tuple[int, Path, dict]]:
    """(step, model file, its description) of every snapshot of `run`, by step."""
    folder = run / "snapshots"
    if not folder.is_dir():
        raise SnapshotError(f"{folder}: no snapshots folder (is {run} a training run with snapshots?)")
    found = []
    for model in folder.iterdir():
        match = SNAPSHOT_NAME.match(model.name)
        if not match:
            continue
        description = model.with_suffix(".json")
        try:
            info = json.loads(description.read_text())
            step, cpu, wall = int(info["step"]), float(info["cpu_seconds"]), float(info["wall_seconds"])
        except FileNotFoundError:
            continue  # a snapshot being written: its description comes last
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise SnapshotError(f"{description}: not a snapshot description ({type(err).__name__}: {err})") from None
        if step != int(match.group(1)):
            raise SnapshotError(f"{description}: step {step} differs from the file name's {match.group(1)}")
        found.append((step, model, {"step": step, "cpu_seconds": cpu, "wall_seconds": wall}))
    return sorted(found, key=lambda item: item[0])


def _check_sets(run: Path, corpus: Path, protocols: list[str], log) -> None:
    """Records the validation sets' keys in `run/validation_sets.json`; warns when a set has changed
    since earlier rows were scored (those rows then measured other images or other strokes)."""
    from dmfn_tf.atomic_files import write_text_atomically
    from dmfn_tf.evaluation import validation

    path = run / "validation_sets.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    current = {protocol.name: validation.set_key(validation.set_folder(corpus, protocol), protocol)["files_sha256"]
               for protocol in validation.protocols_named(protocols)}
    changed = [name for name, key in current.items() if recorded.get(name, key) != key]
    if changed:
        log(f"warning: the validation set of {', '.join(changed)} changed since earlier rows of "
            f"{run / 'validation.csv'}; those rows are not comparable with new ones")
    write_text_atomically(path, json.dumps({**recorded, **current}, indent=1) + "\n")


def _log_baselines(corpus: Path, protocols: list[str], log) -> None:
    """Scores (or reads from the cache) the classic baselines of each protocol, and logs their LPIPS."""
    import numpy as np

    from dmfn_tf.evaluation import validation

    for protocol in validation.protocols_named(protocols):
        started = time.process_time()
        cached = validation.baseline_scores(corpus, protocol)
        spent = time.process_time() - started
        lpips = ", ".join(f"{method} {np.mean(scores['lpips']):.4f}" for method, scores in cached["scores"].items())
        fallbacks = ", ".join(f"{name} {report.get('fallbacks', '?')} of {len(cached['files'])} image(s) off its "
                              f"first route" for name, report in cached["routes"].items())
        log(f"classic baselines at {protocol.name} ({len(cached['files'])} images, "
            f"{'cached' if spent < 1 else f'scored in {spent:.0f} CPU s'}): LPIPS {lpips}; {fallbacks or 'no fallbacks'}")


def validate_new_snapshots(run: Path, corpus: Path, protocols: list[str], log=print, steps=None) -> list[dict]:
    """Scores the snapshots not yet in `run/validation.csv` and appends their rows; returns the new rows.

    `steps`, when given, is a predicate on a snapshot's step: only those it accepts are scored.
    """
    from dmfn_tf.evaluation import validation
    from dmfn_tf.model_io import load_generator

    protocols = [protocol.name for protocol in validation.protocols_named(protocols)]
    csv_path = run / "validation.csv"
    existing = validation.read_curve(csv_path)
    if existing and list(existing[0]) != validation.curve_columns(protocols):
        raise SnapshotError(f"{csv_path}: its columns are for other protocols; pass the same --protocols "
                            "or validate into another run folder")
    done = {int(row["step"]) for row in existing}
    pending = [item for item in snapshots(run) if item[0] not in done and (steps is None or steps(item[0]))]
    _check_sets(run, corpus, protocols, log)
    if pending:
        _log_baselines(corpus, protocols, log)
    log(f"{run}: {len(done)} snapshot(s) already validated, {len(pending)} to validate")
    rows = []
    for step, model, info in pending:
        started = time.perf_counter()
        scores = validation.validate(load_generator(str(model)), corpus, protocols)
        row = validation.curve_row(step, info["cpu_seconds"], info["wall_seconds"], scores)
        validation.append_curve_row(csv_path, row)
        rows.append(row)
        log(f"step {step} ({time.perf_counter() - started:.0f} s): " + ", ".join(
            f"{name} LPIPS {score.lpips:.4f} vs {score.best_classic} {score.lpips_difference['mean']:+.4f} "
            f"[{score.lpips_difference['low']:+.4f}, {score.lpips_difference['high']:+.4f}]"
            for name, score in scores.items()))
    return rows


def _step_filter(run: Path, every: int, up_to_cpu: float):
    """The predicate of the snapshots to score (`--every`, `--up-to-cpu`), or None for all."""
    if not every and not up_to_cpu:
        return None
    found = snapshots(run)
    if up_to_cpu:
        within = [step for step, _, info in found if info["cpu_seconds"] <= up_to_cpu]
        chosen = {within[-1]} if within else set()
        return lambda step: step in chosen
    latest = found[-1][0] if found else None
    return lambda step: step % every == 0 or step == latest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the training run folder (holding snapshots/)")
    parser.add_argument("--corpus", required=True, help="the corpus root (val256/, val128/)")
    parser.add_argument("--protocols", nargs="+", default=["p256", "p128", "p256_free", "p128_free"])
    parser.add_argument("--plot", help="the curves' PNG (default RUN/validation.png); 'none' to skip")
    parser.add_argument("--every", type=int, default=0,
                        help="score only snapshots whose step is a multiple of this, and the latest (default: all)")
    parser.add_argument("--up-to-cpu", type=float, default=0.0, metavar="SECONDS",
                        help="score only the last snapshot within this many training CPU seconds (a recipe "
                             "comparison at equal CPU time)")
    args = parser.parse_args(argv)

    from dmfn_tf.errors import UserError

    run, corpus = Path(args.run).expanduser(), Path(args.corpus).expanduser()
    try:
        validate_new_snapshots(run, corpus, args.protocols, steps=_step_filter(run, args.every, args.up_to_cpu))
        if args.plot != "none":
            import plot_curves

            plot = Path(args.plot) if args.plot else run / "validation.png"
            plot_curves.plot({run.name: run}, corpus, args.protocols, plot)
            print(f"curves: {plot}")
    except (SnapshotError, UserError) as err:
        print(f"validate_run: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
