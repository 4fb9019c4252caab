"""Pooled unchanged-code rounds (edgebench/gate/pool.py): spreads, their upper bounds,
the independence checks, the simulator's measured noise model and gates replayed from
recorded rounds, on constructed rounds with known answers (no processes)."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from edgebench.gate.pool import (
    differences,
    failure_rounds,
    load_rounds,
    replay_gates,
    sd_upper_bound,
    spread_of,
)
from edgebench.scenarios import ParameterError
from reports.budgets import AB, ABMetric, Budget, GateConfig
from tests.gate_simulate import noise_from_rounds

CPU = ABMetric(metric="cpu_ms_per_request", min_effect=0.10, spread=0.05, weight=7)
CONFIG = GateConfig(
    budgets=[Budget(metric="oom_kills", max=0), Budget(metric="metrics_failure_ratio", max=0.0, over="paired")],
    ab=AB(metrics=[CPU, ABMetric(metric="service_mem_steady_mb", min_effect=1.5, relative=False, spread=0.2,
                                 margin=0.25)],
          alpha=0.008, min_rounds=3, max_rounds=7, time_budget_s=180))


def line(i, cpu_d, mem_d=None, fail=(0.0, 0.0), errors=()):
    """One recorded round: A at 1 ms, B at exp(cpu_d) ms; memory B - A = mem_d MB
    (default: a little noise of its own)."""
    mem_d = 0.05 * math.sin(7 * i) if mem_d is None else mem_d
    side = {"oom_kills": 0.0, "requests": 220.0}
    return {"index": i, "started": 1000.0 + 25 * i, "elapsed_s": 25.0, "order": ["A", "B"] if i % 2 else ["B", "A"],
            "errors": list(errors), "load_start": [1.0, 1.0, 1.0], "load_end": [1.0, 1.0, 1.0], "steal": 0.0,
            "a": {**side, "cpu_ms_per_request": 1.0, "service_mem_steady_mb": 20.0, "metrics_failure_ratio": fail[0]},
            "b": {**side, "cpu_ms_per_request": math.exp(cpu_d), "service_mem_steady_mb": 20.0 + mem_d,
                  "metrics_failure_ratio": fail[1]}}


def recorded(d, **kw):
    return [line(i + 1, x, **kw) for i, x in enumerate(d)]


def test_spread_is_the_pooled_sd_with_its_chi_square_upper_bound():
    d = np.random.default_rng(3).normal(0, 0.04, 100)
    s = spread_of(recorded(d), CPU)
    assert s.n == 100 and s.sd == pytest.approx(d.std(ddof=1))
    assert s.sd_upper == pytest.approx(s.sd * math.sqrt(99 / sps.chi2.ppf(0.05, 99)))
    assert s.sd < s.sd_upper < 1.15 * s.sd          # 99 df: the bound is about 13% above
    assert sd_upper_bound(1.0, 6) == pytest.approx(1.9154, abs=1e-3)   # 7 rounds: almost twice the SD


def test_outliers_are_counted_on_their_side():
    d = np.random.default_rng(4).normal(0, 0.02, 60)
    d[[5, 17, 40]] = 0.3                               # B much worse in three rounds
    s = spread_of(recorded(d), CPU)
    assert (s.outliers_high, s.outliers_low) == (3, 0)
    assert s.skew > 2 and s.robust_sd < 0.03 < s.sd


def test_independence_checks_see_correlation_a_slot_effect_and_a_trend():
    rng = np.random.default_rng(5)
    e = rng.normal(0, 1, 200)
    ar = np.zeros(200)
    for i in range(1, 200):
        ar[i] = 0.6 * ar[i - 1] + e[i]
    s = spread_of(recorded(0.02 * ar), CPU)
    assert s.lag1_ci[0] > 0.4                          # AR(1) at 0.6: seen
    iid = spread_of(recorded(0.02 * e), CPU)
    assert iid.lag1_ci[0] < 0 < iid.lag1_ci[1] and iid.slot_p > 0.01 and iid.trend_p > 0.01
    slot = 0.02 * e + np.where(np.arange(1, 201) % 2 == 1, 0.03, 0.0)   # A-first rounds 3% higher
    assert spread_of(recorded(slot), CPU).slot_ci[0] > 0.01
    trend = 0.02 * e + np.linspace(0, 0.1, 200)
    t = spread_of(recorded(trend), CPU)
    assert t.trend_p < 1e-6 and t.trend_ci[0] > 0.03 and t.trend_per_100 == pytest.approx(0.05, abs=0.01)


def test_rounds_that_failed_are_left_out_and_a_missing_file_is_refused(tmp_path):
    rs = recorded([0.01, 0.02, 0.03])
    rs[1]["errors"] = ["B round 2: RuntimeError: the service never came up"]
    (tmp_path / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rs)))
    got = load_rounds(tmp_path)
    assert [r["index"] for r in got] == [1, 3]
    assert differences(got, CPU) == pytest.approx([0.01, 0.03])
    with pytest.raises(ParameterError, match="no rounds.jsonl there"):
        load_rounds(tmp_path / "nope")


def test_failed_scrapes_are_counted_by_side():
    rs = recorded([0.0] * 4)
    for r, (a, b) in zip(rs, [(0.01, 0.0), (0.0, 0.02), (0.01, 0.01), (0.0, 0.0)]):
        r["a"]["metrics_failure_ratio"], r["b"]["metrics_failure_ratio"] = a, b
    assert failure_rounds(rs) == {"rounds": 4, "a": 2, "b": 2, "both": 1, "one": 2}


def test_the_measured_noise_model_carries_the_rounds_as_recorded():
    rng = np.random.default_rng(6)
    d = rng.standard_t(3, 80) * 0.03
    rs = recorded(d, fail=(0.0, 0.01))
    noise = noise_from_rounds(rs, CONFIG)
    assert noise.spread["cpu_ms_per_request"] == pytest.approx(d.std(ddof=1))
    col = noise.residuals[:, noise.metrics.index("cpu_ms_per_request")]
    assert col.mean() == pytest.approx(0, abs=1e-12) and col.std(ddof=1) == pytest.approx(1)
    assert sps.kurtosis(col) == pytest.approx(sps.kurtosis(d))      # the tails as seen
    assert noise.rho["cpu_ms_per_request"] == pytest.approx(spread_of(rs, CPU).lag1)
    assert set(noise.failures) == {(0.0, 0.01)} and noise.round_s == 25.0


def test_replayed_gates_run_the_gates_own_verdict():
    rng = np.random.default_rng(7)
    same = recorded(rng.normal(0, 0.01, 20))
    out = replay_gates(same, CONFIG, 30, np.random.default_rng(1))
    assert out.counts == {"pass": 30} and out.rate == 0 and out.fired == {}
    worse = recorded(rng.normal(0.3, 0.01, 20))          # B 35% slower in every round
    out = replay_gates(worse, CONFIG, 30, np.random.default_rng(1))
    assert out.rate == 1 and out.fired == {"A/B: cpu_ms_per_request": 30} and out.mean_rounds == 3
    failing = recorded(rng.normal(0, 0.01, 20), fail=(0.0, 0.05))    # B alone loses scrapes, every round
    out = replay_gates(failing, CONFIG, 10, np.random.default_rng(1))
    assert out.fired.get("budget: metrics_failure_ratio") == 10
