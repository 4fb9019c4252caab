"""One step of the collector comparison: several collector variants side by side (each in
its own cgroup under the compose limits), all scraping one synthetic target with N series
in a workload shape, until each has settled by the rule, reached the cap, been OOM-killed
or fallen behind.

Per variant, every second: anonymous memory and page cache of its cgroup
(``memory.stat``), the kernel's peak; every scrape interval: its own Go heap
(``go_memstats_heap_inuse_bytes``) and its active series (Prometheus
``prometheus_tsdb_head_series``, VictoriaMetrics ``vm_cache_entries{type="storage/hour_metric_ids"}``)
from its ``/metrics``. The settle rule is reports.collector_stats.settled.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from edgebench.bench import tidy_scenario_dir
from edgebench.capacity.comparison_compose import (
    DEPLOYMENT_SCRAPE,
    TARGET,
    parse_variant,
    target_sizes,
    write_step_files,
)
from edgebench.progress import Progress
from loadtests.synthetic_target import check_series_fits
from reports import collector_stats as cs
from reports.contract import write_scenario

POLL_S = 0.25
MEMORY_EVERY_S = 1.0
DEFAULT_CAP_S = 180.0       # a step ends at the latest this long after every target's first scrape
HEAP = ("go_memstats_heap_inuse_bytes", {})
ACTIVE = {"prometheus": ("prometheus_tsdb_head_series", {}),
          "victoriametrics": ("vm_cache_entries", {"type": "storage/hour_metric_ids"})}
DONE = ("settled", "capped", "oom", "behind", "failed")
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


class ClientWatch:
    """What the target's /stats says about one collector's scrapes (``?c=<variant>``)
    of every target path."""

    def __init__(self, client: str, paths: list[str], interval_s: float, timeout_s: float):
        self.client = client
        self.paths = paths
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.scrapes: list[dict] = []

    def update(self, stats: dict | None) -> None:
        if stats:
            self.scrapes = [s for s in stats.get("scrapes", [])
                            if s.get("client") == self.client and s["path"] in self.paths]

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


def _metrics(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=3) as r:
            return r.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError):
        return None


class Variant:
    """One collector variant's watch, samples and verdict during a step."""

    def __init__(self, name: str, paths, interval_s: float, timeout_s: float):
        self.name = name
        self.collector, self.config = parse_variant(name)
        self.watch = ClientWatch(name, paths, interval_s, timeout_s)
        self.status: str | None = None
        self.error: str | None = None
        self.anon: list[tuple[float, float]] = []     # (t, bytes) since the first complete round
        self.cache: list[tuple[float, float]] = []
        self.heap: list[tuple[float, float]] = []
        self.active: list[tuple[float, float]] = []
        self.peak = None
        self.limit = None
        self.decided_at = None
        self.verdict: dict = {}
        self.next_metrics = 0.0

    def decide(self, status: str, error: str | None = None) -> None:
        if self.status is None:
            self.status, self.error, self.decided_at = status, error, time.time()


def _window_mean(samples, end: float, window_s: float) -> float | None:
    win = [b for t, b in samples if end - window_s <= t <= end]
    return sum(win) / len(win) if win else None


@dataclass(frozen=True)
class _Rules:
    """What every look at a variant during one step applies."""
    interval_s: float
    settle_scrapes: int
    cap_s: float
    step_dir: Path
    started: float
    first_deadline: float      # every target scraped once by then, or the variant failed


def measure_comparison_step(step_dir: Path, variants: list[str], n_series: int, shape: str,
                            engine: str = "auto", seed: int = 1, cap_s: float = DEFAULT_CAP_S,
                            settle_scrapes: int = cs.SETTLE_SCRAPES) -> list[dict]:
    """Measure every variant side by side on ``n_series`` series in ``shape``; one record
    per variant. Ctrl-C: teardown, scenario.json 'interrupted', KeyboardInterrupt propagates."""
    from plumbing.ports import free_port
    from profiling.sampler import ResourceSampler
    from stack.api import start_stack
    from stack.scrape_config import scrape_settings

    check_series_fits(n_series)
    step_dir = Path(step_dir).resolve()
    step_dir.mkdir(parents=True, exist_ok=True)
    t_begin = time.time()
    sizes = target_sizes(n_series, shape, seed)
    settings = scrape_settings(DEPLOYMENT_SCRAPE)
    paths = [f"/metrics/{i}" for i in range(len(sizes))]
    vs = [Variant(v, paths, settings.interval_s, settings.timeout_s) for v in variants]
    compose = write_step_files(step_dir, variants, n_series, shape, seed)
    state_dir = step_dir / "stack"
    progress = Progress(step_dir.name)
    info = _step_info(step_dir, variants, settings.timeout_s, n_series, shape, len(sizes))
    window_s = settle_scrapes * settings.interval_s
    status = "complete"
    try:
        with ExitStack() as stack:
            progress.phase(f"starting {', '.join(variants)} and a target with {n_series:,} series "
                           f"in {len(sizes)} target(s)")
            handle = stack.enter_context(start_stack(
                compose, state_dir, services=[TARGET, *variants], engine=engine,
                ports={name: free_port() for name in [TARGET, *variants]}, timeout=60 + n_series / 100_000))
            state = handle.state()
            info.update(engine=state.engine, limits_enforced=state.limits_enforced, cgroup_view=state.cgroup_view)
            stack.enter_context(ResourceSampler(state_dir / "state.json", step_dir / "resources.csv"))
            started = time.time()
            rules = _Rules(settings.interval_s, settle_scrapes, cap_s, step_dir, started,
                           first_deadline=started + 2 * settings.interval_s + settings.timeout_s + 30)
            _settle_all(vs, handle, rules, progress)
            samples = _final_counts(vs, handle)
    except KeyboardInterrupt:
        status = "interrupted"
        info["status"] = "interrupted"
        raise
    except Exception as e:   # the comparison goes on with the next step
        status = "failed"
        info["error"] = f"{type(e).__name__}: {e}"
        for v in vs:
            v.decide("failed", info["error"])
        samples = {}
    finally:
        tidy_scenario_dir(step_dir, state_dir)
        _finish_info(info, status, vs)
        write_scenario(step_dir, info)
    elapsed = round(time.time() - t_begin, 1)
    records = [_record(v, step_dir, n_series, shape, len(sizes), window_s, samples.get(v.name), elapsed)
               for v in vs]
    progress.phase("; ".join(f"{r['variant']}: {r['status']}" for r in records))
    return records


def _step_info(step_dir: Path, variants: list[str], timeout_s: float, n_series: int, shape: str,
               targets: int) -> dict:
    """The step's scenario.json before the run: the collectors, the target, status running."""
    return {"name": step_dir.name, "scenario": "collector-comparison", "repeat": 1, "variant": None,
            "collector": None, "components": {**{v: "collector" for v in variants}, TARGET: "loadgen"},
            "status": "running", "scrape_timeout_s": timeout_s, "series": n_series, "shape": shape,
            "targets": targets, "peak_reset_at": None}


def _finish_info(info: dict, status: str, vs: list[Variant]) -> None:
    """Close the step's scenario.json: its status, steady window and each variant's outcome."""
    if info["status"] != "interrupted":
        info["status"] = status
    info["steady_end"] = time.time()
    info["steady_start"] = max((v.watch.first_round_end or info["steady_end"] for v in vs),
                               default=info["steady_end"])
    info["step"] = {v.name: {"status": v.status, "error": v.error} for v in vs}


def _settle_all(vs: list[Variant], handle, rules: _Rules, progress: Progress) -> None:
    """Look at every undecided variant every POLL_S until each is decided (settled, capped,
    OOM-killed, behind or failed); memory is sampled every MEMORY_EVERY_S."""
    target_url = handle.url(TARGET)
    urls = {v.name: handle.url(v.name) for v in vs}
    next_mem = 0.0
    while any(v.status is None for v in vs):
        now = time.time()
        stats = get_json(target_url + "/stats")
        sample_memory = now >= next_mem
        if sample_memory:
            next_mem = now + MEMORY_EVERY_S
        services = handle.state().services   # one read of state.json per look
        for v in vs:
            if v.status is None:
                _look(v, services[v.name], stats, now, sample_memory, urls[v.name], rules)
        left = [v.name for v in vs if v.status is None]
        progress.load({"phase": "settling " + ", ".join(left) if left else "done",
                       "elapsed": now - rules.started, "remaining": max(0.0, rules.cap_s - (now - rules.started))})
        time.sleep(POLL_S)


def _look(v: Variant, svc, stats: dict | None, now: float, sample_memory: bool, url: str, rules: _Rules) -> None:
    """One look at one variant: decide it, or record its memory and its own gauges."""
    if (svc.oom_kills or 0) > 0:
        v.decide("oom", f"OOM-killed ({svc.oom_kills} kill(s))")
        return
    if (svc.restarts or 0) > 0 or svc.status in ("exited", "failed", "stopped"):
        v.decide("failed", f"exited (code {svc.exit_code}) without an OOM kill; see {rules.step_dir}/logs")
        return
    v.watch.update(stats)
    why = v.watch.behind(now)
    if why:
        v.decide("behind", why)
        return
    first = v.watch.first_round_end
    if first is None:
        if now > rules.first_deadline:
            v.decide("failed", f"no scrape of every target in {now - rules.started:.0f}s")
        return
    if sample_memory:
        _sample_memory(v, svc, now)
    if now >= v.next_metrics:
        v.next_metrics = now + rules.interval_s
        _read_gauges(v, url, now)
    verdict = cs.settled(v.anon, v.limit or 150 * 2**20, rules.interval_s, rules.settle_scrapes)
    v.verdict = verdict
    if verdict["settled"]:
        v.decide("settled")
    elif now - first >= rules.cap_s:
        v.decide("capped", f"memory still moving after {rules.cap_s:g}s "
                           f"({(verdict['slope_bytes_per_min'] or 0) / 2**20:+.2f} MB/min)")


def _sample_memory(v: Variant, svc, now: float) -> None:
    """Anonymous memory and page cache of the variant's cgroup, and the kernel's peak."""
    from plumbing.cgroup_counters import read_cgroups
    c = read_cgroups(svc.cgroups or None)
    if c is not None and c.rss_bytes is not None:
        v.anon.append((now, float(c.rss_bytes)))
        if c.usage_bytes is not None:
            v.cache.append((now, float(max(0, c.usage_bytes - c.rss_bytes))))
        v.peak = c.mem_peak_bytes if c.mem_peak_bytes is not None else v.peak
        v.limit = c.mem_limit_bytes or svc.mem_limit_bytes or v.limit


def _read_gauges(v: Variant, url: str, now: float) -> None:
    """The variant's own Go heap and active series, from its /metrics."""
    text = _metrics(url)
    if text:
        for key, (name, labels) in (("heap", HEAP), ("active", ACTIVE[v.collector])):
            val = parse_counter(text, name, labels)
            if val is not None:
                getattr(v, key).append((now, val))


def _final_counts(vs: list[Variant], handle) -> dict:
    """Per variant: the samples it says it appended; its OOM kills and the kernel's peak,
    read last (one cgroup for the service's life, restarts included)."""
    from plumbing.cgroup_counters import read_cgroups
    samples = {}
    services = handle.state().services
    for v in vs:
        name, labels = INGESTION_COUNTERS[v.collector]
        samples[v.name] = parse_counter(_metrics(handle.url(v.name)) or "", name, labels)
        svc = services[v.name]
        v.oom_kills = svc.oom_kills
        c = read_cgroups(svc.cgroups or None)
        if c is not None and c.mem_peak_bytes is not None:
            v.peak = c.mem_peak_bytes
    return samples


def _record(v: Variant, step_dir: Path, n_series: int, shape: str, targets: int, window_s: float,
            appended, elapsed: float) -> dict:
    """The flat record of one variant in one step (figures not measured are None)."""
    end = v.anon[-1][0] if v.anon else None
    mb = lambda x: None if x is None else round(x / 2**20, 3)
    anon = _window_mean(v.anon, end, window_s) if end else None
    cache = _window_mean(v.cache, end, window_s) if end else None
    heap = _window_mean(v.heap, end, window_s) if end else None
    active = v.active[-1][1] if v.active else None
    slope = (v.verdict or {}).get("slope_bytes_per_min")
    held = v.status in ("settled", "capped")
    return {
        "sweep": "comparison", "variant": v.name, "collector": v.collector, "config": v.config,
        "shape": shape, "series": n_series, "targets": targets,
        "active_series": cs.active_series(n_series, targets),
        "active_series_reported": None if active is None else int(active),
        "status": v.status, "error": v.error,
        "anon_mb": mb(anon) if held else None, "page_cache_mb": mb(cache) if held else None,
        "go_heap_mb": mb(heap) if held else None, "peak_mb": mb(v.peak),
        "slope_mb_per_min": None if slope is None else round(slope / 2**20, 3),
        "settle_window_s": window_s,
        "settled_after_s": (round(v.decided_at - v.watch.first_round_end, 1)
                            if v.decided_at and v.watch.first_round_end and held else None),
        "scrapes_done": v.watch.rounds_done if v.watch.scrapes else 0,
        "scrape_send_max_s": v.watch.send_max_s, "samples_appended": appended,
        "oom_kills": getattr(v, "oom_kills", None), "limit_mb": mb(v.limit), "elapsed_s": elapsed,
        "dir": str(step_dir),
    }
