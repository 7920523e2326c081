"""Plots the recipes' validation curves (`<run>/curve.csv` of scripts/recipe_sweep.py) with the baselines.

Writes one PNG (LPIPS / PSNR / SSIM against steps, LPIPS against CPU hours; the classic baselines
as horizontal lines) and prints a Markdown table: each recipe's latest point, its seconds per step
and, where it has not reached the best baseline's LPIPS, the step at which a straight line through
LPIPS against log10(step), fitted to its later half of points, would reach it.

Usage (matplotlib is a dependency of this script only: `pip install matplotlib`):

```bash
python scripts/plot_curves.py --corpus ~/data/photo_corpus --out docs/images/training_curves.png \
    base=~/runs/base bf16=~/runs/bf16 warmup=~/runs/warmup_bf16
```
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from pathlib import Path

import numpy as np

# Curves shorter than this are not extrapolated (their later half is too noisy to fit).
MIN_POINTS = 10
BASELINE_STYLE = {"telea": ":", "ns": "--", "biharmonic": "-."}


def read_curve(run: Path) -> dict[str, np.ndarray]:
    """Column -> values of the run's curve.csv; empty when it has no point yet."""
    if not (run / "curve.csv").is_file():
        return {}
    with open(run / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]} if rows else {}


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_FOLDER")
    parser.add_argument("--corpus", default=os.path.expanduser("~/data/photo_corpus"))
    parser.add_argument("--protocol", default="p128")
    parser.add_argument("--out", required=True)
    parser.add_argument("--doc", help="a Markdown file whose lines between TABLE_START and TABLE_END get the table")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baselines = json.loads((Path(args.corpus).expanduser() / f"baselines_{args.protocol}.json").read_text())["means"]
    best_name = min(baselines, key=lambda name: baselines[name]["lpips"])
    best = baselines[best_name]["lpips"]
    curves = {}
    for item in args.runs:
        label, folder = item.split("=", 1)
        curves[label] = read_curve(Path(folder).expanduser())

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [(axes[0, 0], "step", "lpips", "LPIPS ↓"), (axes[0, 1], "cpu_h", "lpips", "LPIPS ↓"),
              (axes[1, 0], "step", "psnr", "PSNR (dB) ↑"), (axes[1, 1], "step", "ssim", "SSIM ↑")]
    for axis, x_key, metric, title in panels:
        for label, curve in curves.items():
            if not curve:
                continue
            x = curve["cpu_s"] / 3600 if x_key == "cpu_h" else curve["step"]
            axis.plot(x, curve[f"{args.protocol}_{metric}"], marker=".", label=label)
        for name, style in BASELINE_STYLE.items():
            axis.axhline(baselines[name][metric], color="grey", linestyle=style, label=name)
        axis.set_xlabel("process CPU hours" if x_key == "cpu_h" else "training step")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    figure.suptitle(f"Validation ({args.protocol}: "
                    f"{'128² images, centred 64² hole' if args.protocol == 'p128' else '256² images, centred 128² hole'})")
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80)

    lines = [f"| Recipe | steps | CPU h | CPU s/step | LPIPS ↓ | PSNR ↑ | SSIM ↑ | best LPIPS (step) | steps to reach {best_name} ({best:.4f}), extrapolated |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for label, curve in curves.items():
        if not curve:
            continue
        p = args.protocol
        lpips = curve[f"{p}_lpips"]
        i_best = int(np.argmin(lpips))
        reach = steps_to_reach(curve["step"], lpips, best) if lpips.min() > best else None
        reach_text = ("reached" if lpips.min() <= best else
                      "curve too short" if len(lpips) < MIN_POINTS else
                      "no falling trend" if reach is None or math.isinf(reach) else f"~{reach:,.0f}")
        lines.append(f"| {label} | {int(curve['step'][-1])} | {curve['cpu_s'][-1] / 3600:.2f} | "
              f"{curve['cpu_s'][-1] / curve['step'][-1]:.2f} | {lpips[-1]:.4f} | {curve[f'{p}_psnr'][-1]:.2f} | "
              f"{curve[f'{p}_ssim'][-1]:.4f} | {lpips[i_best]:.4f} ({int(curve['step'][i_best])}) | {reach_text} |")
    print("\n".join(lines))
    if args.doc:
        replace_table(Path(args.doc), "\n".join(lines))
    return 0


TABLE_START, TABLE_END = "<!-- curves-table:start -->", "<!-- curves-table:end -->"


def replace_table(doc: Path, table: str) -> None:
    """Puts `table` between the TABLE_START and TABLE_END lines of `doc`."""
    text = doc.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    doc.write_text(text[:start] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    raise SystemExit(main())
