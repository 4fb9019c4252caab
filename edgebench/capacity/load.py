"""One step of the load sweep: a fresh stack under the compose limits, open-loop load at
one offered rate, and the step's figures taken from the figure catalogue."""
from __future__ import annotations

import math
from pathlib import Path

from edgebench.params import RunParams
from edgebench.scenarios import SCENARIOS

# Each scraper waits for its own answer before its next scrape (never overlapping, as a
# collector scrapes), so its interval is each scrape's deadline: 10 scrapes/s per scraper
# gives 100 ms. Past 16 scrapers the rate per scraper grows instead: the optimized
# service gives at most 64 connections a thread (SENSOR_MAX_CONNECTIONS,
# service/lean_server.py), and 16 scrapers plus 8 sensor clients stay well under it.
RATE_PER_SCRAPER = 10.0
MAX_SCRAPERS = 16
SENSOR_RATE_PER_CLIENT = 2.0   # the default bench's sensor client
MAX_SENSOR_CLIENTS = 8


def scenario_for(variant: str):
    return SCENARIOS[f"{variant}-vm"]


def load_shape(scrape_rate: float, sensor_rate: float) -> dict:
    """Offered totals -> users: one scraper per 10 scrapes/s (at most 16), one sensor
    client per 2 requests/s (at most 8); at least one of each when its total is above 0."""
    scrapers = min(MAX_SCRAPERS, max(1, math.ceil(scrape_rate / RATE_PER_SCRAPER))) if scrape_rate > 0 else 0
    users = min(MAX_SENSOR_CLIENTS, max(1, math.ceil(sensor_rate / SENSOR_RATE_PER_CLIENT))) if sensor_rate > 0 else 0
    return {"scrapers": scrapers, "scrape_rate": scrape_rate / scrapers if scrapers else 1.0,
            "users": users, "sensor_rate": sensor_rate / users if users else 1.0}


def step_params(scrape_rate: float, sensor_rate: float, variant: str, engine: str,
                duration_s: float, warmup_s: float, results_root: Path, workers: int = 0) -> RunParams:
    shape = load_shape(scrape_rate, sensor_rate)
    return RunParams(duration_s=duration_s, warmup_s=warmup_s, users=shape["users"],
                     sensor_rate=shape["sensor_rate"], scrapers=shape["scrapers"],
                     scrape_rate=shape["scrape_rate"], engine=engine, workers=workers,
                     scenarios=[scenario_for(variant)], results_root=results_root)


def measure_load_step(step_dir: Path, variant: str, scrape_rate: float, sensor_rate: float,
                      engine: str = "auto", duration_s: float = 10.0, warmup_s: float = 3.0,
                      axis: str = "scrape", workers: int = 0) -> dict:
    """Measure one offered load (totals per second) on a fresh stack; the step's record.
    A failed step is a record with its error; Ctrl-C propagates after the teardown."""
    from edgebench.bench import measure_scenario
    from edgebench.capacity.step_figures import service_figures, step_summary
    from reports.contract import read_scenario

    step_dir = Path(step_dir)
    params = step_params(scrape_rate, sensor_rate, variant, engine, duration_s, warmup_s,
                         step_dir.parent, workers)
    record = {"sweep": "load", "axis": axis, "variant": variant, "scrape_rate": scrape_rate,
              "sensor_rate": sensor_rate, "offered_rps": scrape_rate + sensor_rate,
              "dir": f"{step_dir.parent.name}/{step_dir.name}", "status": "failed", "error": None}
    try:
        measure_scenario(step_dir, params, scenario_for(variant), query=False)
        record["status"] = "ok"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    except Exception as e:  # noqa: BLE001 - a step that failed is a finding, recorded
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        if (step_dir / "scenario.json").exists():
            try:
                record.update(service_figures(step_summary(step_dir)))
                meta, _ = read_scenario(step_dir)
                record["loadgen_bottleneck"] = bool(meta.get("loadgen_bottleneck"))
            except Exception as e:  # noqa: BLE001 - figures of a broken step: say so
                record["error"] = record["error"] or f"figures: {type(e).__name__}: {e}"
        if (record.get("oom_kills") or 0) > 0:
            record["status"] = "oom"
    return record
