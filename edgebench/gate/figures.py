"""The one place the gate reads a round's figures, by name, from the report.

Every figure the gate judges is the report's own (reports.summary today; the figure
catalogue reports/figures.py once it lands): one definition for both. Switching the
source is a change to ``figures_from_summary`` alone.
"""
from __future__ import annotations

from pathlib import Path

from reports.stats import finite_or_none
from reports.view import SCRAPE_ENDPOINT


def _failure_ratio(summary: dict, endpoint: str) -> float | None:
    ep = (summary.get("latency_ms_by_endpoint") or {}).get(endpoint) or {}
    count = ep.get("count")
    return (ep.get("failures", 0) / count) if count else None


def figures_from_summary(summary: dict) -> dict[str, float | None]:
    """gate figure name -> value, from one scenario's summary (one round, one side)."""
    def get(key, sub=None):
        v = summary.get(key)
        return finite_or_none(v.get(sub) if isinstance(v, dict) else None) if sub else finite_or_none(v)

    return {
        # A/B metrics
        "cpu_ms_per_request": get("cpu_ms_per_request"),
        "scrape_latency_ms": get("scrape_latency_ms", "p50"),
        "service_mem_steady_mb": get("service_mem_steady_mb"),
        # budgets
        "service_mem_peak_mb": get("service_mem_peak_mb"),
        "service_mem_peak_kernel_mb": get("service_mem_peak_kernel_mb"),
        "stack_mem_peak_mb": get("stack_mem_peak_mb"),
        # the whole scenario, warm-up included: an OOM kill in the warm-up is one too
        "oom_kills": get("oom_kills_total"),
        "restarts": get("restarts_total"),
        "metrics_failure_ratio": finite_or_none(_failure_ratio(summary, SCRAPE_ENDPOINT)),
        "sensor_failure_ratio": get("sensor_failure_ratio"),
        "scrape_p95_ms": get("scrape_latency_ms", "p95"),
        "cpu_ms_per_scrape": get("cpu_ms_per_scrape"),
        "mem_slope_kb_per_request": get("mem_slope_kb_per_request"),
        "requests": get("requests"),
    }


FIGURES = tuple(figures_from_summary({}))


def measure_figures(scenario_dir: Path) -> dict[str, float | None]:
    """The figures of one measured scenario directory (one side of one round)."""
    from reports.load import load_scenario
    from reports.summary import summarize_scenario
    if not (Path(scenario_dir) / "scenario.json").exists():
        return dict.fromkeys(FIGURES)
    return figures_from_summary(summarize_scenario(load_scenario(Path(scenario_dir))))
