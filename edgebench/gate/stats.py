"""The gate's statistics over rounds, as pure functions: a closed group-sequential test
of "B is worse than A" that always ends in pass or regression by its last round.

The round (a fresh pair of A and B processes measured side by side) is the unit of
replication: each round gives one paired figure per metric, the log of the B/A ratio
for relative metrics and the difference B - A for absolute ones.

The design (docs/gate.md, "The A/B rule"):

- the spread of one round's figure is the calibration's upper confidence bound of the
  pooled SD, taken as known (a floor: three lucky rounds cannot fake precision, and it is
  never used below the rounds' own SD), unless the rounds' own SD is significantly larger
  (``spread_used``), then theirs, judged on the t scale;
- the gate looks after every round from ``min_rounds`` to ``max_rounds`` (the last round
  the time budget allows). The false-regression rate alpha is spent over the looks with
  the Lan-DeMets O'Brien-Fleming-type function, information fraction = rounds / max_rounds;
  the boundaries are set by simulating the statistic (with its floor) under no change;
- regression: the lower repeated-confidence bound is above the metric's margin (0 unless
  set); pass before the last look: the upper bound (beta's boundary) is below delta; at
  the last look everything that is not a regression passes, so the boundaries meet there;
- alpha is split over the A/B metrics by weight (Bonferroni), so the chance of any false
  regression in a gate stays at or below alpha.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import special
from scipy import stats as sps

PASS, REGRESSION, INCONCLUSIVE = "pass", "regression", "inconclusive"
BOUNDARY_PATHS = 400_000       # simulated gates behind each set of boundaries
BOUNDARY_SEED = 19             # fixed: the same boundaries on every machine and run


@dataclass(frozen=True)
class Effect:
    """One A/B metric over the rounds, on the scale the test runs on: the log of B/A
    (relative metrics) or B - A (absolute ones); ``threshold`` is delta and ``margin`` the
    regression margin on that scale; ``se`` is the standard error with the spread floor."""
    metric: str
    relative: bool
    estimate: float
    low: float
    high: float
    p_value: float
    rounds: int
    threshold: float
    se: float = math.nan
    df: float | None = None     # None: the calibrated spread was used; else the rounds' own SD's df
    sd: float = math.nan        # the rounds' own SD of one round's figure
    margin: float = 0.0
    bound: float = math.nan     # the boundary (in standard errors) used at this look
    verdict: str = INCONCLUSIVE

    def shown(self, value: float) -> float:
        """A value on the scale people read: a relative change (+0.10 = +10%) or MB."""
        return math.expm1(min(value, 50.0)) if self.relative else value   # an unbounded early look stays finite

    @property
    def change(self) -> float:
        return self.shown(self.estimate)

    @property
    def interval(self) -> tuple[float, float]:
        return self.shown(self.low), self.shown(self.high)


def on_test_scale(delta: float, relative: bool) -> float:
    """A change on the test's scale: +10% is log(1.10)."""
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
    t_crit = float(special.stdtrit(df, 1 - alpha))        # scipy.special: fast in the simulation
    p = float(special.stdtr(df, -estimate / se))
    return estimate - t_crit * se, estimate + t_crit * se, p


SPREAD_TEST = 0.01    # the rounds' own SD replaces the calibrated spread when a chi-square test rejects it at this level


def spread_used(sd: float, n: int, spread: float) -> tuple[float, float | None]:
    """(SD, df) the test uses. The calibrated ``spread`` (an upper confidence bound of the
    pooled SD) is a floor, never used below the rounds' own SD: the larger of the two as
    known (df None), unless the rounds' SD is significantly larger (a noisier machine than
    calibrated), then the rounds' SD with its n - 1 degrees of freedom; no calibrated
    spread: the rounds' SD."""
    if spread > 0 and (n - 1) * sd * sd <= special.chdtri(n - 1, SPREAD_TEST) * spread * spread:
        return max(spread, sd), None
    return sd, float(n - 1)


def paired_effect(metric: str, a, b, delta: float, relative: bool, alpha: float,
                  floor: float = 0.0, margin: float = 0.0) -> Effect:
    """A and B measured side by side, round by round: the mean of the per-round
    differences, its t interval (``alpha`` each side; the gate replaces it by its
    sequential bounds) and the standard error the gate tests with (``spread_used``, with
    ``floor`` the calibrated spread of one round)."""
    d = paired_differences(a, b, relative)
    n = int(d.size)
    if n < 2:
        raise ValueError(f"{metric}: {n} round(s) with both sides measured; need 2")
    est = float(d.mean())
    sd = float(d.std(ddof=1))
    low, high, p = _t_summary(est, sd / math.sqrt(n), n - 1, alpha)
    used, df = spread_used(sd, n, floor)
    return Effect(metric, relative, est, low, high, p, n, on_test_scale(delta, relative),
                  se=used / math.sqrt(n), df=df, sd=sd, margin=on_test_scale(margin, relative))


def unpaired_effect(metric: str, a, b, delta: float, relative: bool, alpha: float,
                    floor: float = 0.0, margin: float = 0.0) -> Effect:
    """A from a stored run, B measured now: Welch's t over the two sides' rounds (on logs
    for a relative metric). The machine's drift between the runs counts as noise here;
    each side's spread is floored at floor / sqrt(2) (a difference has both sides' spread)."""
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
    side_floor2 = floor ** 2 / 2
    se_floor = math.sqrt(max(a.var(ddof=1), side_floor2) / a.size + max(b.var(ddof=1), side_floor2) / b.size)
    return Effect(metric, relative, est, low, high, p, int(min(a.size, b.size)),
                  on_test_scale(delta, relative), se=se_floor, df=float(df),
                  margin=on_test_scale(margin, relative))


# ----------------------------------------------------------------- the sequential design

def spent(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type alpha spending: the share of alpha used by
    information fraction t. Little is spent early, so a gate that goes the distance
    decides at nearly the fixed-sample level."""
    if t >= 1:
        return alpha
    return float(2 * sps.norm.sf(sps.norm.isf(alpha / 2) / math.sqrt(t)))


@lru_cache(maxsize=64)
def boundaries(alpha: float, min_rounds: int, max_rounds: int, last: int | None = None) -> tuple:
    """Regression boundaries (in floored standard errors) at looks min_rounds..last.

    On the normal scale: a statistic tested with the rounds' own SD (``spread_used``) is
    carried over by its t distribution first (``to_normal``). Set by simulation: gates of
    N(0, 1) rounds with a calibrated spread of 1 (a machine exactly as noisy as
    calibrated), and at each look the boundary that makes the chance of a first crossing
    there equal to the alpha spent since the previous look. ``last`` (default max_rounds) spends all of alpha,
    so a gate the time budget cuts short still ends with its full error rate."""
    last = max_rounds if last is None else last
    if not 2 <= min_rounds <= last <= max_rounds:
        raise ValueError(f"looks {min_rounds}..{last} of {max_rounds}: need 2 <= min <= last <= max")
    z = _null_statistics(last)
    alive = np.ones(BOUNDARY_PATHS, bool)
    out, before = [], 0.0
    for look in range(min_rounds, last + 1):
        now = spent(1.0 if look == last else look / max_rounds, alpha)
        k = int(round((now - before) * BOUNDARY_PATHS))
        before = now
        zs = z[alive, look - 1]
        if k <= 0:
            u = float(max(zs.max(), sps.norm.isf(now))) + 1e-9
        else:
            u = float(np.partition(zs, zs.size - k)[zs.size - k])
        out.append(u)
        alive &= z[:, look - 1] < u
    return tuple(out)


@lru_cache(maxsize=4)
def _null_statistics(last: int) -> np.ndarray:
    """The statistic at looks 1..last of BOUNDARY_PATHS simulated gates under no change
    (the spread rule included), on the normal scale: shared by every alpha's boundaries."""
    rng = np.random.default_rng(BOUNDARY_SEED)
    x = rng.standard_normal((BOUNDARY_PATHS, last), dtype=np.float64)
    n = np.arange(1, last + 1)
    csum, csq = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    mean = csum / n
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(csq - n * mean ** 2, 0) / (n - 1)
        own = (n - 1) * var > special.chdtri(np.maximum(n - 1, 1), SPREAD_TEST)
        z = mean * np.sqrt(n) / np.maximum(np.sqrt(var), 1.0)
        # the t statistic only where the own SD is used (about 1 %): the t -> normal
        # transform over all paths was most of the gate's start-up
        rows, cols = np.nonzero(own)
        t = mean[rows, cols] * np.sqrt(n[cols]) / np.sqrt(var[rows, cols])
        z[rows, cols] = special.ndtri(special.stdtr(np.maximum(n - 1, 1)[cols], t))
    z.flags.writeable = False
    return z


@dataclass(frozen=True)
class Design:
    """One metric's share of the false-regression rate (alpha) over the gate's looks, and
    the chance (beta) that a change of exactly delta passes at a look before the last."""
    alpha: float
    min_rounds: int
    max_rounds: int
    beta: float = 0.001

    def bound(self, rounds: int, final: bool) -> float:
        """The regression boundary at this look; a final look spends what is left."""
        rounds = min(rounds, self.max_rounds)
        last = rounds if final else self.max_rounds
        return boundaries(self.alpha, self.min_rounds, self.max_rounds, last)[rounds - self.min_rounds]

    def pass_bound(self, rounds: int) -> float:
        """The early-pass boundary: the same spending of beta, mirrored about delta."""
        rounds = min(rounds, self.max_rounds)
        return boundaries(self.beta, self.min_rounds, self.max_rounds)[rounds - self.min_rounds]


def to_normal(z: float, df: float | None) -> float:
    """A t statistic with df degrees of freedom as the normal quantile of equal tail
    probability (df None: already normal)."""
    return z if df is None else float(special.ndtri(special.stdtr(df, z)))


def from_normal(u: float, df: float | None) -> float:
    """A boundary on the normal scale as the t quantile of equal tail probability."""
    return u if df is None else float(special.stdtrit(df, special.ndtr(u)))


def decide(effect: Effect, design: Design, final: bool) -> Effect:
    """The decision at this look, with the repeated-confidence interval est +- bound x se.

    regression: the lower bound is above the margin; pass: the upper pass bound (beta's
    boundary) is below delta before the last look, or no regression at the last look;
    inconclusive: neither yet, or fewer rounds than the design's first look ("could not
    measure")."""
    if effect.rounds < design.min_rounds:
        return replace(effect, verdict=INCONCLUSIVE)
    u = from_normal(design.bound(effect.rounds, final), effect.df)
    se = effect.se
    low, high = effect.estimate - u * se, effect.estimate + u * se
    z = (effect.estimate - effect.margin) / se if se > 0 else math.copysign(math.inf, effect.estimate - effect.margin)
    p = float(special.ndtr(-to_normal(z, effect.df)))
    early_high = effect.estimate + from_normal(design.pass_bound(effect.rounds), effect.df) * se
    if low > effect.margin:
        verdict = REGRESSION
    elif final or early_high < effect.threshold:
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
    return replace(effect, low=low, high=high, p_value=p, bound=u, verdict=verdict)


def split_alpha(alpha: float, weights: list[float]) -> list[float]:
    """Bonferroni with weights: each metric's share of the gate's false-regression rate."""
    total = sum(weights)
    return [alpha * w / total for w in weights]


def resolution(effect: Effect) -> float:
    """Half the interval's width on the readable scale: the smallest change this run
    can tell apart from none."""
    low, high = effect.interval
    return (high - low) / 2
