"""Paired bootstrap of per-image differences: known answers, a plain loop and SciPy's bootstrap."""

import numpy as np
import pytest
from scipy import stats

from dmfn_tf.evaluation.statistics import (
    StatisticsInputError,
    compare_methods,
    comparison_table,
    format_difference,
    paired_difference,
)


def _loop_reference(first, second, resamples, seed, confidence=0.95):
    """The percentile bootstrap written out one resample at a time."""
    rng = np.random.default_rng(seed)
    difference = np.asarray(first, float) - np.asarray(second, float)
    means = []
    for _ in range(resamples):
        picks = rng.integers(0, len(difference), len(difference))
        means.append(sum(difference[i] for i in picks) / len(difference))
    tail = 50 * (1 - confidence)
    return np.percentile(means, tail), np.percentile(means, 100 - tail)


def test_matches_a_plain_loop_with_the_same_draws():
    rng = np.random.default_rng(5)
    model, baseline = rng.normal(0.30, 0.05, 37), rng.normal(0.32, 0.05, 37)
    result = paired_difference(model, baseline, resamples=600, seed=3)
    low, high = _loop_reference(model, baseline, 600, 3)
    assert result["mean"] == pytest.approx(np.mean(model - baseline), abs=1e-15)
    assert (result["low"], result["high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert result["n"] == 37 and result["resamples"] == 600


def test_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    baseline = rng.uniform(0.1, 0.4, 150)
    model = baseline + rng.normal(-0.01, 0.03, 150)
    ours = paired_difference(model, baseline, resamples=4000)
    theirs = stats.bootstrap((model - baseline,), np.mean, n_resamples=4000, method="percentile",
                             confidence_level=0.95, random_state=np.random.default_rng(9)).confidence_interval
    # Two Monte-Carlo estimates of the same percentiles: equal to a small fraction of the width.
    width = theirs.high - theirs.low
    assert ours["low"] == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours["high"] == pytest.approx(theirs.high, abs=0.05 * width)


def test_known_answers():
    # A constant difference: every resample has that mean.
    constant = paired_difference(np.full(10, 0.5), np.full(10, 0.3))
    assert constant["mean"] == pytest.approx(0.2) and constant["low"] == pytest.approx(0.2)
    assert constant["high"] == pytest.approx(0.2)
    # Two images with differences 0 and 1: resampled means are 0, 1/2, 1 with odds 1/4, 1/2, 1/4,
    # so the 2.5th percentile is 0 and the 97.5th is 1.
    two = paired_difference([0.0, 1.0], [0.0, 0.0])
    assert (two["mean"], two["low"], two["high"]) == (0.5, 0.0, 1.0)
    # The sign: first minus second.
    assert paired_difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])["high"] == pytest.approx(-1.0)
    assert paired_difference([0.1], [np.nan]) is None and paired_difference([np.inf], [30.0]) is None
    # Fixed seed: the same figures twice.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert paired_difference(a, b) == paired_difference(a, b)


def test_bad_input_is_refused():
    with pytest.raises(StatisticsInputError, match="equal"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(StatisticsInputError, match="equal"):
        paired_difference([], [])
    with pytest.raises(StatisticsInputError, match="resamples"):
        paired_difference([1.0], [2.0], resamples=0)


def test_compare_methods_and_table():
    scores = {"dmfn": {"lpips": np.array([0.1, 0.2, 0.3]), "psnr": np.array([30.0, 28.0, 26.0]),
                       "ssim": np.array([0.9, 0.8, 0.7])},
              "telea": {"lpips": np.array([0.2, 0.3, 0.4]), "psnr": np.array([25.0, 25.0, 25.0]),
                        "ssim": np.full(3, np.nan)}}
    comparisons = compare_methods(scores, ["dmfn"], ["telea"], resamples=200)
    assert comparisons["dmfn"]["telea"]["lpips"]["mean"] == pytest.approx(-0.1)
    assert comparisons["dmfn"]["telea"]["psnr"]["mean"] == pytest.approx(3.0)
    assert comparisons["dmfn"]["telea"]["ssim"] is None
    table = comparison_table(comparisons).splitlines()
    assert table[0].startswith("| Paired difference, model − baseline (mean [95% bootstrap interval, 200 resamples])")
    assert table[2] == "| dmfn − telea | -0.1000 [-0.1000, -0.1000] | +3.00 [+1.00, +5.00] | – |"
    assert comparison_table({}) == "" and format_difference(None, 2) == "–"
