"""The gate's statistics on constructed samples with known answers."""
import numpy as np
import pytest

from reports.gate_stats import (INCONCLUSIVE, PASS, REGRESSION, aa_compare, compare_paired,
                                bootstrap_change_ci, compare)


def _noisy(centre, n, spread, seed):
    return centre * (1 + np.random.default_rng(seed).normal(0, spread, n))


def test_identical_distributions_pass():
    a = _noisy(10.0, 60, 0.02, 1)
    b = _noisy(10.0, 60, 0.02, 2)
    c = compare(a, b, threshold=0.10)
    assert c.verdict == PASS
    assert abs(c.change) < 0.02
    assert c.ci_low < 0 < c.ci_high or abs(c.change) < 0.01


def test_25_percent_regression_is_caught():
    a = _noisy(10.0, 40, 0.03, 3)
    b = _noisy(12.5, 40, 0.03, 4)
    c = compare(a, b, threshold=0.10)
    assert c.verdict == REGRESSION
    assert 0.20 < c.change < 0.30
    assert c.p_value < 1e-6


def test_significant_but_small_change_is_not_a_regression():
    a = _noisy(10.0, 400, 0.01, 5)
    b = _noisy(10.3, 400, 0.01, 6)   # +3%: significant, below the 10% minimum effect
    c = compare(a, b, threshold=0.10)
    assert c.p_value < 0.01
    assert c.verdict == PASS


def test_too_noisy_is_inconclusive():
    a = np.array([6.0, 9.0, 10.0, 11.0, 14.0])
    b = np.array([6.5, 9.5, 10.5, 11.5, 14.5])   # +5% in the middle, +-40% spread
    c = compare(a, b, threshold=0.10)
    assert c.verdict == INCONCLUSIVE
    assert c.ci_high >= 0.10


def test_improvement_passes():
    c = compare(_noisy(10, 30, 0.02, 9), _noisy(5, 30, 0.02, 10), threshold=0.10)
    assert c.verdict == PASS
    assert c.change == pytest.approx(-0.5, abs=0.03)


def test_absolute_threshold_for_memory():
    a = _noisy(30.0, 30, 0.01, 11)          # MB
    b = a + 8.0                              # +8 MB
    c = compare(a, b, threshold=5.0, relative=False)
    assert c.verdict == REGRESSION
    assert c.change == pytest.approx(8.0, abs=0.5)
    c2 = compare(a, a + 1.0, threshold=5.0, relative=False)
    assert c2.verdict == PASS


def test_lower_is_worse_metric():
    # throughput: a drop is the regression
    c = compare(_noisy(100, 30, 0.02, 12), _noisy(70, 30, 0.02, 13), threshold=0.10,
                higher_is_worse=False)
    assert c.verdict == REGRESSION
    assert c.median_b < c.median_a
    assert c.change == pytest.approx(0.3, abs=0.03)


def test_bootstrap_interval_contains_true_change():
    a = _noisy(10.0, 200, 0.05, 14)
    b = _noisy(11.0, 200, 0.05, 15)
    lo, hi = bootstrap_change_ci(a, b, relative=True)
    assert lo < 0.10 < hi


def test_aa_compare():
    aa = aa_compare([_noisy(10, 20, 0.01, s) for s in range(4)], threshold=0.10)
    assert aa.verdict == PASS


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError, match="too few samples"):
        compare([1.0], [1.0, 2.0], threshold=0.1)


def test_paired_comparison_cancels_shared_drift():
    rng = np.random.default_rng(21)
    drift = np.repeat([1.0, 1.2, 0.85, 1.1, 0.95], 6)          # rounds the machine made slower
    a = 2.0 * drift * (1 + rng.normal(0, 0.04, drift.size))
    b = 2.0 * drift * (1 + rng.normal(0, 0.04, drift.size))
    same = compare_paired(a, b, threshold=0.10)
    assert same.verdict == PASS
    assert abs(same.change) < 0.04
    unpaired = compare(a, b, threshold=0.10)
    assert (unpaired.ci_high - unpaired.ci_low) > (same.ci_high - same.ci_low)
    worse = compare_paired(a, 1.25 * b, threshold=0.10)
    assert worse.verdict == REGRESSION
    assert worse.change == pytest.approx(0.25, abs=0.04)
    assert worse.p_value < 0.001


def test_paired_needs_three_pairs():
    with pytest.raises(ValueError, match="too few paired samples"):
        compare_paired([1.0, 2.0], [1.0, 2.0], threshold=0.1)
