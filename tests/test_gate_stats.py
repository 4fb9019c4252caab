"""The gate's statistics over rounds, on constructed rounds with known answers."""
import math

import numpy as np
import pytest
from scipy import special

from edgebench.gate.stats import (
    INCONCLUSIVE,
    PASS,
    REGRESSION,
    Design,
    boundaries,
    decide,
    paired_differences,
    paired_effect,
    spent,
    split_alpha,
    spread_used,
    unpaired_effect,
)

ALPHA = 0.05


def _rounds(ratios, a0=2.0):
    """A and B per round with B/A = ratio (A drifts between rounds, as the machine does)."""
    a = np.array([a0 * (1 + 0.2 * ((i % 3) - 1)) for i in range(len(ratios))])
    return a, a * np.asarray(ratios)


DESIGN = Design(ALPHA, 3, 8)


def _decide(a, b, delta=0.10, relative=True, final=True, design=DESIGN, floor=0.0, margin=0.0):
    return decide(paired_effect("cpu", a, b, delta, relative, design.alpha, floor, margin), design, final)


def test_interval_below_delta_passes():
    a, b = _rounds([1.01, 0.99, 1.02, 1.00, 1.01])
    e = _decide(a, b, final=False, floor=0.02)
    assert e.verdict == PASS
    assert e.interval[1] < 0.10 and abs(e.change) < 0.02
    assert e.rounds == 5


def test_interval_straddling_delta_waits_until_the_last_look():
    a, b = _rounds([1.02, 1.12, 1.06, 1.10])          # mean about +7.4%, reaching past +10%
    e = _decide(a, b, final=False)
    low, high = e.interval
    assert low < 0.10 < high
    assert e.verdict == INCONCLUSIVE
    assert _decide(a, b, final=True).verdict in (PASS, REGRESSION)


def test_significant_effect_is_a_regression():
    a, b = _rounds([1.19, 1.21, 1.20, 1.22])
    e = _decide(a, b, final=False)
    assert e.verdict == REGRESSION
    assert e.change == pytest.approx(0.205, abs=0.01)
    assert e.p_value < 1e-3 and e.interval[0] > 0


def test_a_margin_keeps_a_small_real_change_from_being_a_regression():
    a = np.array([27.0, 27.5, 26.8, 27.2])
    e = _decide(a, a + np.array([0.2, 0.21, 0.19, 0.2]), 3.0, False, final=False)
    assert e.verdict == REGRESSION                      # +0.2 MB, shown above 0
    e = _decide(a, a + np.array([0.2, 0.21, 0.19, 0.2]), 3.0, False, final=True, margin=0.5)
    assert e.verdict == PASS                            # but not above a 0.5 MB margin


def test_absolute_metric_in_megabytes():
    a = np.array([27.0, 27.5, 26.8, 27.2])
    e = _decide(a, a + np.array([8.1, 7.9, 8.0, 8.2]), 3.0, False)
    assert e.verdict == REGRESSION and e.change == pytest.approx(8.05)
    e = _decide(a, a + np.array([0.1, -0.2, 0.0, 0.1]), 3.0, False, final=True)
    assert e.verdict == PASS


def test_spending_is_obrien_fleming_type_and_complete():
    assert spent(1.0, 0.01) == 0.01
    assert spent(0.5, 0.01) == pytest.approx(2.70e-4, rel=0.01)    # 2(1 - Phi(2.5758 / sqrt(0.5)))
    assert spent(3 / 7, 0.01) < spent(5 / 7, 0.01) < 0.01


def test_boundaries_fall_toward_the_last_look_and_hold_alpha():
    u = boundaries(0.01, 3, 7)
    assert len(u) == 5 and all(x > y for x, y in zip(u, u[1:]))
    assert 2.2 < u[-1] < 2.8 and u[0] > 3.5
    # an independent check (another seed) of the chance of any crossing under no change
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((200_000, 7))
    crossed = np.zeros(len(x), bool)
    for look, bound in zip(range(3, 8), u):
        d = x[:, :look]
        sd = d.std(axis=1, ddof=1)
        own = (look - 1) * sd ** 2 > special.chdtri(look - 1, 0.01)    # spread_used's test
        t = d.mean(axis=1) * math.sqrt(look) / np.where(own, sd, np.maximum(sd, 1.0))
        zn = np.where(own, special.ndtri(special.stdtr(look - 1, t)), t)
        crossed |= zn >= bound
    rate = crossed.mean()
    assert abs(rate - 0.01) < 4 * math.sqrt(0.01 * 0.99 / len(x)), rate


def test_a_gate_cut_short_spends_all_of_alpha_at_its_last_look():
    full, short = boundaries(0.01, 3, 7), boundaries(0.01, 3, 7, last=5)
    assert short[:2] == pytest.approx(full[:2], abs=0.1) and short[-1] < full[2]


def test_calibrated_spread_is_used_unless_the_rounds_reject_it():
    assert spread_used(0.04, 7, 0.05) == (0.05, None)       # quieter than calibrated: the floor
    assert spread_used(0.06, 7, 0.05) == (0.06, None)       # a little noisier: never below its own SD
    assert spread_used(0.12, 7, 0.05) == (0.12, 6.0)        # far noisier: its own SD, as a t
    assert spread_used(0.12, 7, 0.0) == (0.12, 6.0)         # no calibration: a t test


def test_alpha_is_split_by_weight():
    assert split_alpha(0.01, [7, 2, 1]) == pytest.approx([0.007, 0.002, 0.001])


def test_t_interval_matches_the_textbook():
    d = np.log([1.10, 1.14, 1.12])
    e = paired_effect("cpu", [1, 1, 1], [1.10, 1.14, 1.12], 0.10, True, ALPHA)
    se = d.std(ddof=1) / math.sqrt(3)
    assert e.estimate == pytest.approx(d.mean())
    assert e.high == pytest.approx(d.mean() + 2.919986 * se, rel=1e-5)   # t(0.95, df=2)


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
    e = decide(paired_effect("cpu", a_rounds, b_rounds, 0.10, True, ALPHA), DESIGN, final=True)
    assert e.p_value > 0.05
    assert e.verdict != REGRESSION


def test_improvement_passes():
    a, b = _rounds([0.5, 0.52, 0.49])
    e = _decide(a, b, final=False, floor=0.05)
    assert e.verdict == PASS and e.change == pytest.approx(-0.497, abs=0.01)


def test_unmeasured_rounds_are_left_out_and_too_few_refused():
    assert paired_differences([1.0, None, 2.0], [1.1, 1.0, float("nan")], True).size == 1
    with pytest.raises(ValueError, match="need 2"):
        paired_effect("cpu", [1.0, None], [1.1, 1.0], 0.1, True, ALPHA)


def test_unpaired_for_stored_baselines():
    e = unpaired_effect("cpu", [2.0, 2.1, 1.9, 2.05], [2.5, 2.6, 2.4, 2.55], 0.10, True, ALPHA)
    assert decide(e, DESIGN, final=True).verdict == REGRESSION and e.change == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="need 2 each"):
        unpaired_effect("cpu", [2.0], [2.5, 2.6], 0.10, True, ALPHA)
