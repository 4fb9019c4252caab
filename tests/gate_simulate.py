"""The gate's operating characteristics, simulated: the gate's own round loop and verdict
(``loop.run_rounds``, ``verdict.evaluate``) on rounds drawn from a noise model, so the
error rates of the whole decision procedure (looks, floors, alpha split, budgets) are
measured rather than claimed. Pure: no processes, a seeded generator.

The noise model (``Noise``) is the measured one when built from recorded unchanged-code
rounds (``noise_from_rounds``): each metric at its pooled SD, innovations resampled
from the rounds' own standardised residuals (all metrics of one recorded round together,
so the tails, one-sided outliers and the metrics' correlation are as seen), an AR(1) at
each metric's measured lag-1 autocorrelation, the round time as recorded and each round's
failed-scrape ratios (A, B) resampled from the recorded rounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sps

from edgebench.gate.loop import run_rounds
from edgebench.gate.pool import differences, spread_of
from edgebench.gate.verdict import Round, evaluate
from reports.budgets import GateConfig

BASE = {"cpu_ms_per_request": 1.0, "scrape_latency_ms": 5.0, "service_mem_steady_mb": 27.0}


@dataclass(frozen=True)
class Noise:
    """How one round's paired figures are drawn: per metric an SD on the test scale (log
    ratio, or MB) and an AR(1) coefficient; ``residuals``, rows of standardised residuals
    (one per recorded round, columns in ``metrics`` order) resampled as innovations, or
    None for independent normal ones; ``failures``, (A, B) failed-scrape ratios resampled
    per round (empty: none fail); ``round_s``, one round's wall time."""
    spread: dict
    rho: dict = field(default_factory=dict)
    metrics: tuple = ()
    residuals: np.ndarray | None = None
    failures: tuple = ()
    round_s: float = 25.0
    label: str = "normal"

    def innovations(self, rng, names: list) -> dict:
        if self.residuals is None:
            return {n: float(rng.standard_normal()) for n in names}
        row = self.residuals[int(rng.integers(len(self.residuals)))]
        return {n: float(row[self.metrics.index(n)]) for n in names}


def noise_from_rounds(rounds: list[dict], config):
    """The simulator's measured noise model (``simulate.Noise``) from recorded rounds: each
    metric's pooled SD and lag-1 autocorrelation, the standardised residual rows (rounds
    with every metric measured), the rounds' (A, B) failed-scrape ratios and their median
    wall time."""
    names = tuple(m.metric for m in config.ab_metrics)
    d = np.column_stack([differences(rounds, m) for m in config.ab_metrics])
    d = d[np.all(np.isfinite(d), axis=1)]
    mean, sd = d.mean(axis=0), d.std(axis=0, ddof=1)
    rho = {s.metric: s.lag1 for s in (spread_of(rounds, m) for m in config.ab_metrics)}
    failures = tuple((r["a"].get("metrics_failure_ratio") or 0.0, r["b"].get("metrics_failure_ratio") or 0.0)
                     for r in rounds)
    z = np.divide(d - mean, sd, out=np.zeros_like(d), where=sd > 0)
    return Noise(dict(zip(names, map(float, sd))), rho, names, z, failures,
                 float(np.median([r["elapsed_s"] for r in rounds])),
                 label=f"measured ({len(d)} rounds, {float(np.median([r['elapsed_s'] for r in rounds])):.0f} s each)")


def normal(spread: dict, round_s: float = 25.0) -> Noise:
    """Independent normal rounds at ``spread``, no failed scrapes: the textbook premise."""
    return Noise(dict(spread), round_s=round_s, label="normal, independent")


@dataclass
class Tally:
    """What N simulated gates decided, and how long they took."""
    gates: int = 0
    counts: dict = field(default_factory=lambda: {"pass": 0, "regression": 0, "inconclusive": 0, "error": 0})
    rounds: list = field(default_factory=list)
    elapsed_s: list = field(default_factory=list)
    estimates: list = field(default_factory=list)
    fired: dict = field(default_factory=dict)     # check name -> gates it called a regression

    def rate(self, verdict: str) -> float:
        return self.counts[verdict] / self.gates

    def se(self, verdict: str) -> float:
        """The Monte-Carlo standard error of a rate."""
        p = self.rate(verdict)
        return math.sqrt(p * (1 - p) / self.gates)

    def interval(self, verdict: str, level: float = 0.95) -> tuple[float, float]:
        """Clopper-Pearson interval of a rate: the Monte-Carlo error of the simulation."""
        ci = sps.binomtest(self.counts[verdict], self.gates).proportion_ci(level, method="exact")
        return ci.low, ci.high


def _figures(values: dict, failure: float) -> dict:
    """One side's figures: the A/B metrics as drawn, every other budget figure well inside."""
    return {**values, "service_mem_peak_mb": 30.0, "stack_mem_peak_mb": 120.0, "oom_kills": 0.0,
            "restarts": 0.0, "metrics_failure_ratio": failure, "scrape_p95_ms": 20.0,
            "cpu_ms_per_scrape": 1.0, "mem_slope_kb_per_request": 0.5, "requests": 250.0}


def _one_gate(config: GateConfig, rng, change: dict, noise: Noise, outliers: float):
    """One gate through the gate's own loop and verdict, on a clock that moves one round
    time per round."""
    now = [0.0]
    names = [m.metric for m in config.ab_metrics]
    state = dict.fromkeys(names, 0.0)

    def measure(i: int) -> Round:
        now[0] += noise.round_s
        e = noise.innovations(rng, names)
        a, b = {}, {}
        for m in config.ab_metrics:
            name, rho = m.metric, noise.rho.get(m.metric, 0.0)
            scale = 3.0 if outliers and rng.random() < outliers else 1.0
            state[name] = e[name] * scale if i == 1 else rho * state[name] + math.sqrt(1 - rho * rho) * e[name] * scale
            d = noise.spread[name] * state[name]
            drift = rng.normal(0.0, 0.2)
            if m.relative:
                a[name] = BASE[name] * math.exp(drift)
                b[name] = a[name] * math.exp(math.log1p(change.get(name, 0.0)) + d)
            else:
                a[name] = BASE[name] + drift
                b[name] = a[name] + change.get(name, 0.0) + d
        fa, fb = noise.failures[int(rng.integers(len(noise.failures)))] if noise.failures else (0.0, 0.0)
        return Round(i, b=_figures(b, fb), a=_figures(a, fa), order=("A", "B") if i % 2 else ("B", "A"))

    return run_rounds(measure, lambda rs, final: evaluate(rs, config, final=final),
                      config.min_rounds, config.max_rounds, config.time_budget_s, clock=lambda: now[0])


def simulate(config: GateConfig, gates: int, change: dict | None = None, noise: Noise | None = None,
             seed: int = 1, outliers: float = 0.0) -> Tally:
    """``gates`` gates with a true ``change`` per metric (relative: 0.10 = +10%; memory: MB)
    and rounds drawn from ``noise`` (default: independent normal rounds at each metric's
    budgets.yml spread). Each round also moves both sides alike (the machine's drift),
    which pairing must cancel. ``outliers``: the share of innovations at 3x (a burst)."""
    change = change or {}
    noise = noise or normal({m.metric: m.spread for m in config.ab_metrics})
    rng = np.random.default_rng(seed)
    tally = Tally()
    for _ in range(gates):
        out = _one_gate(config, rng, change, noise, outliers)
        tally.gates += 1
        tally.counts[out.result.verdict] += 1
        tally.rounds.append(len(out.rounds))
        tally.elapsed_s.append(out.elapsed_s)
        cpu = [c for c in out.result.checks if c.metric == "cpu_ms_per_request" and c.change is not None]
        tally.estimates.append(cpu[0].change if cpu else math.nan)
        for c in out.result.checks:
            if c.verdict == "regression":
                tally.fired[c.name] = tally.fired.get(c.name, 0) + 1
    return tally


CHANGES = (0.0, 0.05, 0.10, 0.20)


def _cell(t: Tally, verdict: str) -> str:
    return f"{t.rate(verdict):.2%} ± {t.se(verdict):.2%}"


def oc_table(config: GateConfig, gates: int, noises: list, seed: int = 1) -> str:
    """The operating-characteristic table (markdown): per noise model and true CPU change,
    the share of gates ending in regression and in pass with their Monte-Carlo standard
    errors, the mean rounds, the longest gate and, for unchanged code, which checks fired."""
    lines = ["| noise model | true CPU change | regression ± SE | pass ± SE | other | mean rounds | "
             "longest gate | false regressions by check |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for noise in noises:
        for change in CHANGES:
            t = simulate(config, gates, {"cpu_ms_per_request": change}, noise, seed=seed)
            other = t.gates - t.counts["regression"] - t.counts["pass"]
            fired = (", ".join(f"{k.removeprefix('A/B: ').removeprefix('budget: ')} {v}"
                               for k, v in sorted(t.fired.items())) or "none") if change == 0 else ""
            lines.append(f"| {noise.label} | {change:+.0%} | {_cell(t, 'regression')} | {_cell(t, 'pass')} | "
                         f"{other} | {np.mean(t.rounds):.2f} | {max(t.elapsed_s):.0f} s | {fired} |")
    return "\n".join(lines)


if __name__ == "__main__":      # python -m tests.gate_simulate ROUNDS [GATES] [budgets.yml]
    import sys

    from edgebench.gate.pool import load_rounds
    from reports.budgets import load_budgets
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.gate_simulate ROUNDS.jsonl [GATES] [budgets.yml]: "
                 "pass recorded unchanged-code rounds (edgebench gate-rounds)")
    cfg = load_budgets(sys.argv[3] if len(sys.argv) > 3 else "budgets.yml")
    measured = noise_from_rounds(load_rounds(sys.argv[1]), cfg)
    print(oc_table(cfg, int(sys.argv[2]) if len(sys.argv) > 2 else 4000,
                   [measured, replace(measured, round_s=25.0, label="measured, 25 s rounds"),
                    normal(measured.spread, measured.round_s)]))
