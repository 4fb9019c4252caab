"""The gate's operating characteristics, simulated: the repository's budgets.yml through
the gate's own round loop and verdict (tests/gate_simulate.py). Pure: no processes;
fixed seeds.

The fast tier has a smoke test (a few dozen gates). The rates are slow-tier tests: gates
drawn from the measured noise model of the recorded unchanged-code rounds in
docs/gate-rounds/ (each metric's pooled SD, its residuals resampled with their tails,
AR(1) at the measured lag-1 autocorrelation, failed scrapes as recorded, the recorded
round time), each rate asserted with its margin in Monte-Carlo standard errors
(docs/gate.md, "Operating characteristics").
"""
import math
from pathlib import Path

import pytest

from edgebench.gate.pool import load_rounds
from reports.budgets import load_budgets
from tests.gate_simulate import noise_from_rounds, normal, simulate

pytestmark = pytest.mark.xdist_group("gate_oc")  # its module fixtures are built once (make test)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_budgets(ROOT / "budgets.yml")
ROUNDS = ROOT / "docs" / "gate-rounds"


def _se(rate: float, n: int) -> float:
    return math.sqrt(rate * (1 - rate) / n)


def test_smoke_simulated_gates_decide_within_the_budget():
    quiet = normal({m.metric: m.spread for m in CONFIG.ab_metrics}, round_s=25.0)
    t = simulate(CONFIG, 40, {}, quiet, seed=11)
    assert t.counts["inconclusive"] == t.counts["error"] == 0 and t.gates == 40
    assert max(t.elapsed_s) <= CONFIG.time_budget_s and max(t.rounds) <= CONFIG.max_rounds
    big = simulate(CONFIG, 20, {"cpu_ms_per_request": 0.5}, quiet, seed=12)
    assert big.rate("regression") == 1 and max(big.rounds) == CONFIG.min_rounds


@pytest.fixture(scope="module")
def measured():
    return noise_from_rounds(load_rounds(ROUNDS), CONFIG)


@pytest.fixture(scope="module")
def unchanged(measured):
    return simulate(CONFIG, 4_000, {}, measured, seed=101)


@pytest.mark.slow
def test_unchanged_code_is_rarely_a_false_regression_at_the_measured_noise(unchanged):
    rate = unchanged.rate("regression")
    assert rate <= 0.01, f"{rate:.2%} +- {_se(rate, unchanged.gates):.2%}"
    assert rate > 0          # measured, not vacuous: some gates do cry wolf
    assert unchanged.counts["inconclusive"] == unchanged.counts["error"] == 0
    assert max(unchanged.elapsed_s) <= CONFIG.time_budget_s


@pytest.mark.slow
def test_a_true_10_percent_is_caught_at_the_measured_noise(measured):
    t = simulate(CONFIG, 2_000, {"cpu_ms_per_request": 0.10}, measured, seed=102)
    assert t.rate("regression") >= 0.95, f"{t.rate('regression'):.2%}"


@pytest.mark.slow
def test_a_true_20_percent_is_always_caught_at_the_measured_noise(measured):
    t = simulate(CONFIG, 1_000, {"cpu_ms_per_request": 0.20}, measured, seed=103)
    assert t.rate("regression") >= 0.995, f"{t.rate('regression'):.2%}"


@pytest.mark.slow
def test_a_burst_of_noise_mostly_widens_the_intervals(measured):
    """One innovation in ten at 3x on top of the measured noise: the rounds' own SD takes
    over and unchanged code still passes nearly always."""
    t = simulate(CONFIG, 1_000, {}, measured, seed=104, outliers=0.10)
    assert t.rate("pass") >= 0.96, f"{t.rate('pass'):.2%}"
