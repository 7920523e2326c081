"""Plots training runs' validation curves with the classic baselines as horizontal lines.

A run's curve is `<run>/validation.csv` (`scripts/validate_run.py` and `scripts/recipe_sweep.py`, columns
of `dmfn_tf.evaluation.validation.curve_columns`); an older run's `<run>/curve.csv` is read too. The
baselines come from the validation sets' caches (`<corpus>/baselines_<protocol>.json`). One PNG: a row
per protocol (LPIPS against steps and against CPU hours, PSNR and SSIM against steps). It also prints
a Markdown table for one protocol: each run's latest point, its seconds per step, the latest paired
LPIPS difference from the best classic method with its bootstrap interval and, where the run has not
reached that method's LPIPS, the step at which a straight line through LPIPS against log10(step),
fitted to its later half of points, would reach it.

Usage (matplotlib is a dependency of this script only: `pip install matplotlib`):

```bash
python scripts/plot_curves.py --corpus ~/data/photo_corpus --out docs/images/training_curves.png \
    --protocols p256 p128 p256_free p128_free base=~/runs/base bf16=~/runs/bf16
```
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from pathlib import Path

import numpy as np

# Curves shorter than this are not extrapolated (their later half is too noisy to fit).
MIN_POINTS = 10
# Baselines: (line style, colour), colours outside the first five of matplotlib's cycle (the runs').
BASELINE_STYLE = {"telea": (":", "#8c564b"), "ns": ("--", "#7f7f7f"), "biharmonic": ("-.", "#bcbd22"),
                  "patchmatch": ((0, (1, 1)), "#17becf")}
# Columns of curve.csv files written before validation.csv, by their current names.
LEGACY_COLUMNS = {"wall_s": "wall_seconds", "cpu_s": "cpu_seconds"}
PROTOCOL_TITLES = {"p256": "256², centred 128² hole", "p128": "128², centred 64² hole",
                   "p256_free": "256², free-form strokes", "p128_free": "128², free-form strokes"}


def read_curve(run: Path) -> dict[str, np.ndarray]:
    """Numeric column -> values of the run's validation.csv (or older curve.csv); empty without points."""
    path = run / "validation.csv" if (run / "validation.csv").is_file() else run / "curve.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    curve = {}
    for key in rows[0] if rows else ():
        try:
            curve[LEGACY_COLUMNS.get(key, key)] = np.array([float(row[key]) for row in rows])
        except ValueError:
            continue  # a text column (e.g. the best classic method's name)
    return curve


def steps_to_reach(steps: np.ndarray, lpips: np.ndarray, target: float) -> float | None:
    """Step where LPIPS ~ a + b log10(step), fitted to the later half of the points, reaches `target`.

    None when the fit does not fall (b >= 0) or the curve has fewer than `MIN_POINTS` points.

    Example:

    >>> steps = 100.0 * np.arange(1, 11)
    >>> round(steps_to_reach(steps, 0.5 - 0.1 * np.log10(steps), 0.0))
    100000
    """
    if len(steps) < MIN_POINTS:
        return None
    later = slice(len(steps) // 2, None)
    x, y = np.log10(steps[later]), lpips[later]
    slope, intercept = np.polyfit(x, y, 1)
    if slope >= 0:
        return None
    return float(10 ** ((target - intercept) / slope))


def plot(runs: dict[str, Path], corpus: Path, protocols: list[str], out: Path) -> None:
    """Draws every run's curves, a row per protocol, the classic baselines as horizontal lines, to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dmfn_tf.evaluation.validation import baseline_means

    curves = {label: read_curve(Path(folder)) for label, folder in runs.items()}
    figure, axes = plt.subplots(len(protocols), 4, figsize=(16, 3.6 * len(protocols)), squeeze=False)
    panels = [("step", "lpips", "LPIPS ↓"), ("cpu_h", "lpips", "LPIPS ↓"), ("step", "psnr", "PSNR (dB) ↑"),
              ("step", "ssim", "SSIM ↑")]
    for row, protocol in enumerate(protocols):
        baselines = baseline_means(corpus, protocol)
        for axis, (x_key, metric, title) in zip(axes[row], panels):
            for label, curve in curves.items():
                if f"{protocol}_{metric}" in curve:
                    x = curve["cpu_seconds"] / 3600 if x_key == "cpu_h" else curve["step"]
                    axis.plot(x, curve[f"{protocol}_{metric}"], marker=".", label=label)
            for name, means in baselines.items():
                style, colour = BASELINE_STYLE.get(name, ("-", "grey"))
                axis.axhline(means[metric], color=colour, linestyle=style, label=name)
            axis.set_xlabel("process CPU hours" if x_key == "cpu_h" else "training step")
            axis.set_title(f"{protocol} ({PROTOCOL_TITLES.get(protocol, protocol)}): {title}", fontsize=9)
            axis.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=7)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)


def _reach_text(curve: dict, lpips: np.ndarray, best: float) -> str:
    if lpips.min() <= best:
        return "reached"
    if len(lpips) < MIN_POINTS:
        return "curve too short"
    reach = steps_to_reach(curve["step"], lpips, best)
    return "no falling trend" if reach is None or math.isinf(reach) else f"~{reach:,.0f}"


def table(runs: dict[str, Path], corpus: Path, protocol: str) -> str:
    """The Markdown table of each run's latest point at `protocol` (see the module docstring)."""
    from dmfn_tf.evaluation.validation import baseline_means

    baselines = baseline_means(corpus, protocol)
    best_name = min(baselines, key=lambda name: baselines[name]["lpips"])
    best = baselines[best_name]["lpips"]
    lines = [f"| Run | steps | CPU h | CPU s/step | LPIPS ↓ | PSNR ↑ | SSIM ↑ | LPIPS − {best_name} [95 % CI] | "
             f"best LPIPS (step) | steps to reach {best_name} ({best:.4f}), extrapolated |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, folder in runs.items():
        curve, p = read_curve(Path(folder)), protocol
        if f"{p}_lpips" not in curve:
            continue
        lpips = curve[f"{p}_lpips"]
        i_best = int(np.argmin(lpips))
        difference = (f"{curve[f'{p}_lpips_vs_best'][-1]:+.4f} [{curve[f'{p}_lpips_vs_best_low'][-1]:+.4f}, "
                      f"{curve[f'{p}_lpips_vs_best_high'][-1]:+.4f}]" if f"{p}_lpips_vs_best" in curve else "–")
        lines.append(f"| {label} | {int(curve['step'][-1])} | {curve['cpu_seconds'][-1] / 3600:.2f} | "
                     f"{curve['cpu_seconds'][-1] / curve['step'][-1]:.2f} | {lpips[-1]:.4f} | {curve[f'{p}_psnr'][-1]:.2f} | "
                     f"{curve[f'{p}_ssim'][-1]:.4f} | {difference} | {lpips[i_best]:.4f} ({int(curve['step'][i_best])}) | "
                     f"{_reach_text(curve, lpips, best)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_FOLDER")
    parser.add_argument("--corpus", default=os.path.expanduser("~/data/photo_corpus"))
    parser.add_argument("--protocols", nargs="+", default=["p128"], help="rows of the figure; the table is the first's")
    parser.add_argument("--out", required=True)
    parser.add_argument("--doc", help="a Markdown file whose lines between TABLE_START and TABLE_END get the table")
    args = parser.parse_args(argv)

    runs = {}
    for item in args.runs:
        label, folder = item.split("=", 1)
        runs[label] = Path(folder).expanduser()
    corpus = Path(args.corpus).expanduser()
    plot(runs, corpus, args.protocols, Path(args.out))
    text = table(runs, corpus, args.protocols[0])
    print(text)
    if args.doc:
        replace_table(Path(args.doc), text)
    return 0


TABLE_START, TABLE_END = "<!-- curves-table:start -->", "<!-- curves-table:end -->"


def replace_table(doc: Path, table: str) -> None:
    """Puts `table` between the TABLE_START and TABLE_END lines of `doc`."""
    text = doc.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    doc.write_text(text[:start] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    raise SystemExit(main())
