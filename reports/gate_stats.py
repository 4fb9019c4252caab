"""The gate's statistics, as pure functions: is B worse than A, by enough, for sure?

A regression needs both statistical significance (one-sided Mann-Whitney U, B worse
than A) and a minimum effect size (relative, e.g. +10% CPU per request, or absolute,
e.g. +3 MB resting memory): significance alone would cry wolf over trivia on a
quiet machine, effect size alone over noise on a busy one. The bootstrap
confidence interval of the change says whether the run could see such an effect
at all: when its half-width reaches the minimum effect, the run was too noisy to
tell and the verdict is inconclusive rather than a pass.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

PASS, REGRESSION, INCONCLUSIVE = "pass", "regression", "inconclusive"


@dataclass
class Comparison:
    median_a: float
    median_b: float
    change: float          # how much worse B is: relative (b/a - 1) or absolute (b - a),
                           # sign-flipped for lower-is-worse metrics
    ci_low: float
    ci_high: float
    p_value: float
    threshold: float
    relative: bool
    n_a: int
    n_b: int
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def _change(a_med: float, b_med: float, relative: bool) -> float:
    if not relative:
        return b_med - a_med
    if a_med == 0:
        return 0.0 if b_med == 0 else float("inf")
    return b_med / a_med - 1.0


def bootstrap_change_ci(a, b, relative: bool, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the change in medians (resampling each side)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ia = rng.integers(0, len(a), size=(n_boot, len(a)))
    ib = rng.integers(0, len(b), size=(n_boot, len(b)))
    ma = np.median(a[ia], axis=1)
    mb = np.median(b[ib], axis=1)
    if relative:
        with np.errstate(divide="ignore", invalid="ignore"):
            ch = np.where(ma == 0, np.where(mb == 0, 0.0, np.inf), mb / ma - 1.0)
    else:
        ch = mb - ma
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ch, [tail, 100 - tail])
    return float(lo), float(hi)


def compare(a, b, threshold: float, relative: bool = True, alpha: float = 0.01,
            higher_is_worse: bool = True, seed: int = 0) -> Comparison:
    """Verdict on samples of one metric: A (reference) against B (the change)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"too few samples to compare (A: {len(a)}, B: {len(b)}; need 2 each)")
    med_a, med_b = float(np.median(a)), float(np.median(b))
    sign = 1.0 if higher_is_worse else -1.0      # "worse" is always a positive change
    change = sign * _change(med_a, med_b, relative)
    lo, hi = sorted(sign * x for x in bootstrap_change_ci(a, b, relative, seed=seed))
    if np.all(a == a[0]) and np.all(b == b[0]):
        p = 0.0 if sign * (b[0] - a[0]) > 0 else 1.0
    else:
        alternative = "greater" if higher_is_worse else "less"
        p = float(stats.mannwhitneyu(b, a, alternative=alternative).pvalue)
    if p < alpha and change >= threshold:
        verdict = REGRESSION
    elif (hi - lo) / 2 >= threshold:   # this run cannot resolve an effect of that size
        verdict = INCONCLUSIVE
    else:
        verdict = PASS
    return Comparison(median_a=med_a, median_b=med_b, change=change,
                      ci_low=lo, ci_high=hi, p_value=p, threshold=threshold,
                      relative=relative, n_a=len(a), n_b=len(b), verdict=verdict)


def aa_compare(samples_by_round: list, threshold: float, relative: bool = True,
               alpha: float = 0.01) -> Comparison:
    """A/A calibration: the same code's rounds split into two interleaved halves."""
    first = [x for i, r in enumerate(samples_by_round) if i % 2 == 0 for x in r]
    second = [x for i, r in enumerate(samples_by_round) if i % 2 == 1 for x in r]
    return compare(first, second, threshold, relative=relative, alpha=alpha)


def compare_paired(a, b, threshold: float, alpha: float = 0.01, seed: int = 0) -> Comparison:
    """Verdict on paired samples (a[i] and b[i] measured at the same time, side by side):
    the change is the median ratio b/a, tested with a one-sided Wilcoxon signed-rank test
    on log ratios. Pairing cancels what both sides suffered alike (the machine's drift
    between rounds), which an unpaired test would count as noise."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    a, b = a[ok], b[ok]
    if len(a) < 3:
        raise ValueError(f"too few paired samples to compare ({len(a)}; need 3)")
    d = np.log(b / a)
    change = float(np.exp(np.median(d)) - 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(2000, len(d)))
    lo, hi = np.percentile(np.exp(np.median(d[idx], axis=1)) - 1, [2.5, 97.5])
    p = float(stats.wilcoxon(d, alternative="greater").pvalue) if np.any(d != 0) else 1.0
    if p < alpha and change >= threshold:
        verdict = REGRESSION
    elif (hi - lo) / 2 >= threshold:
        verdict = INCONCLUSIVE
    else:
        verdict = PASS
    return Comparison(median_a=float(np.median(a)), median_b=float(np.median(b)), change=change,
                      ci_low=float(lo), ci_high=float(hi), p_value=p, threshold=threshold,
                      relative=True, n_a=len(a), n_b=len(b), verdict=verdict)
