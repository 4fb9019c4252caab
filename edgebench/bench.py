"""The run plan: for each scenario, bring the stack up under its limits, drive load,
sample resources, query the collector, tear down; then render the report."""
from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

from edgebench.params import RunParams
from edgebench.progress import Progress
from edgebench.results import ROOT, Lifecycle, RunDir
from edgebench.scenarios import Scenario
from reports.contract import write_scenario
from stack.state import StackState

# EDGEBENCH_COMPOSE_FILE: another compose file (the fault suite's broken collector)
COMPOSE_FILE = Path(os.environ.get("EDGEBENCH_COMPOSE_FILE") or ROOT / "docker-compose.yml")


def scenario_dir_name(scenario: Scenario, repeat: int) -> str:
    return scenario.name if repeat == 1 else f"{scenario.name}.r{repeat}"


def run_bench(params: RunParams, command: str) -> tuple[RunDir, int]:
    """Runs every scenario; returns the run and an exit code (0 ok, 130 interrupted)."""
    from edgebench.scenarios import interleave

    preflight(params)
    label = "profile" if params.profile else "bench"
    run = RunDir.create(params.results_root, label, command, params.to_dict())
    print(f"edgebench: results in {run.path}")
    with Lifecycle(run, render=lambda: _render(run), latest=True,
                   interrupted="edgebench: interrupted; keeping what was measured") as life:
        if params.target:
            _run_target(run, params)
        else:
            for scenario, repeat in interleave(params.scenarios, params.repeats):
                reason = scenario.unavailable_reason()
                if reason:
                    print(f"[{scenario.name}] skipped: {reason}")
                    run.record_scenario(scenario.name, {"status": "skipped", "reason": reason})
                    continue
                _run_scenario(run, params, scenario, repeat)
        if params.profile:
            from edgebench.profile_plan import compare_variants
            compare_variants(run.path)
    return run, life.exit_code


def preflight(params: RunParams) -> None:
    """Everything that can be checked before anything starts: the target answers, the
    compose file parses, the results folder is writable."""
    from stack.compose import load_compose
    if params.target:
        from loadtests.runner import check_target
        check_target(params.target)
    else:
        load_compose(COMPOSE_FILE, profiles=("prometheus",))
    check_results_root(params.results_root)


def check_results_root(root) -> None:
    """Refused before anything starts: a results folder that is a file."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        from edgebench.scenarios import ParameterError
        raise ParameterError(f"results folder {root} is a file: pass --results <folder> or move it")


def _render(run: RunDir) -> None:
    from reports.render import ReportError, render_run
    try:
        render_run(run.path)
        print(f"edgebench: report in {run.path / 'report'}")
    except ReportError as e:
        print(f"edgebench: report not rendered: {e}")


def _readers(state: StackState) -> list:
    """``docker stats`` for a Docker stack whose container cgroups are not readable here."""
    if state.counters_source == "docker stats":
        from stack.docker_engine import docker_stats_reader
        return [docker_stats_reader]
    return []


def _run_target(run: RunDir, params: RunParams) -> None:
    """An external service (a real robot): load and client-side figures only."""
    from loadtests.runner import run_load
    sdir = run.path / "target"
    progress = Progress("target")
    result = run_load(params.target, sdir, params.load(), on_progress=progress.load)
    info = {"name": "target", "scenario": "target", "repeat": 1, "variant": "external",
            "collector": None, "engine": "external", "limits_enforced": False,
            "target": params.target, **_load_summary(result, params), "status": "complete"}
    write_scenario(sdir, info)
    run.record_scenario("target", {"status": "complete"})


def _load_summary(result, params: RunParams) -> dict:
    return {"steady_start": result.steady_start, "steady_end": result.steady_end,
            "warmup_s": params.warmup_s, "duration_s": params.duration_s,
            "users": params.users, "scrapers": params.scrapers, "scrape_rate": params.scrape_rate,
            "sensor_rate": params.sensor_rate, "scrape_timeout_s": scrape_timeout_s(),
            "loadgen_cpu_seconds": result.loadgen_cpu_seconds,
            "loadgen_bottleneck": result.loadgen_bottleneck,
            "loadgen_cpu_s_per_request": result.loadgen_cpu_s_per_request,
            "samples": result.samples, "phase_seed": result.phase_seed}


def _run_scenario(run: RunDir, params: RunParams, scenario: Scenario, repeat: int) -> None:
    name = scenario_dir_name(scenario, repeat)
    run.record_scenario(name, {"status": "running"})
    info = {"status": "failed"}
    try:
        info = measure_scenario(run.path / name, params, scenario, repeat=repeat)
    finally:
        run.record_scenario(name, {"status": info.get("status", "interrupted")})


def measure_scenario(sdir: Path, params: RunParams, scenario: Scenario, repeat: int = 1,
                     service_context: Path | None = None, extra_env: dict | None = None,
                     query: bool = True, ports: dict | None = None,
                     compose_file: Path | None = None) -> dict:
    """One scenario end to end: stack up, sample, load, query the collector, tear down.

    Writes scenario.json whatever happens (complete, interrupted or failed) and
    returns its content; exceptions propagate after the teardown. ``compose_file``
    replaces the deployment file (a step measuring another commit's healthcheck)."""
    from profiling.sampler import ResourceSampler
    from stack.api import start_stack

    sdir.mkdir(parents=True, exist_ok=True)
    progress = Progress(sdir.name)
    info = _scenario_info(sdir, scenario, repeat, extra_env)
    state_dir = sdir / "stack"
    env = _service_env(params, scenario, extra_env)
    contexts = {"sensor-service": service_context} if service_context else None
    if ports is None:  # free ports: a bench never collides with `make up` or another run
        from plumbing.ports import free_port
        ports = {name: free_port() for name in scenario.services}
    try:
        with ExitStack() as stack:
            progress.phase(f"starting {', '.join(scenario.services)} ({scenario.variant} service)")
            handle = stack.enter_context(start_stack(
                compose_file or COMPOSE_FILE, state_dir, services=scenario.services,
                profiles=scenario.profiles, env=env, engine=params.engine, contexts=contexts,
                ports=ports))
            state = handle.state()
            info.update(_stack_facts(state))
            sampler = stack.enter_context(
                ResourceSampler(state_dir / "state.json", sdir / "resources.csv", readers=_readers(state)))
            profilers = _start_profilers(stack, params, state_dir, sdir) if params.profile else None
            result = _drive_load(state.services["sensor-service"].url, sdir, params, sampler,
                                 progress, info)
            if profilers:
                profilers.stop()
            if query:
                progress.phase("querying the collector")
                _query_run(state.services[scenario.collector].url, sdir, params, scenario, result)
        info["status"] = "complete"
    except KeyboardInterrupt:
        info["status"] = "interrupted"
        raise
    except Exception as e:
        info["status"] = "failed"
        info["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        tidy_scenario_dir(sdir, state_dir)
        write_scenario(sdir, info)
        progress.phase(info["status"])
    return info


def _scenario_info(sdir: Path, scenario: Scenario, repeat: int, extra_env: dict | None) -> dict:
    """scenario.json's content before the run: what is measured, status running."""
    info = {"name": sdir.name, "scenario": scenario.name, "repeat": repeat,
            "variant": scenario.variant, "collector": scenario.collector_kind,
            "components": {"sensor-service": "service", scenario.collector: "collector"},
            "status": "running"}
    if extra_env:
        info["service_env"] = dict(extra_env)
    return info


def _query_run(collector_url: str, sdir: Path, params: RunParams, scenario: Scenario, result) -> None:
    """Save the collector's series over the run, warm-up included, under collector/."""
    from profiling.collector_queries import query_collector

    query_collector(collector_url, sdir / "collector", start=result.steady_start - params.warmup_s,
                    end=result.steady_end, step=1, job="sensor", kind=scenario.collector_kind)


def _service_env(params: RunParams, scenario: Scenario, extra_env: dict | None) -> dict:
    """The service's environment: its variant, a fixed seed, profile mode, the caller's extras."""
    # SENSOR_SEED: every run draws the same simulated failures and 5 MB blob answers, so
    # two runs (and two variants) serve the same work; its randomness was +-17% of CPU.
    env = {"sensor-service": {"SENSOR_VARIANT": scenario.variant, "SENSOR_SEED": "1",
                              **(extra_env or {})}}
    if params.profile:
        env["sensor-service"]["SENSOR_TRACEMALLOC"] = "1"
    return env


def _stack_facts(state: StackState) -> dict:
    """What scenario.json records of the running stack: engine, limits, cgroup view."""
    facts = {}
    if state.counters_source:  # docker: "cgroup", or "docker stats" where none is readable
        facts["counters_source"] = state.counters_source
    facts.update(engine=state.engine, limits_enforced=state.limits_enforced,
                 cgroup_version=state.cgroup_version, cgroup_view=state.cgroup_view,
                 limits={n: {"mem_limit_bytes": s.mem_limit_bytes, "cpus": s.cpus}
                         for n, s in state.services.items()})
    return facts


def _drive_load(service_url: str, sdir: Path, params: RunParams, sampler, progress: Progress, info: dict):
    """The load against the running service, the sampler's peak reset at the steady start;
    records the window and the load's facts in ``info``. Returns the LoadResult."""
    from loadtests.runner import run_load
    from profiling.sampler import SteadyStart
    progress.phase(f"load: {params.warmup_s:g}s warm-up, {params.duration_s:g}s steady")
    steady = SteadyStart(sampler, params.warmup_s, progress.phase)

    def on_progress(p):
        steady.on_progress(p)
        progress.memory = _memory_now(sampler)
        progress.load(p)

    result = run_load(service_url, sdir, params.load(), on_progress=on_progress)
    info["peak_reset_at"] = steady.cancel()  # null: mem_peak_bytes covers the cgroup's life
    info["peak_scope"] = sampler.peak_scope  # ... and why, in words (docs/results.md)
    info.update(_load_summary(result, params))
    return result


def _memory_now(sampler) -> dict:
    """component -> (MB now, limit MB), from the sampler's newest rows."""
    return {name: ((row.get("mem_bytes") or 0) / 2**20, (row.get("mem_limit_bytes") or 0) / 2**20)
            for name, row in sampler.latest.items()}


def tidy_scenario_dir(sdir: Path, state_dir: Path) -> None:
    """Keep the logs where the results contract expects them; drop collector data volumes."""
    logs = state_dir / "logs"
    if logs.is_dir():
        (sdir / "logs").mkdir(exist_ok=True)
        for f in logs.iterdir():
            shutil.move(str(f), str(sdir / "logs" / f.name))
        logs.rmdir()
    shutil.rmtree(state_dir / "volumes", ignore_errors=True)


def _start_profilers(stack: ExitStack, params: RunParams, state_dir: Path, sdir: Path):
    from edgebench.profile_plan import start_profilers
    return start_profilers(stack, params, state_dir, sdir)


SCRAPE_CONFIG = ROOT / "stack" / "scrape.yml"


def scrape_timeout_s(path: Path = SCRAPE_CONFIG) -> float:
    """The collector's scrape timeout, read from the scrape config it runs with."""
    from stack.scrape_config import scrape_settings
    return scrape_settings(path).timeout_s
