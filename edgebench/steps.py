"""The optimisation steps, re-measured: each kept step of docs/optimization-steps.yml as
side-by-side rounds of its "before" commit (A) and its "after" commit (B).

A step's effect is read the gate's way (docs/gate.md): one paired figure per round
(log of B/A, or B - A for memory), a Student t interval over the rounds. The load is
the default bench load, not the gate's scrape-only one: the /sensor blob answers are
where the first step shows. steps.json is rewritten after every step, so a run cut
short keeps what it measured.
"""
from __future__ import annotations

import math
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, StringConstraints

from edgebench.gitref import worktree
from edgebench.params import RunParams
from edgebench.results import ROOT, Lifecycle, RunDir
from edgebench.rounds import ROUND_SCENARIO, Side, run_round
from edgebench.scenarios import ParameterError
from plumbing.files import write_atomic, write_json_atomic
from plumbing.schema import Model, load_model
from reports.contract import read_document
from stack.compose import load_compose
from stack.state import read_state

STEPS_FILE = ROOT / "docs" / "optimization-steps.yml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICE = "sensor-service"
STEPS_JSON = "steps.json"
STEPS_VERSION = 1
INTERVAL_LEVEL = 0.95
DEFAULT_DURATION_S = 20.0
DEFAULT_WARMUP_S = 3.0
# Start-up, teardown and the report's reading of a round, on top of its load (measured
# here: a 2 s + 8 s round of two sides takes about 12 s).
ROUND_OVERHEAD_S = 4.0

OK, NOT_MEASURED, INTERRUPTED = "ok", "not measured", "interrupted"


@dataclass(frozen=True)
class StepFigure:
    """One figure a step is judged on: its catalogue path in a scenario's summary, how
    documents name it, its unit, and whether its change is a ratio (else a difference)."""
    key: str
    label: str
    unit: str
    relative: bool


FIGURES = (
    StepFigure("cpu_ms_per_request", "Service CPU per request", "ms", True),
    StepFigure("scrape_latency_from_intended_ms.p99", "/metrics p99 from the intended start", "ms", True),
    StepFigure("latency_ms_by_endpoint./sensor.from_intended.p99", "/sensor p99 from the intended start",
               "ms", True),
    StepFigure("service_mem_steady_mb", "Service memory at rest (steady median)", "MB", False),
    StepFigure("service_mem_peak_kernel_mb", "Service memory peak (kernel high-water mark)", "MB", False),
)


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Step(Model):
    """One step as the steps file writes it; any other key is refused."""
    name: Text
    change: Text
    before: Text
    after: Text
    healthcheck: Literal["commit"] | None = None     # "commit": each side under its own commit's healthcheck
    note: str | None = None


class StepsFile(Model):
    steps: Annotated[list[Step], Field(min_length=1)]


class StepsFileError(ParameterError):
    """docs/optimization-steps.yml is malformed."""


def load_steps(path: Path = STEPS_FILE) -> list[Step]:
    """The steps in order; one line naming the key and the fix on bad input."""
    steps = load_model(path, StepsFile, lambda r: StepsFileError(r.line(path)), needs="steps",
                       shape_fix="write steps as a list of {name, change, before, after}",
                       missing_fix="fix the path or pass --steps-file FILE").steps
    seen = set()
    for step in steps:
        if step.name in seen:
            raise StepsFileError(f"{path}: step name {step.name!r} appears twice: names must be unique")
        seen.add(step.name)
    return steps


def select_steps(steps: list[Step], only: list[str] | None) -> list[Step]:
    if not only:
        return steps
    names = [s.name for s in steps]
    unknown = [o for o in only if o not in names]
    if unknown:
        raise ParameterError(f"--only {', '.join(unknown)}: no such step; steps are {', '.join(names)}")
    return [s for s in steps if s.name in only]


def resolve_commit(ref: str, repo: Path = ROOT) -> str | None:
    """The full commit id of ref, or None when it is not a commit here."""
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def steps_params(rounds_root: Path, engine: str, duration_s: float = DEFAULT_DURATION_S,
                 warmup_s: float = DEFAULT_WARMUP_S) -> RunParams:
    """The default bench load (sensor clients and scrapers at RunParams' defaults), shorter."""
    return RunParams(duration_s=duration_s, warmup_s=warmup_s, engine=engine,
                     scenarios=[ROUND_SCENARIO], results_root=rounds_root)


def load_description(p: RunParams) -> str:
    return (f"default bench load: {p.users} sensor clients x {p.sensor_rate:g} req/s and {p.scrapers} "
            f"scrapers x {p.scrape_rate:g} scrapes/s (open loop) plus the collector's scrapes, "
            f"{p.warmup_s:g} s warm-up + {p.duration_s:g} s steady, {ROUND_SCENARIO.name} "
            f"under the compose limits")


# --------------------------------------------------------------------------- figures

def side_figures(scenario_dir: Path) -> dict:
    """The step figures of one side of one round, from the report's own summary."""
    from reports.load import load_scenario
    from reports.stats import finite_or_none
    from reports.summary import get_path, summarize_scenario
    if not (Path(scenario_dir) / "scenario.json").exists():
        return {f.key: None for f in FIGURES}
    summary = summarize_scenario(load_scenario(Path(scenario_dir)))
    return {f.key: finite_or_none(get_path(summary, f.key)) for f in FIGURES}


def figure_effect(fig: StepFigure, a: list, b: list) -> dict:
    """Per-side medians over the rounds and the paired effect with its 95 % interval:
    a ratio B/A for a relative figure, a difference B - A (MB) for an absolute one."""
    from edgebench.gate.stats import paired_effect
    alpha = (1 - INTERVAL_LEVEL) / 2       # the gate's interval is the (1 - 2 alpha) one

    def median(xs):
        xs = [x for x in xs if x is not None and math.isfinite(x)]
        return statistics.median(xs) if xs else None

    out = {"label": fig.label, "unit": fig.unit, "relative": fig.relative, "a": a, "b": b,
           "before": median(a), "after": median(b), "rounds": 0, "estimate": None, "low": None,
           "high": None, "error": None}
    try:
        e = paired_effect(fig.key, [math.nan if x is None else x for x in a],
                          [math.nan if x is None else x for x in b], 0.0, fig.relative, alpha)
    except ValueError as err:
        out["error"] = str(err)
        return out
    if fig.relative:       # shown as a ratio B/A
        out.update(estimate=math.exp(e.estimate), low=math.exp(e.low), high=math.exp(e.high))
    else:
        out.update(estimate=e.estimate, low=e.low, high=e.high)
    out["rounds"] = e.rounds
    return out


# --------------------------------------------------------------------------- compose

def compose_with_healthcheck_of(commit: str, out_path: Path, repo: Path = ROOT) -> Path:
    """Today's compose file with the sensor service's healthcheck taken from `commit`'s
    own compose file; relative paths made absolute so the copy works from out_path."""
    shown = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:docker-compose.yml"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        raise ParameterError(f"{commit[:12]} has no docker-compose.yml to take the healthcheck from")
    theirs_path = out_path.with_name(f"docker-compose-{commit[:12]}.yml")
    write_atomic(theirs_path, shown.stdout)
    theirs = load_compose(theirs_path).document()
    hc = (theirs["services"].get(SERVICE) or {}).get("healthcheck")
    if not hc:
        raise ParameterError(f"{commit[:12]}: docker-compose.yml has no {SERVICE} healthcheck")
    ours = load_compose(COMPOSE_FILE).document()
    base = COMPOSE_FILE.parent
    for svc in ours["services"].values():
        if isinstance(svc.get("build"), dict):
            svc["build"]["context"] = str((base / svc["build"].get("context", ".")).resolve())
        if svc.get("volumes"):
            svc["volumes"] = [f"{base}/{v[2:]}" if isinstance(v, str) and v.startswith("./") else v
                              for v in svc["volumes"]]
    ours["services"][SERVICE]["healthcheck"] = hc
    write_atomic(out_path, yaml.safe_dump(ours, sort_keys=False))
    return out_path


def side_facts(scenario_dir: Path) -> dict:
    """What a side really ran: the service's own start line (variant, server) and the
    healthcheck command the harness ran in its cgroup, with its mean CPU per check."""
    facts = {"start_line": None, "healthcheck": None, "healthcheck_cpu_ms": None}
    try:
        for line in (Path(scenario_dir) / "logs" / f"{SERVICE}.log").read_text(errors="replace").splitlines():
            if "sensor-service starting:" in line:
                facts["start_line"] = line[line.index("sensor-service starting:"):].strip()
                break
    except OSError:
        pass
    state = read_state(Path(scenario_dir) / "stack")
    svc = state.services.get(SERVICE) if state else None
    hc = svc.healthcheck if svc else None
    if hc is not None and hc.argv:
        facts["healthcheck"] = " ".join([Path(hc.argv[0]).name, *hc.argv[1:]])
        facts["healthcheck_cpu_ms"] = hc.cpu_ms_mean
    return facts


# --------------------------------------------------------------------------- the run

def _new_record(step: Step) -> dict:
    return {"name": step.name, "change": step.change, "before": step.before, "after": step.after,
            "before_commit": resolve_commit(step.before), "after_commit": resolve_commit(step.after),
            "healthcheck": step.healthcheck, "note": step.note, "status": "running", "reason": None,
            "rounds": 0, "errors": [], "sides": {}, "figures": {}, "elapsed_s": None}


def _summarise(record: dict, rounds: list[dict]) -> None:
    """Fill the record's figures from the rounds where both sides were measured."""
    record["rounds"] = len(rounds)
    record["figures"] = {f.key: figure_effect(f, [r["A"][f.key] for r in rounds],
                                              [r["B"][f.key] for r in rounds]) for f in FIGURES}


def measure_step(step: Step, step_dir: Path, params: RunParams, rounds: int, record: dict,
                 on_round=lambda step, i, elapsed: None) -> dict:
    """Rounds of one step into step_dir; the record is updated in place (and so survives an
    interruption with what it measured). A step whose first round fails is not measured."""
    t0 = time.monotonic()
    for side, ref in (("before", step.before), ("after", step.after)):
        if record[f"{side}_commit"] is None:
            record.update(status=NOT_MEASURED, reason=f"{side} commit {ref} is not in this repository")
            return record
    measured: list[dict] = []
    try:
        with worktree(record["before_commit"]) as a_tree, worktree(record["after_commit"]) as b_tree:
            composes = {"A": None, "B": None}
            if step.healthcheck == "commit":
                composes = {label: compose_with_healthcheck_of(record[f"{side}_commit"],
                                                               step_dir / f"compose.{label}.yml")
                            for label, side in (("A", "before"), ("B", "after"))}
            sides = [Side("A", a_tree, compose_file=composes["A"]), Side("B", b_tree, compose_file=composes["B"])]
            for i in range(1, rounds + 1):
                rr = run_round(step_dir, params, i, sides)
                if rr.errors:
                    record["errors"] += rr.errors
                    if not measured:
                        record.update(status=NOT_MEASURED,
                                      reason=f"round 1 failed, the step is skipped: {rr.errors[0]}")
                        return record
                else:
                    try:
                        figs = {label: side_figures(d) for label, d in rr.dirs.items()}
                    except Exception as e:  # noqa: BLE001 - an unreadable round is left out, with why
                        record["errors"].append(f"round {i}: figures not read: {type(e).__name__}: {e}")
                        on_round(step, i, rr.elapsed_s)
                        continue
                    measured.append(figs)
                    for label, d in rr.dirs.items():
                        record["sides"].setdefault(label, side_facts(d))
                _summarise(record, measured)
                on_round(step, i, rr.elapsed_s)
    except ParameterError as e:
        record.update(status=NOT_MEASURED, reason=str(e))
        return record
    except KeyboardInterrupt:
        record.update(status=INTERRUPTED, reason=f"interrupted after {len(measured)} round(s)")
        raise
    finally:
        record["elapsed_s"] = round(time.monotonic() - t0, 1)
    if len(measured) < 2:
        record.update(status=NOT_MEASURED, reason=f"{len(measured)} round(s) with both sides measured; "
                                                  f"the interval needs 2: {'; '.join(record['errors'])}")
    else:
        record["status"] = OK
    return record


def estimate_s(n_steps: int, rounds: int, params: RunParams) -> float:
    return n_steps * rounds * (params.warmup_s + params.duration_s + ROUND_OVERHEAD_S)


def write_steps(run: RunDir, doc: dict) -> None:
    write_json_atomic(run.path / STEPS_JSON, doc)


def read_steps(run_dir: Path) -> dict:
    return read_document(Path(run_dir) / STEPS_JSON)


def run_steps(steps: list[Step], rounds: int, engine: str, results_root: Path, command: str,
              duration_s: float = DEFAULT_DURATION_S, warmup_s: float = DEFAULT_WARMUP_S,
              say=print) -> tuple[RunDir, int]:
    """Every step in order into results/<id>-steps/; returns the run and an exit code
    (0 complete, 130 interrupted)."""
    from edgebench.fingerprint import comparable_key, machine_fingerprint
    if rounds < 2:
        raise ParameterError(f"--rounds={rounds}: the interval needs at least 2 rounds")
    params = steps_params(Path(results_root), engine, duration_s, warmup_s)
    run = RunDir.create(Path(results_root), "steps", command,
                        {"rounds": rounds, "engine": engine, "steps": [s.name for s in steps],
                         "load": params.to_dict()})
    doc = {"version": STEPS_VERSION, "run_id": run.path.name, "status": "running",
           "load": load_description(params), "params": params.to_dict(), "rounds_planned": rounds,
           "interval_level": INTERVAL_LEVEL, "machine": comparable_key(machine_fingerprint()),
           "figures": [{"key": f.key, "label": f.label, "unit": f.unit, "relative": f.relative} for f in FIGURES],
           "steps": []}
    write_steps(run, doc)
    total = estimate_s(len(steps), rounds, params)
    say(f"edgebench steps: {len(steps)} step(s) x {rounds} rounds, {load_description(params)}; "
        f"about {total / 60:.0f} min; results in {run.path}")
    planned = len(steps) * rounds
    spent = {"rounds": 0, "s": 0.0, "accounted": 0}   # rounds run, their time, planned rounds done

    def on_round(step: Step, i: int, elapsed: float) -> None:
        spent["rounds"] += 1
        spent["s"] += elapsed
        spent["accounted"] += 1
        left = (planned - spent["accounted"]) * spent["s"] / spent["rounds"]
        say(f"edgebench steps: {step.name}: round {i}/{rounds} done in {elapsed:.0f} s; "
            f"about {left / 60:.1f} min left")
        write_steps(run, doc)

    def save(status: str) -> None:
        doc["status"] = status
        write_steps(run, doc)

    with Lifecycle(run, save=save, render=lambda: _write_markdown(run, doc, say), say=say,
                   interrupted="edgebench steps: interrupted; steps.json keeps what was measured") as life:
        for n, step in enumerate(steps, 1):    # Ctrl-C: stacks torn down, worktrees removed
            say(f"edgebench steps: step {n}/{len(steps)} {step.name}: {step.before} -> {step.after}")
            record = _new_record(step)
            doc["steps"].append(record)
            accounted = spent["accounted"]
            measure_step(step, run.path / step.name, params, rounds, record, on_round)
            spent["accounted"] = accounted + rounds      # a skipped step's rounds are not to come
            if record["status"] != OK:
                say(f"edgebench steps: {step.name}: {record['status']}: {record['reason']}")
            write_steps(run, doc)
    return run, life.exit_code


def _write_markdown(run: RunDir, doc: dict, say) -> None:
    """steps.md, and the table on the terminal, for a complete run only."""
    if doc["status"] != "complete":
        return
    from reports.steps_section import steps_markdown
    write_atomic(run.path / "steps.md", steps_markdown(doc))
    say(steps_markdown(doc))
    say(f"edgebench steps: steps.json and steps.md in {run.path}")
