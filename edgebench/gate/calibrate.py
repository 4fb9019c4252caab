"""Calibration: how often the gate cries wolf on unchanged code, and how often it catches
a regression of a stated size, measured by running it N times per condition.

Both sides run the same commit (A from one checkout, B from another), so "unchanged" is
truly unchanged; the knob faults are the service's own knobs on the B side. A CPU
regression "+10%" is converted into a knob value from A's CPU per scrape measured in a
first short round, and the output states the conversion and shows the effect the gate
measured next to the intended size. ``revert:<step>`` is a real regression: B runs the
commit before a kept optimisation step (docs/optimization-steps.yml), A the one after.

Every rate comes with its 95% Clopper-Pearson interval; each gate records the machine's
load average and CPU steal, and the unchanged gates give each metric's spread per round
(the floor budgets.yml's ``spread`` stands for).
"""
from __future__ import annotations

import math
import os
import re
import statistics
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scipy import stats as sps

from edgebench.gate.faults import LEAK_KNOB, cpu_regression_knob
from edgebench.gate.figures import measure_figures
from edgebench.gate.params import GateParams
from edgebench.gate.plan import run_gate
from edgebench.gitref import resolve_ref, worktree
from edgebench.results import Lifecycle, RunDir
from edgebench.rounds import Side, round_params, run_round
from edgebench.scenarios import ParameterError
from plumbing.files import write_atomic, write_json_atomic
from reports.budgets import load_budgets

DEFAULT_CONDITIONS = ("unchanged", "cpu+10%", "cpu+20%", "leak4k", "leak16k", "leak64k", "sensor1ms",
                      "revert:cached-exposition", "revert:lean-server")
SENSOR_KNOB = "SENSOR_EXTRA_SENSOR_CPU_MS"
VERDICTS = ("regression", "inconclusive", "pass", "error")
CONVERSION_ROUND = (3.0, 8.0)   # warm-up, steady seconds of the first short round


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str          # unchanged | cpu | leak | sensor | revert
    size: float = 0.0  # cpu: relative (0.10); leak: bytes per scrape; sensor: ms per /sensor request
    step: str = ""     # revert: the optimisation step undone on the B side


def parse_conditions(text: str) -> tuple[Condition, ...]:
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item == "unchanged":
            out.append(Condition(item, "unchanged"))
        elif m := re.fullmatch(r"cpu\+(\d+(?:\.\d+)?)%", item):
            out.append(Condition(item, "cpu", float(m.group(1)) / 100))
        elif m := re.fullmatch(r"leak(\d+)k", item):
            out.append(Condition(item, "leak", int(m.group(1)) * 1024))
        elif m := re.fullmatch(r"sensor(\d+(?:\.\d+)?)ms", item):
            out.append(Condition(item, "sensor", float(m.group(1))))
        elif m := re.fullmatch(r"revert:([\w-]+)", item):
            out.append(Condition(item, "revert", step=_step(m.group(1)).name))
        else:
            raise ParameterError(f"--conditions: {item!r} is unknown: use unchanged, cpu+<N>%, "
                                 f"leak<N>k, sensor<N>ms, revert:<step> (e.g. unchanged,cpu+10%,leak4k,"
                                 f"revert:lean-server)")
    if not out:
        raise ParameterError("--conditions is empty: pass e.g. unchanged,cpu+10%,cpu+20%,leak64k")
    return tuple(out)


def _step(name: str):
    """A kept optimisation step that can be reverted on the B side (its service tree only)."""
    from edgebench.steps import load_steps, resolve_commit
    steps = {s.name: s for s in load_steps()}
    if name not in steps:
        raise ParameterError(f"--conditions: revert:{name}: no such step; steps are {', '.join(steps)}")
    step = steps[name]
    if step.healthcheck == "commit":
        raise ParameterError(f"--conditions: revert:{name} changed the healthcheck, not service/: "
                             f"revert a step that changed the service")
    if not (resolve_commit(step.before) and resolve_commit(step.after)):
        raise ParameterError(f"--conditions: revert:{name}: {step.before} or {step.after} is not in "
                             f"this repository: fetch the full history (git fetch --unshallow)")
    return step


@dataclass(frozen=True)
class CalibrationParams:
    runs: int
    conditions: tuple
    engine: str = "auto"
    results_root: Path = Path("results")
    budgets_file: Path = Path("budgets.yml")
    against: str = "HEAD"


@dataclass
class ConditionResult:
    condition: str
    intended: str
    knob: dict
    conversion: str
    verdicts: list = field(default_factory=list)
    elapsed_s: list = field(default_factory=list)
    rounds: list = field(default_factory=list)
    cpu_change: list = field(default_factory=list)
    mem_change_mb: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    load: list = field(default_factory=list)          # per gate: 1-min load average at start, end; steal share
    round_d: list = field(default_factory=list)       # per gate, per metric: each round's log(B/A) or B - A
    against: str = ""                                 # A's commit (revert: the step's after)

    def counts(self) -> dict:
        return {v: self.verdicts.count(v) for v in VERDICTS}

    def interval(self, verdict: str) -> tuple[float, float]:
        """The 95% Clopper-Pearson interval of a verdict's rate over these gates."""
        n = len(self.verdicts)
        if n == 0:
            return math.nan, math.nan
        ci = sps.binomtest(self.verdicts.count(verdict), n).proportion_ci(0.95, method="exact")
        return ci.low, ci.high


def _cpu_times() -> tuple[float, float]:
    """(steal, total) jiffies from /proc/stat: the hypervisor's share taken from this VM."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return math.nan, math.nan
    return (fields[7] if len(fields) > 7 else 0.0), sum(fields[:8])


def round_differences(rounds: list, config) -> dict:
    """Per A/B metric, each round's paired figure (log(B/A), or B - A): the spread data."""
    from edgebench.gate.stats import paired_differences
    out = {}
    for m in config.ab_metrics:
        a = [math.nan if (r.a or {}).get(m.metric) is None else r.a[m.metric] for r in rounds]
        b = [math.nan if r.b.get(m.metric) is None else r.b[m.metric] for r in rounds]
        out[m.metric] = [float(x) for x in paired_differences(a, b, m.relative)]
    return out


def pooled_spread(per_gate: list, metric: str) -> tuple[float, int]:
    """(SD, degrees of freedom) of one round's figure pooled over gates: each gate's
    rounds about their own mean, so a gate's own offset is not counted as spread."""
    ss, df = 0.0, 0
    for g in per_gate:
        d = g.get(metric) or []
        if len(d) >= 2:
            mean = sum(d) / len(d)
            ss += sum((x - mean) ** 2 for x in d)
            df += len(d) - 1
    return (math.sqrt(ss / df) if df else math.nan), df


def _knob(cond: Condition, cpu_ms: float | None, source: Path) -> tuple[dict, str, str]:
    if cond.kind == "unchanged":
        return {}, "no change", "none"
    if cond.kind == "leak":
        return ({LEAK_KNOB: str(int(cond.size))}, f"leak {cond.size / 1024:g} KB per scrape",
                f"{LEAK_KNOB}={int(cond.size)}")
    if cond.kind == "sensor":
        return ({SENSOR_KNOB: f"{cond.size:g}"}, f"+{cond.size:g} ms CPU per /sensor request",
                f"{SENSOR_KNOB}={cond.size:g}")
    if cond.kind == "revert":
        step = _step(cond.step)
        return {}, f"step {step.name} undone", f"B = {step.before} (before), A = {step.after} (after)"
    if not cpu_ms:
        raise ParameterError("the first short round measured no CPU per scrape: check the "
                             "round's logs in the calibration directory")
    env, line = cpu_regression_knob(cond.size, cpu_ms, source)
    return env, f"CPU per scrape +{cond.size:.0%}", line


def _spread(values: list, fmt) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    return fmt(med) if len(vals) == 1 else f"{fmt(med)} ({fmt(min(vals))} to {fmt(max(vals))})"


def _rate(r: ConditionResult, verdict: str) -> str:
    n = len(r.verdicts)
    if not n:
        return "n/a"
    lo, hi = r.interval(verdict)
    return f"{r.verdicts.count(verdict)}/{n} [{lo:.0%}, {hi:.0%}]"


def markdown_table(results: list, header: str, spreads: dict | None = None) -> str:
    lines = ["# edgebench gate calibration", "", header, "",
             "| condition | intended | knob | runs | regression [95% CI] | pass [95% CI] | "
             "could not measure | measured CPU change | measured memory change | rounds | run time | "
             "load average (1 min) | CPU steal |",
             "|" + " --- |" * 13]
    for r in results:
        c = r.counts()
        loads = [x for g in r.load for x in g[:2] if x is not None and math.isfinite(x)]
        steal = [g[2] for g in r.load if g[2] is not None and math.isfinite(g[2])]
        lines.append(
            f"| {r.condition} | {r.intended} | {r.conversion} | {len(r.verdicts)} | {_rate(r, 'regression')} | "
            f"{_rate(r, 'pass')} | {c['inconclusive'] + c['error']} | "
            f"{_spread(r.cpu_change, lambda x: f'{x:+.1%}')} | "
            f"{_spread(r.mem_change_mb, lambda x: f'{x:+.3g} MB')} | "
            f"{_spread(r.rounds, lambda x: f'{x:g}')} | {_spread(r.elapsed_s, lambda x: f'{x:.0f} s')} | "
            f"{_spread(loads, lambda x: f'{x:.2f}')} | {_spread(steal, lambda x: f'{x:.1%}')} |")
    lines += ["", "Measured changes are the gate's own estimates at its stopping round (median, and "
              "range over the runs; an estimate at a data-dependent stop leans away from zero); run "
              "time is the whole gate, rounds and explanation. Rates: count/runs with the 95% "
              "Clopper-Pearson interval. Load: the 1-minute load average at each gate's start and end "
              "(median, range); CPU steal: the hypervisor's share of this VM's CPU time during the gate."]
    if spreads:
        lines += ["", "Spread of one round's figure in the unchanged gates (pooled SD about each gate's "
                  "own mean; budgets.yml's `spread` is the floor it stands for):", ""]
        lines += [f"- {m}: {sd:.3g} ({df} degrees of freedom)" for m, (sd, df) in spreads.items()]
    return "\n".join(lines) + "\n"


def run_calibration(params: CalibrationParams, command: str) -> Path:
    """Every condition's gates, interleaved, inside the run's lifecycle: Ctrl-C or SIGTERM
    stops the gate under way and the calibration, with the tables of the gates done."""
    commit, how = resolve_ref(params.against)
    config = load_budgets(params.budgets_file)
    run = RunDir.create(params.results_root, "calibrate", command,
                        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                         "commit": commit})
    print(f"edgebench gate-calibrate: {params.runs} gate(s) per condition "
          f"({', '.join(c.name for c in params.conditions)}) on {commit[:12]} ({how}); "
          f"results in {run.path}")
    t0 = time.monotonic()
    with Lifecycle(run, reraise=True):
        with ExitStack() as stack:           # the worktrees, removed however it ends
            source = stack.enter_context(worktree(commit))
            cpu_ms = _conversion_cpu_ms(run.path, params, config, source)
            results, sides = _conditions(params, commit, cpu_ms, source, stack)
            for i in range(1, params.runs + 1):      # conditions interleaved: drift hits all alike
                for cond, res, b_source in zip(params.conditions, results, sides):
                    g, load0 = _gate(run.path, params, cond, res, b_source, command, config)
                    print(f"edgebench gate-calibrate: run {i}/{params.runs} {cond.name}: "
                          f"{g.result.verdict} after {g.result.rounds} rounds in {g.elapsed_s:.0f} s "
                          f"(load {load0:.2f})")
                    _write_tables(run.path, params, commit, cpu_ms, results, t0, command, config,
                                  done=f"{i - 1} of {params.runs} full passes and part of the next")
        print(_write_tables(run.path, params, commit, cpu_ms, results, t0, command, config, done=None))
    return run.path


def _conversion_cpu_ms(run_path: Path, params: CalibrationParams, config, source: Path) -> float | None:
    """A's CPU per scrape in a first short round: what a CPU condition's knob is sized from."""
    rp = round_params(*CONVERSION_ROUND, params.engine, run_path, config.sensor_rate)
    rr = run_round(run_path / "conversion", rp, 1, [Side("A", source)])
    # all of the service's CPU per scrape served: a knob of size x that many ms per
    # scrape adds x to the whole CPU, /sensor requests in the rounds or not
    cpu_ms = measure_figures(rr.dirs["A"]).get("cpu_ms_per_scrape")
    print(f"edgebench gate-calibrate: A's CPU per scrape in a first short round: "
          f"{cpu_ms if cpu_ms is None else f'{cpu_ms:.3g} ms'}")
    return cpu_ms


def _conditions(params: CalibrationParams, commit: str, cpu_ms: float | None, source: Path,
                stack: ExitStack) -> tuple[list, list]:
    """Each condition's result record and its B side's source: the calibrated commit's
    checkout, or for revert:<step> a checkout of the step's before commit (A its after)."""
    results, sides = [], []
    for cond in params.conditions:
        env, intended, line = _knob(cond, cpu_ms, source)
        against, b_source = commit, source
        if cond.kind == "revert":
            from edgebench.steps import resolve_commit
            step = _step(cond.step)
            against = resolve_commit(step.after)
            b_source = stack.enter_context(worktree(resolve_commit(step.before)))
        results.append(ConditionResult(cond.name, intended, env, line, against=against))
        sides.append(b_source)
    return results, sides


def _gate(run_path: Path, params: CalibrationParams, cond: Condition, res: ConditionResult,
          b_source: Path, command: str, config):
    """One gate of a condition; its verdict, figures, run time, the machine's load average
    and CPU steal appended to ``res``. Returns the gate and the load average at its start."""
    steal0, total0 = _cpu_times()
    load0 = os.getloadavg()[0]
    g = run_gate(GateParams(against=res.against, engine=params.engine,
                            results_root=run_path / _slug(cond.name),
                            budgets_file=params.budgets_file, inject=res.knob,
                            b_source=b_source, explain=False), command, quiet=True)
    steal1, total1 = _cpu_times()
    res.load.append((load0, os.getloadavg()[0],
                     (steal1 - steal0) / (total1 - total0) if total1 > total0 else None))
    by = {c.metric: c for c in g.result.checks if c.name.startswith("A/B")}
    res.verdicts.append(g.result.verdict)
    res.elapsed_s.append(g.elapsed_s)
    res.rounds.append(g.result.rounds)
    res.cpu_change.append(getattr(by.get("cpu_ms_per_request"), "change", None))
    res.mem_change_mb.append(getattr(by.get("service_mem_steady_mb"), "change", None))
    res.round_d.append(round_differences(g.outcome.rounds, config) if g.outcome else {})
    res.runs.append(g.path.name)
    return g, load0


def _write_tables(path: Path, params, commit: str, cpu_ms, results: list, t0: float, command: str,
                  config, done: str | None) -> str:
    """calibrate.md and calibrate.json, rewritten after every gate: a calibration cut short
    keeps every verdict it reached (``done`` says how far it got)."""
    unchanged = [r for r in results if r.condition == "unchanged"]
    spreads = ({m.metric: pooled_spread(unchanged[0].round_d, m.metric) for m in config.ab_metrics}
               if unchanged else {})
    header = (f"{params.runs} gate(s) per condition on commit `{commit[:12]}` (both sides the same "
              f"code, except revert:<step>: A the step's after, B its before), conditions interleaved; "
              f"A's CPU per scrape (all service CPU / scrapes) in the first short round "
              f"{'not measured' if cpu_ms is None else f'{cpu_ms:.3g} ms'}. Total {time.monotonic() - t0:.0f} s. "
              f"Command: `{command}`." + (f" Partial: {done}." if done else ""))
    md = markdown_table(results, header, spreads)
    write_atomic(path / "calibrate.md", md)
    write_json_atomic(path / "calibrate.json", {
        "commit": commit, "runs": params.runs, "cpu_ms_per_scrape_a": cpu_ms, "partial": done,
        "spread": {m: {"sd": sd, "df": df} for m, (sd, df) in spreads.items()},
        "conditions": [{**asdict(r), "counts": r.counts(),
                        "intervals": {v: r.interval(v) for v in VERDICTS}} for r in results]})
    return md


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("%", "pct")).strip("-")
