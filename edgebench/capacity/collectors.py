"""One step of the collector capacity sweep: a collector under its compose limits scraping
N synthetic series, until it has done its scrapes, is OOM-killed or falls behind.

``measure_collector_step(step_dir, collector, n_series)`` writes the step's compose file and
scrape config (edgebench.capacity.collector_compose), starts them with stack.api, samples
resources with profiling.sampler, watches the synthetic target's /stats (every scrape the
collector completed, its start and send duration) and the supervisor's state (restarts,
OOM kills), reads the collector's own ingestion counter, tears down, writes scenario.json
and returns the step's flat record. The figures come from the catalogue (reports/figures.py)
evaluated on the step directory, never from a second definition.
"""
from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from edgebench.bench import tidy_scenario_dir
from edgebench.capacity.collector_compose import (
    DEPLOYMENT_SCRAPE,
    TARGET,
    CollectorStepError,
    check_collector,
    write_step_files,
)
from edgebench.capacity.synthetic_target import DEFAULT_SHARD_SERIES, check_series_fits, shard_sizes
from edgebench.progress import Progress
from plumbing.wait import WaitTimeout, wait_until
from reports.contract import write_scenario

# The collector's own count of samples it appended, as each version exposes it
# (VictoriaMetrics 1.79.5: vm_rows_inserted_total{type="promscrape"}; Prometheus 2.42:
# prometheus_tsdb_head_samples_appended_total, summed over its label sets).
INGESTION_COUNTERS = {
    "victoriametrics": ("vm_rows_inserted_total", {"type": "promscrape"}),
    "prometheus": ("prometheus_tsdb_head_samples_appended_total", {}),
}
# A scrape slot is missed when two completed scrapes of a target start further apart than
# this many intervals: the collectors schedule one scrape per interval, with little jitter.
MISSED_SLOT_INTERVALS = 1.5
POLL_S = 0.25
FIGURES = {"mem_peak_mb": "collector_mem_peak_kernel_mb", "mem_steady_mb": "collector_mem_steady_mb",
           "cpu_cores": "collector_cpu_cores", "disk_write_bytes_per_s": "collector_disk_write_bytes_per_s",
           "disk_used_mb": "collector_disk_used_mb"}


def get_json(url: str, timeout: float = 5.0) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def parse_counter(text: str, name: str, labels: dict) -> float | None:
    """Sum of ``name``'s samples whose labels include ``labels`` in a text exposition."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, lab = head.partition("{")
        if metric.strip() != name:
            continue
        if any(f'{k}="{v}"' not in lab for k, v in labels.items()):
            continue
        try:
            total += float(value)
            found = True
        except ValueError:
            continue
    return total if found else None


def samples_appended(collector: str, url: str) -> float | None:
    name, labels = INGESTION_COUNTERS[collector]
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            return parse_counter(r.read().decode("utf-8", "replace"), name, labels)
    except (OSError, urllib.error.URLError):
        return None


class ScrapeWatch:
    """What the target's /stats says about the collector's scrapes of every shard."""

    def __init__(self, paths: list[str], interval_s: float, timeout_s: float):
        self.paths = paths
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.scrapes: list[dict] = []

    def update(self, stats: dict | None) -> None:
        if stats:
            self.scrapes = [s for s in stats.get("scrapes", []) if s["path"] in self.paths]

    def done_per_path(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {p: [] for p in self.paths}
        for s in self.scrapes:
            if s["ok"]:
                out[s["path"]].append(s)
        return out

    @property
    def rounds_done(self) -> int:
        """Completed scrapes of the least-scraped target."""
        return min(len(v) for v in self.done_per_path().values())

    @property
    def first_round_end(self) -> float | None:
        """When every target had one completed scrape: the steady window's start."""
        ends = []
        for v in self.done_per_path().values():
            if not v:
                return None
            ends.append(v[0]["start"] + v[0]["send_s"])
        return max(ends)

    @property
    def send_max_s(self) -> float | None:
        return max((s["send_s"] for s in self.scrapes), default=None)

    def behind(self, now: float) -> str | None:
        """Why the collector is behind, or None: a send over the scrape timeout, a scrape
        the collector abandoned, or a target whose scrape slot passed without a scrape."""
        for s in self.scrapes:
            if not s["ok"]:
                return f"a scrape of {s['path']} was abandoned after {s['send_s']:.2f}s (the collector closed it)"
            if s["send_s"] > self.timeout_s:
                return f"a scrape of {s['path']} took {s['send_s']:.2f}s to send, over the {self.timeout_s:g}s timeout"
        if self.first_round_end is None:
            return None
        gap = MISSED_SLOT_INTERVALS * self.interval_s
        for path, done in self.done_per_path().items():
            starts = [s["start"] for s in done]
            for a, b in zip(starts, starts[1:]):
                if b - a > gap:
                    return f"{path}: {b - a:.1f}s between two scrapes at a {self.interval_s:g}s interval"
            if now - starts[-1] > gap + self.timeout_s:
                return f"{path}: no completed scrape for {now - starts[-1]:.1f}s at a {self.interval_s:g}s interval"
        return None


def empty_record(step_dir: Path, collector: str, n_series: int, scrapes: int) -> dict:
    return {"sweep": "collectors", "collector": collector, "series": n_series, "status": "failed",
            "error": None, "mem_peak_mb": None, "mem_steady_mb": None, "cpu_cores": None,
            "disk_write_bytes_per_s": None, "disk_used_mb": None, "samples_appended": None,
            "bytes_per_sample": None, "scrapes_expected": scrapes, "scrapes_done": None,
            "scrape_send_max_s": None, "oom_kills": None, "dir": str(step_dir),
            "targets": None, "scrape_interval_s": None, "body_bytes": None, "elapsed_s": None}


def measure_collector_step(step_dir: Path, collector: str, n_series: int, engine: str = "auto",
                           scrapes: int = 6, seed: int = 1,
                           shard_series: int = DEFAULT_SHARD_SERIES) -> dict:
    """Measure ``collector`` scraping ``n_series`` series for ``scrapes`` scrapes of every
    target (or until it is OOM-killed or falls behind); returns the step's record.

    Refuses (EdgebenchError) an unknown collector, a bad ``scrapes`` or a series count
    the machine cannot hold before anything starts. Ctrl-C: teardown, scenario.json
    'interrupted', then KeyboardInterrupt propagates."""
    from profiling.sampler import ResourceSampler
    from stack.api import free_port, start_stack
    from stack.scrape_config import scrape_settings

    check_collector(collector)
    if isinstance(scrapes, bool) or not isinstance(scrapes, int) or scrapes < 1:

        raise CollectorStepError(f"scrapes={scrapes!r} is not a positive whole number; fix: pass e.g. scrapes=6")
    if isinstance(shard_series, bool) or not isinstance(shard_series, int) or shard_series < 1:
        raise CollectorStepError(f"shard_series={shard_series!r} is not a positive whole number; "
                                 f"fix: pass e.g. shard_series=50000")
    check_series_fits(n_series)
    t_begin = time.time()
    step_dir = Path(step_dir).resolve()
    step_dir.mkdir(parents=True, exist_ok=True)
    settings = scrape_settings(DEPLOYMENT_SCRAPE)
    paths = [f"/metrics/{i}" for i in range(len(shard_sizes(n_series, shard_series)))]
    record = empty_record(step_dir, collector, n_series, scrapes)
    record.update(targets=len(paths), scrape_interval_s=settings.interval_s)
    compose = write_step_files(step_dir, collector, n_series, seed=seed, shard_series=shard_series)
    state_dir = step_dir / "stack"
    progress = Progress(step_dir.name)
    info = {"name": step_dir.name, "scenario": f"collectors-{collector}", "repeat": 1, "variant": None,
            "collector": collector, "components": {collector: "collector", TARGET: "loadgen"},
            "status": "running", "scrape_timeout_s": settings.timeout_s, "series": n_series,
            "peak_reset_at": None,   # the kernel peak covers the collector's life: OOM can come at any time
            "peak_scope": "since the cgroup was created (not reset: an OOM can come at any time)"}
    watch = ScrapeWatch(paths, settings.interval_s, settings.timeout_s)
    try:
        with ExitStack() as stack:
            progress.phase(f"starting {collector} and a synthetic target with {n_series:,} series")
            handle = stack.enter_context(start_stack(
                compose, state_dir, services=[collector, TARGET], engine=engine,
                ports={collector: free_port(), TARGET: free_port()}, timeout=60 + n_series / 100_000))
            state = handle.typed_state()
            info.update(engine=state.engine, limits_enforced=state.limits_enforced,
                        cgroup_version=state.cgroup_version, cgroup_view=state.cgroup_view,
                        limits={n: {"mem_limit_bytes": s.mem_limit_bytes, "cpus": s.cpus}
                                for n, s in state.services.items()})
            sampler = stack.enter_context(ResourceSampler(state_dir / "state.json", step_dir / "resources.csv"))
            target_url, collector_url = handle.url(TARGET), handle.url(collector)
            outcome, error = _wait(handle, collector, watch, target_url, scrapes, progress, sampler)
            record["status"], record["error"] = outcome, error
            info["steady_start"] = watch.first_round_end
            info["steady_end"] = time.time()
            # a killed collector restarts with what it flushed: read it once, do not wait on it
            record["samples_appended"] = (samples_appended(collector, collector_url) if outcome in ("oom", "failed")
                                          else _settled_samples(collector, collector_url, watch.rounds_done * n_series))
            stats = get_json(target_url + "/stats")
            record["body_bytes"] = (stats or {}).get("body_bytes")
            record["oom_kills"] = handle.typed_state().services[collector].oom_kills
        info["status"] = "complete"
    except KeyboardInterrupt:
        info["status"] = record["status"] = "interrupted"
        raise
    except Exception as e:
        info["status"] = record["status"] = "failed"
        info["error"] = record["error"] = f"{type(e).__name__}: {e}"   # the sweep goes on
    finally:
        tidy_scenario_dir(step_dir, state_dir)
        record["scrapes_done"] = watch.rounds_done if watch.scrapes else 0
        record["scrape_send_max_s"] = watch.send_max_s
        info["step"] = {k: record[k] for k in ("status", "error", "scrapes_done", "oom_kills")}
        write_scenario(step_dir, info)
        if info["status"] != "interrupted":
            _figures(step_dir, record)
        record["elapsed_s"] = round(time.time() - t_begin, 1)
        progress.phase(f"{record['status']}" + (f": {record['error']}" if record["error"] else ""))
    return record


def _wait(handle, collector: str, watch: ScrapeWatch, target_url: str, scrapes: int,
          progress: Progress, sampler) -> tuple[str, str | None]:
    """Poll the target's /stats and the supervisor's state until the collector completed
    ``scrapes`` scrapes of every target, was OOM-killed, restarted, or fell behind."""
    interval, timeout = watch.interval_s, watch.timeout_s
    started = time.time()
    # the first scrape comes within one interval (each collector spreads its targets over it);
    # after that every slot is checked, so this deadline only bounds a collector that never scrapes
    first_deadline = started + 2 * interval + timeout + 30
    while True:
        now = time.time()
        svc = handle.typed_state().services[collector]
        if (svc.oom_kills or 0) > 0:
            return "oom", f"{collector} was OOM-killed ({svc.oom_kills} kill(s), {svc.restarts or 0} restart(s))"
        if (svc.restarts or 0) > 0 or svc.status in ("exited", "failed", "stopped"):
            return "failed", (f"{collector} exited (code {svc.exit_code}) without an OOM kill; "
                              f"see {handle.state_dir}/logs")
        watch.update(get_json(target_url + "/stats"))
        why = watch.behind(now)
        if why:
            return "behind", why
        if watch.rounds_done >= scrapes:
            return "ok", None
        if watch.first_round_end is None and now > first_deadline:
            return "failed", (f"{collector} completed no scrape of every target in {now - started:.0f}s; "
                              f"see {handle.state_dir}/logs")
        mem = sampler.latest.get(collector) or {}
        progress.load({"phase": "scraping", "elapsed": now - started,
                       "remaining": max(0.0, (scrapes - watch.rounds_done) * interval)})
        if mem.get("mem_bytes") is not None:
            progress.memory = {collector: (mem["mem_bytes"] / 2**20, (mem.get("mem_limit_bytes") or 0) / 2**20)}
        time.sleep(POLL_S)


def _settled_samples(collector: str, url: str, at_least: int, wait_s: float = 10.0) -> float | None:
    """The collector's ingestion counter once the scrapes the target saw are in it: the
    last send finishing precedes the collector's append by its parse and insert time."""
    value = None

    def caught_up() -> bool:
        nonlocal value
        value = samples_appended(collector, url) or value
        return value is not None and value >= at_least
    try:
        wait_until(caught_up, wait_s, f"{collector}'s ingestion counter to reach {at_least}", interval=POLL_S)
    except WaitTimeout:
        pass  # the figure is what the counter says by then
    return value


def _figures(step_dir: Path, record: dict) -> None:
    """The catalogue's collector figures of the step, and bytes written per sample."""
    from reports import figures as F
    from reports.load import load_scenario
    from reports.view import ScenarioView

    try:
        sc = load_scenario(step_dir)
    except Exception:  # a step without samples keeps its None figures
        return
    v = ScenarioView(sc)
    for key, name in FIGURES.items():
        value = F.figure(name).estimator(v)
        record[key] = None if value is None or not math.isfinite(value) else round(float(value), 4)
    g = v.samples(v.collector) if v.collector else None
    written = None if g is None else g["disk_write_bytes"].dropna()
    if written is not None and len(written) and record["samples_appended"]:
        record["bytes_per_sample"] = round(float(written.iloc[-1]) / record["samples_appended"], 3)
    if g is not None and g["oom_kills"].notna().any():
        record["oom_kills"] = max(int(record["oom_kills"] or 0), int(g["oom_kills"].max()))


def sweep(out_dir: Path, collector: str, series: list[int], engine: str = "auto", scrapes: int = 6,
          shard_series: int = DEFAULT_SHARD_SERIES) -> list[dict]:
    """Steps of one collector in increasing N, stopped after its first step that is not ok;
    writes ``collectors.json`` (the records so far) after every step."""
    from plumbing.files import write_json_atomic
    for n in series:   # refuse an impossible sweep before anything starts
        check_series_fits(n)
    check_collector(collector)
    out_dir = Path(out_dir)
    records: list[dict] = []
    for n in sorted(series):
        records.append(measure_collector_step(out_dir / f"{collector}-n{n}", collector, n, engine, scrapes,
                                              shard_series=shard_series))
        write_json_atomic(out_dir / f"collectors-{collector}.json", records)
        if records[-1]["status"] != "ok":
            break
    return records


def main(argv: list[str] | None = None) -> int:
    """``python -m edgebench.capacity.collectors --collector prometheus --series 10000,100000
    --out DIR``: a collector sweep on its own (the capacity run calls the step function)."""
    import argparse
    import sys

    from plumbing.errors import EdgebenchError
    p = argparse.ArgumentParser(prog="python -m edgebench.capacity.collectors")
    p.add_argument("--collector", required=True, choices=("victoriametrics", "prometheus"))
    p.add_argument("--series", required=True, help="comma-separated series counts, e.g. 10000,100000")
    p.add_argument("--out", required=True, help="directory for the steps")
    p.add_argument("--scrapes", type=int, default=6)
    p.add_argument("--engine", default="auto")
    p.add_argument("--shard-series", type=int, default=DEFAULT_SHARD_SERIES,
                   help="series per scrape target (default 50000)")
    a = p.parse_args(argv)
    try:
        series = [int(x.replace("_", "")) for x in a.series.split(",") if x.strip()]
    except ValueError:
        print(f"collectors: --series {a.series!r} is not a list of whole numbers; fix: e.g. --series 10000,100000",
              file=sys.stderr)
        return 2
    if not series:
        print("collectors: --series is empty; fix: e.g. --series 10000,100000", file=sys.stderr)
        return 2
    try:
        records = sweep(Path(a.out), a.collector, series, a.engine, a.scrapes, a.shard_series)
    except EdgebenchError as e:
        print(f"collectors: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    keys = ("series", "status", "mem_peak_mb", "mem_steady_mb", "cpu_cores", "bytes_per_sample",
            "samples_appended", "scrapes_done", "scrape_send_max_s", "elapsed_s")
    print(" ".join(f"{k:>16}" for k in keys))
    for r in records:
        print(" ".join(f"{'-' if r.get(k) is None else r[k]!s:>16}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
