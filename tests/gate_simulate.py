"""The gate's operating characteristics, simulated: the gate's own round loop and verdict
(``loop.run_rounds``, ``verdict.evaluate``) on rounds drawn with a stated spread per
metric, so the error rates of the whole decision procedure (looks, floors, alpha split,
budgets) are measured rather than claimed. Pure: no processes, a seeded generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from edgebench.gate.loop import run_rounds
from edgebench.gate.verdict import Round, evaluate
from reports.budgets import GateConfig

# One round's SD of log(B/A) (CPU, latency) and of B - A in MB (memory) on the quiet
# machine, as docs/gate.md records them (the calibration's A/A rounds of 3 s + 20 s).
QUIET = {"cpu_ms_per_request": 0.05, "scrape_latency_ms": 0.06, "service_mem_steady_mb": 0.2}
NOISY = {"cpu_ms_per_request": 0.08, "scrape_latency_ms": 0.08, "service_mem_steady_mb": 0.3}
ROUND_S = 25.0      # wall time of one side-by-side round of 3 s + 20 s (74 s for 3 rounds)
BASE = {"cpu_ms_per_request": 1.0, "scrape_latency_ms": 5.0, "service_mem_steady_mb": 27.0}


@dataclass
class Tally:
    """What N simulated gates decided, and how long they took."""
    gates: int = 0
    counts: dict = field(default_factory=lambda: {"pass": 0, "regression": 0, "inconclusive": 0, "error": 0})
    rounds: list = field(default_factory=list)
    elapsed_s: list = field(default_factory=list)
    estimates: list = field(default_factory=list)

    def rate(self, verdict: str) -> float:
        return self.counts[verdict] / self.gates

    def interval(self, verdict: str, level: float = 0.95) -> tuple[float, float]:
        """Clopper-Pearson interval of a rate: the Monte-Carlo error of the simulation."""
        ci = sps.binomtest(self.counts[verdict], self.gates).proportion_ci(level, method="exact")
        return ci.low, ci.high


def _figures(values: dict) -> dict:
    """One side's figures: the A/B metrics as drawn, every budget figure well inside."""
    return {**values, "service_mem_peak_mb": 30.0, "stack_mem_peak_mb": 120.0, "oom_kills": 0.0,
            "restarts": 0.0, "metrics_failure_ratio": 0.0, "scrape_p95_ms": 20.0,
            "cpu_ms_per_scrape": 1.0, "mem_slope_kb_per_request": 0.5, "requests": 250.0}


def _one_gate(config: GateConfig, rng, change: dict, spread: dict, round_s: float, outliers: float):
    """One gate through the gate's own loop and verdict, on a clock that moves one round
    time per round."""
    now = [0.0]

    def measure(i: int) -> Round:
        now[0] += round_s
        a, b = {}, {}
        for m in config.ab_metrics:
            name = m.metric
            scale = 3.0 if outliers and rng.random() < outliers else 1.0
            noise = rng.normal(0.0, spread[name] * scale)
            drift = rng.normal(0.0, 0.2)
            if m.relative:
                a[name] = BASE[name] * math.exp(drift)
                b[name] = a[name] * math.exp(math.log1p(change.get(name, 0.0)) + noise)
            else:
                a[name] = BASE[name] + drift
                b[name] = a[name] + change.get(name, 0.0) + noise
        return Round(i, b=_figures(b), a=_figures(a), order=("A", "B") if i % 2 else ("B", "A"))

    return run_rounds(measure, lambda rs, final: evaluate(rs, config, final=final),
                      config.min_rounds, config.max_rounds, config.time_budget_s, clock=lambda: now[0])


def simulate(config: GateConfig, gates: int, change: dict | None = None, spread: dict | None = None,
             seed: int = 1, round_s: float = ROUND_S, outliers: float = 0.0) -> Tally:
    """``gates`` gates with a true ``change`` per metric (relative: 0.10 = +10%; memory: MB)
    and per-round noise ``spread`` (SD of log(B/A), or of B - A in MB). Each round also
    moves both sides alike (the machine's drift), which pairing must cancel. ``outliers``:
    the share of rounds whose noise is 3x the spread (a burst on the machine)."""
    change, spread = change or {}, spread or QUIET
    rng = np.random.default_rng(seed)
    tally = Tally()
    for _ in range(gates):
        out = _one_gate(config, rng, change, spread, round_s, outliers)
        tally.gates += 1
        tally.counts[out.result.verdict] += 1
        tally.rounds.append(len(out.rounds))
        tally.elapsed_s.append(out.elapsed_s)
        cpu = [c for c in out.result.checks if c.metric == "cpu_ms_per_request" and c.change is not None]
        tally.estimates.append(cpu[0].change if cpu else math.nan)
    return tally


CHANGES = (0.0, 0.03, 0.05, 0.07, 0.10, 0.20)


def _cell(t: Tally, verdict: str) -> str:
    lo, hi = t.interval(verdict)
    return f"{t.rate(verdict):.2%} [{lo:.2%}, {hi:.2%}]"


def oc_table(config: GateConfig, gates: int, seed: int = 1, round_s: float = ROUND_S) -> str:
    """The operating-characteristic table (markdown): per spread and true CPU change, the
    share of gates ending in regression and in pass, with 95% Clopper-Pearson intervals
    (the Monte-Carlo error), the mean rounds and the longest gate."""
    lines = ["| machine | true CPU change | regression | pass | other | mean rounds | longest gate |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, spread in (("quiet", QUIET), ("noisy", NOISY)):
        for change in CHANGES:
            t = simulate(config, gates, {"cpu_ms_per_request": change}, spread, seed=seed, round_s=round_s)
            other = t.gates - t.counts["regression"] - t.counts["pass"]
            lines.append(f"| {label} (SD {spread['cpu_ms_per_request']:.0%}) | {change:+.0%} | {_cell(t, 'regression')} | "
                         f"{_cell(t, 'pass')} | {other} | {np.mean(t.rounds):.2f} | {max(t.elapsed_s):.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":      # python -m tests.gate_simulate [GATES] [budgets.yml] [ROUND_S]
    import sys

    from reports.budgets import load_budgets
    print(oc_table(load_budgets(sys.argv[2] if len(sys.argv) > 2 else "budgets.yml"),
                   int(sys.argv[1]) if len(sys.argv) > 1 else 4000,
                   round_s=float(sys.argv[3]) if len(sys.argv) > 3 else ROUND_S))
