"""The gate's statistics over rounds, as pure functions: is B worse than A, by enough?

The round (a fresh pair of A and B processes measured side by side) is the unit of
replication: each round gives one paired figure per metric, the log of the B/A ratio
for relative metrics and the difference B - A for absolute ones. Windows or requests
inside one round share the same two processes and are not independent, so they are
never counted as samples here.

Over the rounds: the mean and its Student t interval, and a one-sided t-test of "B is
worse than A". The interval is the (1 - 2 alpha) two-sided one, so each bound is a
one-sided (1 - alpha) bound: the upper bound decides *pass* (the change is shown to be
smaller than the minimum effect delta), the p-value decides *regression* together with
the estimate reaching delta. Holm's step-down correction keeps the chance of any false
regression across the A/B metrics at alpha. docs/gate.md says why these choices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

PASS, REGRESSION, INCONCLUSIVE = "pass", "regression", "inconclusive"


@dataclass(frozen=True)
class Effect:
    """One A/B metric over the rounds, on the scale the test runs on: the log of B/A
    (relative metrics) or B - A (absolute ones); ``threshold`` is delta on that scale."""
    metric: str
    relative: bool
    estimate: float
    low: float
    high: float
    p_value: float
    rounds: int
    threshold: float
    p_holm: float | None = None
    verdict: str = INCONCLUSIVE

    def shown(self, value: float) -> float:
        """A value on the scale people read: a relative change (+0.10 = +10%) or MB."""
        return math.expm1(value) if self.relative else value

    @property
    def change(self) -> float:
        return self.shown(self.estimate)

    @property
    def interval(self) -> tuple[float, float]:
        return self.shown(self.low), self.shown(self.high)


def on_test_scale(delta: float, relative: bool) -> float:
    """The minimum effect on the test's scale: +10% is log(1.10)."""
    return math.log1p(delta) if relative else float(delta)


def paired_differences(a, b, relative: bool) -> np.ndarray:
    """Per round: log(B/A) for a relative metric, B - A for an absolute one. Rounds where
    either side was not measured (or is not positive, for a ratio) are left out."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if relative:
        ok &= (a > 0) & (b > 0)
        return np.log(b[ok] / a[ok])
    return b[ok] - a[ok]


def _t_summary(estimate: float, se: float, df: float, alpha: float) -> tuple[float, float, float]:
    """(low, high, one-sided p of "greater than 0") for a t-distributed estimate."""
    if se == 0 or not math.isfinite(se):
        p = 0.0 if estimate > 0 else 1.0
        return estimate, estimate, p
    t_crit = float(sps.t.ppf(1 - alpha, df))
    p = float(sps.t.sf(estimate / se, df))
    return estimate - t_crit * se, estimate + t_crit * se, p


def paired_effect(metric: str, a, b, delta: float, relative: bool, alpha: float) -> Effect:
    """A and B measured side by side, round by round: a one-sample t on the per-round
    differences. Whatever hit both sides of a round alike (the machine's drift) cancels."""
    d = paired_differences(a, b, relative)
    n = int(d.size)
    if n < 2:
        raise ValueError(f"{metric}: {n} round(s) with both sides measured; need 2")
    est = float(d.mean())
    low, high, p = _t_summary(est, float(d.std(ddof=1)) / math.sqrt(n), n - 1, alpha)
    return Effect(metric, relative, est, low, high, p, n, on_test_scale(delta, relative))


def unpaired_effect(metric: str, a, b, delta: float, relative: bool, alpha: float) -> Effect:
    """A from a stored run, B measured now: Welch's t over the two sides' rounds (on logs
    for a relative metric). The machine's drift between the runs counts as noise here."""
    a = np.asarray([x for x in a if x is not None and math.isfinite(x) and (x > 0 or not relative)], float)
    b = np.asarray([x for x in b if x is not None and math.isfinite(x) and (x > 0 or not relative)], float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"{metric}: rounds measured A {a.size}, B {b.size}; need 2 each")
    if relative:
        a, b = np.log(a), np.log(b)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2 / (a.size - 1)) + (vb ** 2 / (b.size - 1))) if se > 0 else 1.0
    est = float(b.mean() - a.mean())
    low, high, p = _t_summary(est, se, df, alpha)
    return Effect(metric, relative, est, low, high, p, int(min(a.size, b.size)),
                  on_test_scale(delta, relative))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the family-wise error stays at alpha without
    assuming the tests are independent (CPU and latency are not)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def decide(effect: Effect, alpha: float) -> str:
    """Three-way decision against the minimum effect delta.

    pass: the upper bound is below delta (shown smaller than what matters);
    regression: Holm-significant and the estimate reaches delta;
    inconclusive: anything else (more rounds may decide it)."""
    p = effect.p_holm if effect.p_holm is not None else effect.p_value
    if effect.high < effect.threshold:
        return PASS
    if p < alpha and effect.estimate >= effect.threshold:
        return REGRESSION
    return INCONCLUSIVE


def decide_all(effects: list[Effect], alpha: float) -> list[Effect]:
    """Holm across the A/B metrics, then each metric's decision."""
    adjusted = holm([e.p_value for e in effects])
    out = []
    for e, p in zip(effects, adjusted):
        e = replace(e, p_holm=p)
        out.append(replace(e, verdict=decide(e, alpha)))
    return out


def resolution(effect: Effect) -> float:
    """Half the interval's width on the readable scale: the smallest change this run
    can tell apart from none."""
    low, high = effect.interval
    return (high - low) / 2
