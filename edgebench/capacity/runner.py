"""`edgebench capacity`: the load and series sweeps one step after another, capacity.json rewritten
after every step (a run cut short keeps every step it measured), then the report."""
from __future__ import annotations

import sys
import time
from functools import partial

from edgebench.capacity.params import DEFAULT_SENSOR_RATE, SENSOR_AXIS_SCRAPE_RATE, CapacityParams
from edgebench.results import Lifecycle, RunDir
from plumbing.files import write_json_atomic
from reports import capacity_analysis as analysis
from reports.capacity_analysis import analyse

CAPACITY_VERSION = 1


def preflight(params: CapacityParams) -> dict:
    """What can be refused before anything starts: the compose file, the results folder.
    Returns each component's memory limit in MB, from the compose file."""
    from edgebench.bench import COMPOSE_FILE, check_results_root
    from stack.compose import load_compose
    compose = load_compose(COMPOSE_FILE, profiles=("prometheus",))
    check_results_root(params.results_root)
    return {n: (s.mem_limit / 2**20 if s.mem_limit else None) for n, s in compose.all_services.items()}


class _Plan:
    """The ladders in order; a ladder stops at its first step that fails."""

    def __init__(self, params: CapacityParams):
        self.params = params
        self.total = sum(params.planned_steps().values())
        self.done = 0
        self.started = time.monotonic()

    def left_s(self) -> float:
        elapsed = time.monotonic() - self.started
        if not self.done:
            return self.params.estimate_s()
        return max(0.0, elapsed / self.done * (self.total - self.done))

    def tell(self, text: str) -> None:
        print(f"[capacity {self.done}/{self.total}, at most ~{self.left_s() / 60:.1f} min left] {text}",
              file=sys.stderr, flush=True)


def _verdict(step: dict) -> str:
    if step.get("loadgen_bottleneck"):
        return "load generator was the bottleneck"
    return analysis.slo_problem(step) or analysis.saturation(step) or "meets the scrape SLO"


def _describe(step: dict) -> str:
    def f(key, unit):
        v = step.get(key)
        return f"{v:.3g} {unit}" if isinstance(v, (int, float)) else "—"
    if step["sweep"] == "load":
        head = (f"{step['variant']} {step['scrape_rate']:g} scrapes/s + {step['sensor_rate']:g} /sensor/s: "
                f"p99 {f('scrape_p99_ms', 'ms')}, {step.get('failed_scrapes')} failed, "
                f"CPU {f('cpu_cores', 'cores')}")
    else:
        head = (f"{step['series']:,} series: {f('cpu_ms_per_scrape', 'ms')}/scrape, "
                f"p99 {f('scrape_p99_ms', 'ms')}, peak {f('mem_peak_mb', 'MB')}")
    return f"{head} -> {_verdict(step)}"


def _ladders(params: CapacityParams):
    """(sweep, ladder name, [(step dir name, measure(step_dir) -> record)]) in run order."""
    from edgebench.capacity.load import measure_load_step
    p = params
    if "load" in p.sweeps:
        for v in p.variants:
            yield "load", f"{v} scrapes", [
                (f"{v}-s{r:g}", lambda d, v=v, r=r: measure_load_step(
                    d, v, r, DEFAULT_SENSOR_RATE, p.engine, p.duration_s, p.warmup_s, axis="scrape"))
                for r in p.scrape_steps[v]]
            yield "load", f"{v} /sensor", [
                (f"{v}-q{r:g}", lambda d, v=v, r=r: measure_load_step(
                    d, v, SENSOR_AXIS_SCRAPE_RATE, r, p.engine, p.duration_s, p.warmup_s, axis="sensor"))
                for r in p.sensor_steps[v]]
    if "series" in p.sweeps:
        from edgebench.capacity.series import measure_series_step
        yield "series", "optimized series", [
            (f"n{n}", lambda d, n=n: measure_series_step(d, n, "optimized", p.engine, p.duration_s,
                                                         p.warmup_s, p.series_scrape_rate))
            for n in p.series_steps]


def _failed(step: dict) -> bool:
    return bool(step.get("loadgen_bottleneck") or not analysis.meets_slo(step) or analysis.saturation(step))


def run_capacity(params: CapacityParams, command: str) -> tuple[RunDir, int]:
    """Every sweep; returns the run and an exit code (0 complete, 130 interrupted)."""
    limits = preflight(params)
    plan = _Plan(params)
    run = RunDir.create(params.results_root, "capacity", command, params.to_dict())
    print(f"edgebench capacity: {plan.total} steps at most (each ladder stops at its first failing step), "
          f"at most ~{params.estimate_s() / 60:.1f} min; results in {run.path}", file=sys.stderr, flush=True)
    doc = {"version": CAPACITY_VERSION, "run_id": run.path.name, "limits_mb": limits,
           "load": {"steps": []}, "series": {"steps": []}}
    path = run.path / "capacity.json"

    def save(status: str | None = None) -> None:
        if status:
            doc["status"] = status
        doc["analysis"] = analyse(doc, limits)
        write_json_atomic(path, doc)

    save()
    # latest=False: results/latest stays a bench run
    with Lifecycle(run, save=save, render=lambda: _render(run), say=partial(print, file=sys.stderr),
                   interrupted="edgebench capacity: interrupted; keeping every step measured") as life:
        for sweep, ladder, steps in _ladders(params):
            for i, (name, measure) in enumerate(steps):
                plan.tell(f"{sweep}: {ladder}: step {name}")
                t0 = time.monotonic()
                record = measure(run.path / sweep / name)
                record["step_s"] = round(time.monotonic() - t0, 1)
                record.setdefault("ladder", ladder)
                doc[sweep]["steps"].append(record)
                plan.done += 1
                save()
                plan.tell(_describe(record))
                if _failed(record):
                    plan.total -= len(steps) - i - 1   # the rest of this ladder is not run
                    break
    return run, life.exit_code


def _render(run: RunDir) -> None:
    from reports.capacity import render_capacity
    try:
        written = render_capacity(run.path)
        print(f"edgebench capacity: report in {written[0].parent}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the measurements stay; the report can be re-rendered
        print(f"edgebench capacity: report not rendered ({type(e).__name__}: {e}); "
              f"re-render with `bin/edgebench report --run {run.path}`", file=sys.stderr)
