"""Paired comparisons of two methods scored on the same images: the mean per-image difference and
its bootstrap confidence interval (docs/design.md §7).

Every model-vs-baseline comparison of the evaluation (`summary.json`, `table.md`, `dmfn evaluate`'s
table, `scripts/validate_run.py`) goes through `paired_difference`: the difference is taken per image
(model minus baseline), so the interval reflects how consistently one method beats the other on
the same images, not how much the images differ from each other. The interval is the percentile
bootstrap (Efron & Tibshirani, 1993, §13.3): `resamples` resamples of the images with replacement,
drawn from a generator with a fixed seed (the same figures on every run), and the 2.5th and 97.5th
percentiles of the resampled mean differences. For LPIPS (lower is better) an interval below zero
says the model is better; for PSNR and SSIM, above zero.

Example:

```python
difference = paired_difference(scores["dmfn"]["lpips"], scores["patchmatch"]["lpips"])
difference["mean"], difference["low"], difference["high"]
```
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dmfn_tf.errors import UserError

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Resamples drawn at once: bounds the index array at `_CHUNK * n` integers.
_CHUNK = 250
# The metrics compared, in the order the tables show them.
COMPARED_METRICS = ("lpips", "psnr", "ssim")


class StatisticsInputError(UserError, ValueError):
    """Scores given to a paired comparison do not pair up."""


def paired_difference(
    first: Sequence[float],
    second: Sequence[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> dict | None:
    """Mean of `first - second` over paired images, with a percentile-bootstrap interval.

    Args:
        first, second: per-image scores of two methods on the same images, in the same order.
        resamples: bootstrap resamples (each draws n images with replacement).
        confidence: the interval's coverage, e.g. 0.95 for the 2.5th and 97.5th percentiles.
        seed: seed of the resampling (`numpy.random.default_rng`).

    Returns:
        `{"mean", "low", "high", "n", "resamples", "confidence"}`, or None where a score is not a
        finite number (a metric not computed: NaN; a perfect PSNR: infinity).
    """
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first.shape != second.shape or first.ndim != 1 or len(first) == 0:
        raise StatisticsInputError(f"paired scores must be two equal, non-empty lists; got {first.shape} and {second.shape}")
    if resamples < 1 or not 0 < confidence < 1:
        raise StatisticsInputError(f"resamples {resamples} must be >= 1 and confidence {confidence} in (0, 1)")
    difference = first - second
    if not np.isfinite(difference).all():
        return None
    rng = np.random.default_rng(seed)
    count = len(difference)
    means = np.concatenate([difference[rng.integers(0, count, (min(_CHUNK, resamples - start), count))].mean(axis=1)
                            for start in range(0, resamples, _CHUNK)])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": float(difference.mean()), "low": float(low), "high": float(high), "n": count,
            "resamples": resamples, "confidence": confidence}


def compare_methods(
    scores: Mapping[str, Mapping[str, np.ndarray]],
    models: Sequence[str],
    baselines: Sequence[str],
    metrics: Sequence[str] = COMPARED_METRICS,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, dict[str, dict[str, dict | None]]]:
    """Every model against every baseline, metric by metric (`paired_difference`, model minus baseline).

    Args:
        scores: method -> metric -> per-image scores (`EvaluationResult.scores`).
        models, baselines: method names in `scores`.
        metrics: the metrics compared.
        resamples: bootstrap resamples.

    Returns:
        model -> baseline -> metric -> `paired_difference(...)` (None where not computed).
    """
    return {model: {baseline: {metric: paired_difference(scores[model][metric], scores[baseline][metric], resamples)
                               for metric in metrics}
                    for baseline in baselines}
            for model in models}


def format_difference(difference: dict | None, digits: int) -> str:
    """`"-0.0123 [-0.0200, -0.0050]"`, or "–" where not computed."""
    if difference is None:
        return "–"
    return f"{difference['mean']:+.{digits}f} [{difference['low']:+.{digits}f}, {difference['high']:+.{digits}f}]"


def comparison_table(comparisons: Mapping[str, Mapping[str, Mapping[str, dict | None]]]) -> str:
    """A Markdown table of `compare_methods`' output: one row per model and baseline.

    Returns:
        The table, ending with a newline; empty when there is nothing to compare.
    """
    rows = [(model, baseline, by_metric) for model, by_baseline in comparisons.items()
            for baseline, by_metric in by_baseline.items()]
    if not rows:
        return ""
    some = next((value for _, _, by_metric in rows for value in by_metric.values() if value), None)
    label = f"{some['confidence']:.0%} bootstrap interval, {some['resamples']} resamples" if some else "bootstrap"
    lines = [f"| Paired difference, model − baseline (mean [{label}]) | LPIPS ↓ | PSNR ↑ | SSIM ↑ |",
             "|---|---|---|---|"]
    for model, baseline, by_metric in rows:
        cells = [format_difference(by_metric.get(metric), digits)
                 for metric, digits in (("lpips", 4), ("psnr", 2), ("ssim", 4))]
        lines.append(f"| {model} − {baseline} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
