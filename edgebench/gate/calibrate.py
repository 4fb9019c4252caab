"""Calibration: how often the gate cries wolf on unchanged code, and how often it catches
a regression of a stated size, measured by running it N times per condition.

Both sides run the same commit (A from one checkout, B from another), so "unchanged" is
truly unchanged; the faults are the service's own knobs on the B side. A CPU regression
"+10%" is converted into a knob value from A's CPU per scrape measured in a first short
round, and the output states the conversion and shows the effect the gate measured next
to the intended size.
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebench.gate.faults import LEAK_KNOB, cpu_regression_knob
from edgebench.gate.figures import measure_figures
from edgebench.gate.params import GateParams
from edgebench.gate.plan import run_gate
from edgebench.gitref import resolve_ref, worktree
from edgebench.results import RunDir
from edgebench.rounds import Side, round_params, run_round
from edgebench.scenarios import ParameterError
from plumbing.files import write_atomic, write_json_atomic

DEFAULT_CONDITIONS = ("unchanged", "cpu+10%", "cpu+20%", "leak64k")
VERDICTS = ("regression", "inconclusive", "pass", "error")
CONVERSION_ROUND = (3.0, 8.0)   # warm-up, steady seconds of the first short round


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str          # unchanged | cpu | leak
    size: float = 0.0  # cpu: relative (0.10); leak: bytes per scrape


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
        else:
            raise ParameterError(f"--conditions: {item!r} is unknown: use unchanged, cpu+<N>%, "
                                 f"leak<N>k (e.g. unchanged,cpu+10%,cpu+20%,leak64k)")
    if not out:
        raise ParameterError("--conditions is empty: pass e.g. unchanged,cpu+10%,cpu+20%,leak64k")
    return tuple(out)


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

    def counts(self) -> dict:
        return {v: self.verdicts.count(v) for v in VERDICTS}


def _knob(cond: Condition, cpu_ms: float | None, source: Path) -> tuple[dict, str, str]:
    if cond.kind == "unchanged":
        return {}, "no change", "none"
    if cond.kind == "leak":
        return ({LEAK_KNOB: str(int(cond.size))}, f"leak {cond.size / 1024:g} KB per scrape",
                f"{LEAK_KNOB}={int(cond.size)}")
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


def markdown_table(results: list, header: str) -> str:
    lines = ["# edgebench gate calibration", "", header, "",
             "| condition | intended | knob | runs | regression | inconclusive | pass | error | "
             "measured CPU change | measured memory change | rounds | run time |",
             "|" + " --- |" * 12]
    for r in results:
        c = r.counts()
        lines.append(
            f"| {r.condition} | {r.intended} | {r.conversion} | {len(r.verdicts)} | {c['regression']} | "
            f"{c['inconclusive']} | {c['pass']} | {c['error']} | "
            f"{_spread(r.cpu_change, lambda x: f'{x:+.1%}')} | "
            f"{_spread(r.mem_change_mb, lambda x: f'{x:+.3g} MB')} | "
            f"{_spread(r.rounds, lambda x: f'{x:g}')} | {_spread(r.elapsed_s, lambda x: f'{x:.0f} s')} |")
    lines += ["", "Measured changes are the gate's own estimates (median, and range over the runs); "
              "run time is the whole gate, rounds and explanation."]
    return "\n".join(lines) + "\n"


def run_calibration(params: CalibrationParams, command: str) -> Path:
    commit, how = resolve_ref(params.against)
    run = RunDir.create(params.results_root, "calibrate", command,
                        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                         "commit": commit})
    print(f"edgebench gate-calibrate: {params.runs} gate(s) per condition "
          f"({', '.join(c.name for c in params.conditions)}) on {commit[:12]} ({how}); "
          f"results in {run.path}")
    t0 = time.monotonic()
    status = "failed"
    try:
        with worktree(commit) as source:
            rp = round_params(*CONVERSION_ROUND, params.engine, run.path)
            rr = run_round(run.path / "conversion", rp, 1, [Side("A", source)])
            cpu_ms = measure_figures(rr.dirs["A"]).get("cpu_ms_per_request")
            print(f"edgebench gate-calibrate: A's CPU per scrape in a first short round: "
                  f"{cpu_ms if cpu_ms is None else f'{cpu_ms:.3g} ms'}")
            results = []
            for cond in params.conditions:
                env, intended, line = _knob(cond, cpu_ms, source)
                results.append(ConditionResult(cond.name, intended, env, line))
            for i in range(1, params.runs + 1):      # conditions interleaved: drift hits all alike
                for cond, res in zip(params.conditions, results):
                    g = run_gate(GateParams(against=commit, engine=params.engine,
                                            results_root=run.path / _slug(cond.name),
                                            budgets_file=params.budgets_file, inject=res.knob,
                                            b_source=source), command, quiet=True)
                    by = {c.metric: c for c in g.result.checks if c.name.startswith("A/B")}
                    res.verdicts.append(g.result.verdict)
                    res.elapsed_s.append(g.elapsed_s)
                    res.rounds.append(g.result.rounds)
                    res.cpu_change.append(getattr(by.get("cpu_ms_per_request"), "change", None))
                    res.mem_change_mb.append(getattr(by.get("service_mem_steady_mb"), "change", None))
                    res.runs.append(g.path.name)
                    print(f"edgebench gate-calibrate: run {i}/{params.runs} {cond.name}: "
                          f"{g.result.verdict} after {g.result.rounds} rounds in {g.elapsed_s:.0f} s")
                    _write_tables(run.path, params, commit, cpu_ms, results, t0, command,
                                  done=f"{i - 1} of {params.runs} full passes and part of the next")
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if status != "complete":
            run.finish(status, update_latest=False)
    md = _write_tables(run.path, params, commit, cpu_ms, results, t0, command, done=None)
    print(md)
    run.finish("complete", update_latest=False)
    return run.path


def _write_tables(path: Path, params, commit: str, cpu_ms, results: list, t0: float, command: str,
                  done: str | None) -> str:
    """calibrate.md and calibrate.json, rewritten after every gate: a calibration cut short
    keeps every verdict it reached (``done`` says how far it got)."""
    header = (f"{params.runs} gate(s) per condition on commit `{commit[:12]}` (both sides the same "
              f"code), conditions interleaved; A's CPU per scrape in the first short round "
              f"{'not measured' if cpu_ms is None else f'{cpu_ms:.3g} ms'}. Total {time.monotonic() - t0:.0f} s. Command: `{command}`."
              + (f" Partial: {done}." if done else ""))
    md = markdown_table(results, header)
    write_atomic(path / "calibrate.md", md)
    write_json_atomic(path / "calibrate.json", {
        "commit": commit, "runs": params.runs, "cpu_ms_per_scrape_a": cpu_ms, "partial": done,
        "conditions": [{**asdict(r), "counts": r.counts()} for r in results]})
    return md


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("%", "pct")).strip("-")
