"""Fault injection on the B side: the service's knobs, given as KEY=VALUE, and the
conversion of a stated CPU regression (+10%) into a knob value."""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

from edgebench.scenarios import ParameterError

CPU_MS_KNOB = "SENSOR_EXTRA_CPU_MS"                  # ms of thread CPU per scrape
CPU_ITERATIONS_KNOB = "SENSOR_EXTRA_CPU_ITERATIONS"  # loop iterations per scrape (older services)
LEAK_KNOB = "SENSOR_LEAK_BYTES_PER_SCRAPE"


def parse_inject(items: list[str] | None) -> dict:
    """--inject KEY=VALUE, repeated: environment for the B side's service."""
    env = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--inject {item!r}: expected KEY=VALUE, "
                                 f"e.g. --inject {CPU_MS_KNOB}=0.5")
        env[key] = value
    return env


def service_supports(source: Path, knob: str) -> bool:
    """Whether the service in ``source`` reads this knob (older refs lack the newer ones)."""
    return any(knob in p.read_text(errors="replace") for p in (Path(source) / "service").glob("*.py"))


@lru_cache(maxsize=None)
def ns_per_iteration(source: Path, repeats: int = 5, iterations: int = 200_000) -> float:
    """The CPU cost of one iteration of the service's own injected loop, timed here on
    thread CPU time (what the cgroup charges), the fastest of a few repeats."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_edgebench_burden", Path(source) / "service" / "burden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        module.injected_cpu_work(iterations)
        best = min(best, time.thread_time() - t0)
    return best / iterations * 1e9


def cpu_regression_knob(size: float, cpu_ms_per_scrape: float, source: Path) -> tuple[dict, str]:
    """The knob that adds ``size`` (0.10 = +10%) to a scrape costing ``cpu_ms_per_scrape``,
    and one line stating the conversion."""
    extra_ms = size * cpu_ms_per_scrape
    if service_supports(source, CPU_MS_KNOB):
        return ({CPU_MS_KNOB: f"{extra_ms:.4f}"},
                f"+{size:.0%} of {cpu_ms_per_scrape:.3g} ms per scrape = {CPU_MS_KNOB}={extra_ms:.4f}")
    ns = ns_per_iteration(source)
    iterations = max(1, round(extra_ms * 1e6 / ns))
    return ({CPU_ITERATIONS_KNOB: str(iterations)},
            f"+{size:.0%} of {cpu_ms_per_scrape:.3g} ms per scrape = {extra_ms:.3g} ms "
            f"= {CPU_ITERATIONS_KNOB}={iterations} at {ns:.3g} ns per iteration "
            f"({CPU_MS_KNOB} not in this service)")
