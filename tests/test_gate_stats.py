"""The gate's statistics over rounds, on constructed rounds with known answers."""
import math

import numpy as np
import pytest

from edgebench.gate.stats import (
    INCONCLUSIVE,
    PASS,
    REGRESSION,
    decide,
    decide_all,
    holm,
    paired_differences,
    paired_effect,
    unpaired_effect,
)

ALPHA = 0.05


def _rounds(ratios, a0=2.0):
    """A and B per round with B/A = ratio (A drifts between rounds, as the machine does)."""
    a = np.array([a0 * (1 + 0.2 * ((i % 3) - 1)) for i in range(len(ratios))])
    return a, a * np.asarray(ratios)


def test_interval_below_delta_passes():
    a, b = _rounds([1.01, 0.99, 1.02, 1.00, 1.01])
    e = decide_all([paired_effect("cpu", a, b, 0.10, True, ALPHA)], ALPHA)[0]
    assert e.verdict == PASS
    assert e.interval[1] < 0.10 and abs(e.change) < 0.02
    assert e.rounds == 5


def test_interval_straddling_delta_is_inconclusive():
    a, b = _rounds([1.02, 1.12, 1.06, 1.10])          # mean about +7.4%, reaching past +10%
    e = decide_all([paired_effect("cpu", a, b, 0.10, True, ALPHA)], ALPHA)[0]
    low, high = e.interval
    assert low < 0.10 < high
    assert e.verdict == INCONCLUSIVE


def test_significant_effect_at_least_delta_is_a_regression():
    a, b = _rounds([1.19, 1.21, 1.20, 1.22])
    e = decide_all([paired_effect("cpu", a, b, 0.10, True, ALPHA)], ALPHA)[0]
    assert e.verdict == REGRESSION
    assert e.change == pytest.approx(0.205, abs=0.01)
    assert e.p_value < 1e-3


def test_significant_but_below_delta_is_not_a_regression():
    # +6% in every round: clearly real, clearly below +10% -> pass once the bound is under
    a, b = _rounds([1.06, 1.061, 1.059, 1.06, 1.062])
    e = decide_all([paired_effect("cpu", a, b, 0.10, True, ALPHA)], ALPHA)[0]
    assert e.p_value < 1e-6 and e.verdict == PASS


def test_absolute_metric_in_megabytes():
    a = np.array([27.0, 27.5, 26.8, 27.2])
    e = decide_all([paired_effect("mem", a, a + np.array([8.1, 7.9, 8.0, 8.2]), 3.0, False, ALPHA)], ALPHA)[0]
    assert e.verdict == REGRESSION and e.change == pytest.approx(8.05)
    e = decide_all([paired_effect("mem", a, a + np.array([0.1, -0.2, 0.0, 0.1]), 3.0, False, ALPHA)], ALPHA)[0]
    assert e.verdict == PASS


def test_t_interval_matches_the_textbook():
    d = np.log([1.10, 1.14, 1.12])
    e = paired_effect("cpu", [1, 1, 1], [1.10, 1.14, 1.12], 0.10, True, ALPHA)
    se = d.std(ddof=1) / math.sqrt(3)
    assert e.estimate == pytest.approx(d.mean())
    assert e.high == pytest.approx(d.mean() + 2.919986 * se, rel=1e-5)   # t(0.95, df=2)


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_holm_changes_a_verdict():
    # one metric alone is significant at 0.05 (p ~ 0.03); tested with two more metrics
    # Holm multiplies its p by 3 and the regression is no longer shown
    cpu = paired_effect("cpu", [1, 1, 1], [1.08, 1.20, 1.13], 0.10, True, ALPHA)
    assert 0.01 < cpu.p_value < ALPHA and cpu.estimate >= cpu.threshold
    alone = decide_all([cpu], ALPHA)[0]
    assert alone.verdict == REGRESSION
    others = [paired_effect("lat", [1, 1, 1], [1.0, 1.01, 0.99], 0.10, True, ALPHA),
              paired_effect("mem", [27, 27, 27], [27.1, 26.9, 27.0], 3.0, False, ALPHA)]
    together = decide_all([cpu] + others, ALPHA)[0]
    assert together.p_holm == pytest.approx(3 * cpu.p_value)
    assert together.verdict == INCONCLUSIVE


def test_aa_with_process_spread_rounds_are_not_significant_where_windows_would_be():
    """Unchanged code, but each pair of processes differs a little (layout, allocator):
    within a round, 6 windows agree closely, so windows pooled as samples look like a
    significant change; over rounds (the unit) the spread shows and nothing is claimed."""
    rng = np.random.default_rng(7)
    process_effect = np.array([0.06, -0.02, 0.07, -0.01, 0.05])       # per round, mean +3%
    a_windows, b_windows = [], []
    for pe in process_effect:
        a = 2.0 * (1 + rng.normal(0, 0.005, 6))
        a_windows.append(a)
        b_windows.append(a * math.exp(pe) * (1 + rng.normal(0, 0.005, 6)))
    from scipy.stats import ttest_1samp
    pooled = np.log(np.concatenate(b_windows) / np.concatenate(a_windows))
    assert ttest_1samp(pooled, 0, alternative="greater").pvalue < 0.05        # windows: "significant"
    a_rounds = [w.mean() for w in a_windows]
    b_rounds = [w.mean() for w in b_windows]
    e = decide_all([paired_effect("cpu", a_rounds, b_rounds, 0.10, True, ALPHA)], ALPHA)[0]
    assert e.p_value > 0.05
    assert e.verdict != REGRESSION


def test_improvement_passes():
    a, b = _rounds([0.5, 0.52, 0.49])
    e = decide_all([paired_effect("cpu", a, b, 0.10, True, ALPHA)], ALPHA)[0]
    assert e.verdict == PASS and e.change == pytest.approx(-0.497, abs=0.01)


def test_unmeasured_rounds_are_left_out_and_too_few_refused():
    assert paired_differences([1.0, None, 2.0], [1.1, 1.0, float("nan")], True).size == 1
    with pytest.raises(ValueError, match="need 2"):
        paired_effect("cpu", [1.0, None], [1.1, 1.0], 0.1, True, ALPHA)


def test_unpaired_for_stored_baselines():
    e = unpaired_effect("cpu", [2.0, 2.1, 1.9, 2.05], [2.5, 2.6, 2.4, 2.55], 0.10, True, ALPHA)
    assert decide(e, ALPHA) == REGRESSION and e.change == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="need 2 each"):
        unpaired_effect("cpu", [2.0], [2.5, 2.6], 0.10, True, ALPHA)
