"""One step of the series sweep: a fresh stack whose service exposes N extra labelled
series (SENSOR_EXTRA_SERIES), scraped by one open-loop scraper and its collector, and
the record of what that cost: exposition size, CPU per scrape, scrape latency, memory,
OOM kills.

Every figure comes from the catalogue (reports/figures.py) through
reports.summary.summarize_scenario, except the exposition size, which is the median
`bytes` of the window's successful /metrics answers (loadtests.samples). A service
OOM-killed while it builds its series, before it is ever healthy, stops the stack at
once (the supervisor fails a start-up whose service exits) and comes back as status
"oom" with the supervisor's count of OOM kills, not as an exception."""
from __future__ import annotations

from pathlib import Path

from edgebench.bench import measure_scenario
from edgebench.capacity.step_figures import SCRAPE_ENDPOINT, service_figures, step_summary
from edgebench.params import RunParams
from edgebench.scenarios import SCENARIOS, ParameterError
from stack.state import read_state

SCENARIO_OF_VARIANT = {"optimized": "optimized-vm", "baseline": "baseline-vm"}


def measure_series_step(step_dir: Path, n_series: int, variant: str = "optimized",
                        engine: str = "auto", duration_s: float = 10, warmup_s: float = 3,
                        scrape_rate: float = 1.0) -> dict:
    """Measure one series count into ``step_dir``; return the step's flat record.

    Status: "ok", "oom" (an OOM kill in the service or collector, at start-up or during
    the step: what was measured is kept) or "failed" (any other error, in "error").
    KeyboardInterrupt propagates once measure_scenario has torn the stack down."""
    if variant not in SCENARIO_OF_VARIANT:
        raise ParameterError(f"variant {variant!r} is unknown: use one of {', '.join(SCENARIO_OF_VARIANT)}")
    if isinstance(n_series, bool) or not isinstance(n_series, int) or n_series < 0:
        raise ParameterError(f"series count {n_series!r} is not a whole number >= 0: pass e.g. 1000")
    step_dir = Path(step_dir)
    scenario = SCENARIOS[SCENARIO_OF_VARIANT[variant]]
    params = RunParams(duration_s=duration_s, warmup_s=warmup_s, users=0, scrapers=1,
                       scrape_rate=scrape_rate, engine=engine, scenarios=[scenario],
                       results_root=step_dir.parent)
    error = None
    try:
        measure_scenario(step_dir, params, scenario, extra_env={"SENSOR_EXTRA_SERIES": str(n_series)},
                         query=True)
    except Exception as exc:   # KeyboardInterrupt is not an Exception: it propagates
        error = f"{type(exc).__name__}: {exc}"
    return series_record(step_dir, n_series, variant, error)


SERIES_FIGURES = ("cpu_ms_per_scrape", "scrape_p50_ms", "scrape_p99_ms", "mem_rest_mb", "mem_peak_mb",
                  "scrapes_intended", "scrapes_ok", "failed_scrapes", "throttled_ratio")


def series_record(step_dir: Path, n_series: int, variant: str, error: str | None = None) -> dict:
    """The record of a measured step directory (also after a failed or OOM-killed start)."""
    summary = step_summary(step_dir)
    figures = service_figures(summary)
    oom = _max_known(figures["oom_kills"], supervisor_oom_kills(step_dir))
    if oom:
        status = "oom"
    elif error is not None:
        status = "failed"
    else:
        status = "ok"
    return {"sweep": "series", "variant": variant, "series": n_series, "status": status, "error": error,
            "exposition_bytes": exposition_bytes(step_dir, summary.get("window") or {}),
            **{k: figures[k] for k in SERIES_FIGURES}, "oom_kills": oom, "dir": step_dir.name}


def supervisor_oom_kills(step_dir: Path) -> int | None:
    """OOM kills the stack's supervisor counted (state.json, every service): the one count
    left when the service died before any resource sample was taken."""
    state = read_state(step_dir / "stack")
    if state is None:
        return None
    kills = [s.oom_kills for s in state.services.values() if s.oom_kills is not None]
    return sum(kills) if kills else None


def exposition_bytes(step_dir: Path, window: dict) -> int | None:
    """Median size of the successful /metrics answers intended in the steady window."""
    from loadtests.samples import SampleFormatError, read_samples, steady
    start, end = window.get("steady_start"), window.get("steady_end")
    if start is None or end is None:
        return None
    try:
        df = read_samples(step_dir / "requests.csv.gz")
    except SampleFormatError:
        return None
    df = steady(df, start, end)
    sizes = df[(df["name"] == SCRAPE_ENDPOINT) & (df["ok"] == 1)]["bytes"]
    return int(sizes.median()) if len(sizes) else None


def _max_known(*values):
    known = [v for v in values if v is not None]
    return max(known) if known else None
