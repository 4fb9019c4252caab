"""The figures of one measured load or series step, under the sweeps' names: the figure
catalogue's (reports/figures.py, through summarize_scenario), never a second definition."""
from __future__ import annotations

from pathlib import Path

SCRAPE_ENDPOINT = "/metrics"


def step_summary(step_dir: Path) -> dict:
    """The catalogue's figures of the step, or {} when it has nothing to read (a stack
    that never started)."""
    from reports.load import ReportError, load_scenario
    from reports.summary import summarize_scenario
    if not (Path(step_dir) / "scenario.json").exists():
        return {}
    try:
        return summarize_scenario(load_scenario(Path(step_dir)))
    except ReportError:
        return {}


def service_figures(s: dict) -> dict:
    """A step's scrape latency (from the intended start), scrape counts, CPU and memory."""
    counts = (s.get("request_counts_by_endpoint") or {}).get(SCRAPE_ENDPOINT) or {}
    sensor = (s.get("latency_ms_by_endpoint") or {}).get("/sensor") or {}
    latency = s.get("scrape_latency_from_intended_ms") or {}
    intended, ok = counts.get("intended"), counts.get("ok")
    return {
        "scrape_p50_ms": latency.get("p50"), "scrape_p99_ms": latency.get("p99"),
        "scrape_service_p99_ms": (s.get("scrape_latency_ms") or {}).get("p99"),
        "sensor_p99_ms": (sensor.get("from_intended") or {}).get("p99"),
        "scrapes_intended": intended, "scrapes_sent": counts.get("sent"), "scrapes_ok": ok,
        "failed_scrapes": (intended - ok) if intended is not None and ok is not None else None,
        "throughput_rps": s.get("throughput_rps"),
        "cpu_cores": s.get("service_cpu_cores"), "cpu_ms_per_scrape": s.get("cpu_ms_per_scrape"),
        "throttled_ratio": s.get("throttled_ratio"),
        "mem_rest_mb": s.get("service_mem_steady_mb"), "mem_peak_mb": s.get("service_mem_peak_kernel_mb"),
        "oom_kills": s.get("oom_kills_total"),
    }
