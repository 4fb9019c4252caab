"""Pooled unchanged-code rounds: the wall-clock tier's spreads, measured, and the gate's
false-regression rate replayed from them.

``record_rounds`` runs N A/A rounds exactly as a gate does (``run_round``: A and B side
by side, fresh processes, the first-started slot alternating; figures by
``measure_figures``), both sides the same commit from two checkouts, and appends every
round's figures, load average and CPU steal to ``rounds.jsonl`` as soon as it is done,
so a recording cut short keeps every round it finished. ``report`` reads them back: each
A/B metric's pooled SD and its upper confidence bound (what budgets.yml's ``spread`` is
set to), its tails, the independence checks, and gates replayed through the gate's own
loop and verdict by resampling the rounds.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as sps

from edgebench.gate.figures import measure_figures
from edgebench.gate.loop import run_rounds
from edgebench.gate.stats import REGRESSION
from edgebench.gate.verdict import Round, evaluate
from edgebench.gitref import resolve_ref, worktree
from edgebench.results import Lifecycle, RunDir
from edgebench.rounds import Side, round_params, run_round
from edgebench.scenarios import ParameterError
from plumbing.files import write_atomic, write_json_atomic
from reports.budgets import load_budgets

ROUNDS_FILE = "rounds.jsonl"


@dataclass(frozen=True)
class PoolParams:
    rounds: int
    engine: str = "auto"
    results_root: Path = Path("results")
    budgets_file: Path = Path("budgets.yml")
    against: str = "HEAD"


def _cpu_times() -> tuple[float, float]:
    """(steal, total) jiffies from /proc/stat: the hypervisor's share taken from this VM."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0.0), sum(fields[:8])


def record_rounds(params: PoolParams, command: str) -> Path:
    """N unchanged-code rounds into results/<id>-rounds/rounds.jsonl, one line per round."""
    commit, how = resolve_ref(params.against)
    config = load_budgets(params.budgets_file)
    run = RunDir.create(params.results_root, "rounds", command,
                        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                         "commit": commit, "warmup_s": config.warmup_s, "duration_s": config.duration_s,
                         "sensor_rate": config.sensor_rate})
    rp = round_params(config.warmup_s, config.duration_s, params.engine, run.path, config.sensor_rate)
    print(f"edgebench gate-rounds: {params.rounds} A/A rounds of {config.warmup_s:g} + "
          f"{config.duration_s:g} s on {commit[:12]} ({how}); results in {run.path}")
    with Lifecycle(run, reraise=True), ExitStack() as stack:
        sides = [Side("A", stack.enter_context(worktree(commit))),
                 Side("B", stack.enter_context(worktree(commit)))]
        for i in range(1, params.rounds + 1):
            steal0, total0 = _cpu_times()
            load0, started = os.getloadavg(), time.time()
            rr = run_round(run.path, rp, i, sides)
            steal1, total1 = _cpu_times()
            line = {"index": i, "started": started, "elapsed_s": rr.elapsed_s, "order": list(rr.order),
                    "errors": rr.errors, "load_start": load0, "load_end": os.getloadavg(),
                    "steal": (steal1 - steal0) / (total1 - total0) if total1 > total0 else None,
                    "a": measure_figures(rr.dirs["A"]), "b": measure_figures(rr.dirs["B"])}
            with open(run.path / ROUNDS_FILE, "a") as f:
                f.write(json.dumps(line) + "\n")
            print(f"edgebench gate-rounds: round {i}/{params.rounds} in {rr.elapsed_s:.0f} s "
                  f"(started: {', '.join(rr.order)}; load {load0[0]:.2f})"
                  + (f"; errors: {rr.errors}" if rr.errors else ""), flush=True)
    return run.path


# ------------------------------------------------------------------ reading the rounds back

def load_rounds(path: Path) -> list[dict]:
    """The recorded rounds (a recording's directory, or its rounds.jsonl), in round order;
    rounds that failed on either side are left out (a gate would have stopped with an
    error there, which is not a false regression)."""
    path = Path(path)
    f = path / ROUNDS_FILE if path.is_dir() else path
    if not f.is_file():
        raise ParameterError(f"--replay {path}: no {ROUNDS_FILE} there: pass a directory "
                             f"written by `edgebench gate-rounds --rounds N`, or its {ROUNDS_FILE}")
    lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    return sorted((r for r in lines if not r["errors"]), key=lambda r: r["index"])


def as_round(line: dict, index: int | None = None) -> Round:
    """A recorded round as the verdict reads one (``index`` renumbers it for a replay)."""
    return Round(line["index"] if index is None else index, b=line["b"], a=line["a"],
                 elapsed_s=line["elapsed_s"], order=tuple(line["order"]))


def differences(rounds: list[dict], metric) -> np.ndarray:
    """Per round, the A/B metric's paired figure: log(B/A), or B - A (nan where a side
    was not measured), in round order."""
    out = []
    for r in rounds:
        a, b = r["a"].get(metric.metric), r["b"].get(metric.metric)
        ok = a is not None and b is not None and (not metric.relative or (a > 0 and b > 0))
        out.append((math.log(b / a) if metric.relative else b - a) if ok else math.nan)
    return np.asarray(out, float)


# ------------------------------------------------------------------ spreads and independence

@dataclass
class Spread:
    """One A/B metric over the pooled rounds: its spread, its tails and whether the
    rounds look independent (intervals are 95%)."""
    metric: str
    n: int
    mean: float
    mean_ci: tuple
    sd: float
    sd_upper: float          # one-sided 95% upper confidence bound (chi-square, n - 1 df)
    robust_sd: float         # 1.4826 x MAD: the spread without the outliers
    skew: float
    excess_kurtosis: float
    outliers_high: int       # rounds beyond 3 robust SDs above the median (B the worse side)
    outliers_low: int
    lag1: float
    lag1_ci: tuple
    slot_diff: float         # mean of rounds where A started first minus where B did
    slot_ci: tuple
    slot_p: float
    trend_per_100: float     # least-squares slope over the round index, per 100 rounds
    trend_ci: tuple
    trend_p: float


def sd_upper_bound(sd: float, df: int, level: float = 0.95) -> float:
    """The one-sided upper confidence bound of an SD from ``df`` degrees of freedom."""
    return sd * math.sqrt(df / sps.chi2.ppf(1 - level, df))


def spread_of(rounds: list[dict], metric) -> Spread:
    d_all = differences(rounds, metric)
    ok = np.isfinite(d_all)
    d, idx = d_all[ok], np.arange(len(d_all))[ok]
    a_first = np.asarray([r["order"][0] == "A" for r in rounds])[ok]
    n = int(d.size)
    sd = float(d.std(ddof=1))
    mean_ci = sps.t.interval(0.95, n - 1, loc=d.mean(), scale=sd / math.sqrt(n))
    med = float(np.median(d))
    rsd = float(sps.median_abs_deviation(d, scale="normal"))
    # lag-1: consecutive recorded rounds only (a failed round breaks the pair)
    pairs = [(d_all[i], d_all[i + 1]) for i in range(len(d_all) - 1)
             if ok[i] and ok[i + 1]]
    x, y = np.asarray(pairs).T
    r1 = float(np.corrcoef(x, y)[0, 1])
    z, se = math.atanh(r1), (1 / math.sqrt(len(pairs) - 3) if len(pairs) > 3 else math.inf)
    slot = sps.ttest_ind(d[a_first], d[~a_first], equal_var=False)
    slot_ci = slot.confidence_interval(0.95)
    lr = sps.linregress(idx, d)
    tq = sps.t.ppf(0.975, n - 2)
    return Spread(
        metric.metric, n, float(d.mean()), tuple(map(float, mean_ci)), sd, sd_upper_bound(sd, n - 1), rsd,
        float(sps.skew(d)), float(sps.kurtosis(d)),
        int(np.sum(d > med + 3 * rsd)), int(np.sum(d < med - 3 * rsd)),
        r1, (math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)),
        float(d[a_first].mean() - d[~a_first].mean()), (float(slot_ci.low), float(slot_ci.high)),
        float(slot.pvalue), float(100 * lr.slope),
        (float(100 * (lr.slope - tq * lr.stderr)), float(100 * (lr.slope + tq * lr.stderr))), float(lr.pvalue))


def failure_rounds(rounds: list[dict], metric: str = "metrics_failure_ratio") -> dict:
    """How often a side failed a scrape (the paired budget's events): rounds with A over
    0, B over 0, both, and exactly one."""
    a = [bool(r["a"].get(metric)) for r in rounds]
    b = [bool(r["b"].get(metric)) for r in rounds]
    return {"rounds": len(rounds), "a": sum(a), "b": sum(b), "both": sum(x and y for x, y in zip(a, b)),
            "one": sum(x != y for x, y in zip(a, b))}


# ------------------------------------------------------------------ replay through the gate

@dataclass
class Replay:
    """Gates replayed from recorded unchanged-code rounds: how many ended in a regression
    (a false one), which checks fired, with a Monte-Carlo interval over the gates and a
    bootstrap interval over the recorded rounds."""
    gates: int
    counts: dict
    fired: dict               # check name -> gates it called a regression
    mean_rounds: float
    resamples: int = 0
    boot_rates: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.counts.get(REGRESSION, 0) / self.gates

    def mc_interval(self) -> tuple[float, float]:
        ci = sps.binomtest(self.counts.get(REGRESSION, 0), self.gates).proportion_ci(0.95, method="exact")
        return ci.low, ci.high

    def boot_interval(self) -> tuple[float, float]:
        return tuple(float(x) for x in np.percentile(self.boot_rates, [2.5, 97.5]))


def _by_slot(rounds: list[dict]) -> tuple[list, list]:
    return [r for r in rounds if r["order"][0] == "A"], [r for r in rounds if r["order"][0] != "A"]


def _replayed_gate(a_first: list, b_first: list, config, rng):
    now = [0.0]

    def measure(i: int) -> Round:
        pool = a_first if i % 2 else b_first
        line = pool[int(rng.integers(len(pool)))]
        now[0] += line["elapsed_s"]
        return as_round(line, i)

    return run_rounds(measure, lambda rs, final: evaluate(rs, config, final=final),
                      config.min_rounds, config.max_rounds, config.time_budget_s, clock=lambda: now[0])


def replay_gates(rounds: list[dict], config, gates: int, rng) -> Replay:
    """``gates`` gates through the gate's own loop and verdict (``run_rounds``,
    ``evaluate``), each round drawn at random from the recorded rounds of its slot order
    (A first in odd rounds, B first in even ones, as a gate runs them), on a clock that
    moves by each drawn round's recorded wall time (so the time budget cuts the looks as
    it did on the recording machine)."""
    a_first, b_first = _by_slot(rounds)
    if not a_first or not b_first:
        raise ParameterError("the recorded rounds need both slot orders (A first and B first): "
                             "record at least 2 rounds")
    counts: Counter = Counter()
    fired: Counter = Counter()
    n_rounds = 0
    for _ in range(gates):
        out = _replayed_gate(a_first, b_first, config, rng)
        counts[out.result.verdict] += 1
        n_rounds += len(out.rounds)
        for c in out.result.checks:
            if c.verdict == REGRESSION:
                fired[c.name] += 1
    return Replay(gates, dict(counts), dict(fired), n_rounds / gates)


def replay(rounds: list[dict], config, gates: int = 20_000, resamples: int = 200,
           inner: int = 500, seed: int = 1) -> Replay:
    """The false-regression rate of the gate on these rounds: ``gates`` replayed gates on
    the recorded rounds, and its bootstrap interval: ``resamples`` times the recorded
    rounds resampled with replacement (within each slot order) and ``inner`` gates replayed
    on each; the percentile interval of those rates (it carries the inner gates'
    Monte-Carlo error too, so it is a little wider than the rounds alone make it)."""
    rng = np.random.default_rng(seed)
    out = replay_gates(rounds, config, gates, rng)
    a_first, b_first = _by_slot(rounds)
    for _ in range(resamples):
        sample = ([a_first[i] for i in rng.integers(len(a_first), size=len(a_first))]
                  + [b_first[i] for i in rng.integers(len(b_first), size=len(b_first))])
        out.boot_rates.append(replay_gates(sample, config, inner, rng).rate)
    out.resamples = resamples
    return out


# ------------------------------------------------------------------ the report

def _f(x: float) -> str:
    return f"{x:.3g}"



def _spread_table(spreads: list, config) -> list[str]:
    """Each metric's per-round spread, its upper bound and tails, beside budgets.yml's."""
    spread_in = {m.metric: m.spread for m in config.ab_metrics}
    lines = [
        "Per round: log(B/A) for relative metrics, B - A (MB) for memory. SD upper bound: one-sided 95% "
        "(chi-square, n - 1 df): budgets.yml's `spread` is set to it. Robust SD: 1.4826 x MAD. Outliers: "
        "rounds beyond 3 robust SDs of the median, above (B worse) / below. Intervals 95%.", "",
        "| metric | rounds | mean [95% CI] | SD | SD upper bound | robust SD | skew | excess kurtosis | "
        "outliers above / below | budgets.yml spread |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in spreads:
        lines.append(f"| {s.metric} | {s.n} | {_f(s.mean)} [{_f(s.mean_ci[0])}, {_f(s.mean_ci[1])}] | {_f(s.sd)} | "
                     f"{_f(s.sd_upper)} | {_f(s.robust_sd)} | {s.skew:.2f} | {s.excess_kurtosis:.2f} | "
                     f"{s.outliers_high} / {s.outliers_low} | {spread_in[s.metric]:g} |")
    return lines + [""]


def _independence_table(spreads: list) -> list[str]:
    """Lag-1 autocorrelation, the slot effect and a trend, per metric."""
    lines = ["Independence: lag-1 autocorrelation of consecutive rounds (Fisher-z interval); the "
             "slot effect (mean of rounds where A started first minus rounds where B did, Welch); "
             "a linear trend over the round index (per 100 rounds).", "",
             "| metric | lag-1 autocorrelation [95% CI] | slot: A-first minus B-first [95% CI], p | "
             "trend per 100 rounds [95% CI], p |", "| --- | --- | --- | --- |"]
    for s in spreads:
        lines.append(f"| {s.metric} | {s.lag1:+.3f} [{s.lag1_ci[0]:+.3f}, {s.lag1_ci[1]:+.3f}] | "
                     f"{_f(s.slot_diff)} [{_f(s.slot_ci[0])}, {_f(s.slot_ci[1])}], p = {s.slot_p:.2g} | "
                     f"{_f(s.trend_per_100)} [{_f(s.trend_ci[0])}, {_f(s.trend_ci[1])}], p = {s.trend_p:.2g} |")
    return lines + [""]

def report(path: Path, config, gates: int, resamples: int, inner: int, seed: int, command: str) -> str:
    """The markdown report of a recording: rounds, load, spreads with their upper bounds,
    independence checks, the paired budget's events and the replayed false-regression
    rate; written beside the rounds as pool.md and pool.json."""
    rounds = load_rounds(path)
    if len(rounds) < 4:
        raise ParameterError(f"--replay {path}: {len(rounds)} complete round(s); the checks need at "
                             f"least 4: record more (edgebench gate-rounds --rounds 100)")
    loads = [x for r in rounds for x in (r["load_start"][0], r["load_end"][0])]
    steal = [r["steal"] for r in rounds if r.get("steal") is not None]
    elapsed = [r["elapsed_s"] for r in rounds]
    spreads = [spread_of(rounds, m) for m in config.ab_metrics]
    fails = failure_rounds(rounds)
    rp = replay(rounds, config, gates, resamples, inner, seed)
    lo, hi = rp.mc_interval()
    blo, bhi = rp.boot_interval()
    t0, t1 = rounds[0]["started"], rounds[-1]["started"] + rounds[-1]["elapsed_s"]
    lines = [
        "# edgebench gate-rounds: the wall-clock tier's spreads", "",
        f"{len(rounds)} complete unchanged-code rounds (A and B the same commit, side by side, fresh "
        f"processes, the first-started slot alternating) from `{path}`, "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(t0))} to {time.strftime('%H:%M', time.gmtime(t1))} UTC; "
        f"round wall time median {_f(float(np.median(elapsed)))} s ({_f(min(elapsed))} to {_f(max(elapsed))}); "
        f"1-minute load average median {np.median(loads):.2f} ({min(loads):.2f} to {max(loads):.2f}); CPU steal "
        f"median {np.median(steal):.1%}. Command: `{command}`.", "",
        *_spread_table(spreads, config), *_independence_table(spreads)]
    lines += [f"Failed scrapes (the paired budget's events): A in {fails['a']} of {fails['rounds']} rounds, "
              f"B in {fails['b']}, both in {fails['both']}, exactly one side in {fails['one']}.", "",
              f"Replayed gates (budgets.yml as it is now, through `loop.run_rounds` and `verdict.evaluate`, "
              f"each round drawn from the recorded rounds of its slot order, the clock moved by the drawn "
              f"round's wall time): {rp.gates} gates, mean {rp.mean_rounds:.2f} rounds, false regression "
              f"**{rp.rate:.2%}** (Monte-Carlo 95% CI [{lo:.2%}, {hi:.2%}]; bootstrap 95% CI over the "
              f"recorded rounds [{blo:.2%}, {bhi:.2%}], {rp.resamples} resamples x {inner} gates, seed {seed}).",
              "Verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(rp.counts.items())) + "; regressions by check: "
              + (", ".join(f"{k} {v}" for k, v in sorted(rp.fired.items())) or "none") + ".", "",
              "The estimate assumes the rounds are exchangeable within a slot order (independent and "
              "identically distributed: the checks above), that the recording's machine and load stand for "
              "the gate's, and it is in-sample when budgets.yml's spreads were set from these same rounds."]
    md = "\n".join(lines) + "\n"
    out = Path(path) if Path(path).is_dir() else Path(path).parent
    write_atomic(out / "pool.md", md)
    write_json_atomic(out / "pool.json", {
        "rounds": len(rounds), "command": command, "spreads": [asdict(s) for s in spreads],
        "failures": fails, "replay": {**asdict(rp), "rate": rp.rate, "mc_interval": [lo, hi],
                                      "boot_interval": [blo, bhi], "inner": inner, "seed": seed}})
    return md

