"""The figure catalogue: every figure edgebench reports, defined once.

Each :class:`Figure` has a name (its summary.json key), a unit, a direction (is a
higher value worse or better), a window (the steady window, or the whole scenario)
and an estimator: a pure function of a :class:`reports.view.ScenarioView`. summary.json,
the markdown and HTML tables, the graphs, the budgets and the gate take figures from
here by name; two estimators that must both exist have two names (the client's
/metrics p95 and the service histogram's are different figures). docs/figures.md is
generated from this list (``python -m reports.figures``) and a test keeps them equal.

Definitions that hold for every figure:

* percentiles (p50, p95, p99) are numpy's linear interpolation over the raw samples of
  the window; ``max`` is the largest sample;
* counters are reset-corrected and interpolated at the window's edges (reports.stats);
* MB are MiB, KB are KiB.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from loadtests.samples import latency_from_intended_ms
from reports import stats as S
from reports.view import SCRAPE_ENDPOINT, SENSOR_ENDPOINT, ScenarioView

STEADY = "steady window"
SCENARIO = "whole scenario"
# The kernel's memory high-water mark when it could not be reset (cgroup v2 before Linux 6.12):
# a stack's cgroups are created at its start, so this is the scenario with its start-up.
PEAK_SINCE_CREATION = "since the cgroup was created"
HIGHER_WORSE = "higher is worse"
HIGHER_BETTER = "higher is better"
NEUTRAL = "neither"
PERCENTILE_KEYS = ("p50", "p95", "p99", "max")


@dataclass(frozen=True)
class Figure:
    name: str                  # summary.json key (dict figures: name.p50 …)
    label: str                 # how the documents name it
    unit: str                  # ms, MB, KB, cores, ratio, count, req/s, bytes/s, s
    direction: str             # HIGHER_WORSE | HIGHER_BETTER | NEUTRAL
    window: str                # STEADY | SCENARIO
    estimator: Callable[[ScenarioView], object]
    definition: str            # one sentence: what exactly is computed

    @property
    def keys(self) -> tuple:
        """The summary paths this figure fills (a percentile figure has four)."""
        if self.name in PERCENTILE_FIGURES:
            return tuple(f"{self.name}.{k}" for k in PERCENTILE_KEYS)
        return (self.name,)


PERCENTILE_FIGURES = ("latency_ms", "scrape_latency_ms", "latency_from_intended_ms",
                      "scrape_latency_from_intended_ms")


# --------------------------------------------------------------------------- client side

def _count(df) -> int | None:
    return None if df is None else int(len(df))


def requests_intended(v: ScenarioView):
    return _count(v.requests)


def requests_sent(v: ScenarioView):
    return _count(v.sent)


def requests_completed(v: ScenarioView):
    """Sent and answered (any HTTP status): the service finished the work."""
    s = v.sent
    return None if s is None else int(((s["status_code"].fillna(0) > 0) | (s["ok"] == 1)).sum())


def failures(v: ScenarioView):
    """Intended requests that did not succeed: errors, timeouts and requests never sent."""
    r = v.requests
    return None if r is None else int((r["ok"] == 0).sum())


def failure_ratio(v: ScenarioView):
    n, f = requests_intended(v), failures(v)
    return (f / n) if n else None


def endpoint_failure_ratio(endpoint: str):
    def est(v: ScenarioView):
        r = v.endpoint(endpoint, sent_only=False)
        return None if r is None or not len(r) else float((r["ok"] == 0).sum() / len(r))
    return est


def throughput_rps(v: ScenarioView):
    n, d = requests_completed(v), v.duration_s
    return (n / d) if (n is not None and d) else None


def scrape_requests(v: ScenarioView):
    return _count(v.endpoint(SCRAPE_ENDPOINT))


def _percentiles_of(v: ScenarioView, endpoint: str | None, intended: bool) -> dict:
    df = v.sent if endpoint is None else v.endpoint(endpoint)
    if df is None:
        return S.percentiles([])
    return S.percentiles(latency_from_intended_ms(df) if intended else df["latency_ms"])


def latency_ms(v):
    return _percentiles_of(v, None, intended=False)


def scrape_latency_ms(v):
    return _percentiles_of(v, SCRAPE_ENDPOINT, intended=False)


def latency_from_intended(v):
    return _percentiles_of(v, None, intended=True)


def scrape_latency_from_intended(v):
    return _percentiles_of(v, SCRAPE_ENDPOINT, intended=True)


def request_counts_by_endpoint(v: ScenarioView) -> dict:
    """{endpoint: {intended, sent, completed, ok}} over the steady window
    (loadtests.samples.counts, the sample format's own definition)."""
    from loadtests.samples import counts
    r = v.requests
    return {} if r is None or not len(r) else counts(r)


def latency_by_endpoint(v: ScenarioView) -> dict:
    """{endpoint: {count, failures, p50, p95, p99, max, from_intended: {p50 …}}} over the
    requests due in the window: count = due, failures = not ok (never sent included);
    the percentiles are over those sent (a request never sent has no latency)."""
    s = v.requests
    if s is None or not len(s):
        return {}
    out = {}
    for name, g in s.groupby("name", sort=True):
        out[str(name)] = {**S.latency_summary(g), "from_intended": S.percentiles(latency_from_intended_ms(g))}
    return out


# --------------------------------------------------------------------------- server side

def _buckets(v: ScenarioView) -> dict | None:
    bk = v.sc.collector.get("scrape_duration_buckets")
    if bk is None:
        return None
    return S.histogram_increase_buckets(S.prom_series(bk), v.start, v.end)


def _server_quantile_ms(q: float):
    def est(v: ScenarioView):
        b = _buckets(v)
        x = S.histogram_quantile(q, b) if b else None
        return None if x is None or not math.isfinite(x) else x * 1000.0
    return est


def server_scrape_p95_bucket_ms(v: ScenarioView):
    """[lower, upper] bound (ms) of the histogram bucket the p95 falls in: the true p95 is
    somewhere in it, the figure is an interpolation."""
    b = _buckets(v)
    if not b:
        return None
    bounds = S.histogram_quantile_bucket(0.95, b)
    return None if bounds is None else [bounds[0] * 1000.0, bounds[1] * 1000.0 if math.isfinite(bounds[1]) else None]


def server_scrapes(v: ScenarioView):
    """Scrapes the service served in the window: its histogram's count (+Inf bucket)
    increase, collector scrapes included."""
    b = _buckets(v)
    if not b or math.inf not in b:
        return None
    return float(b[math.inf])


def collector_up_ratio(v: ScenarioView):
    up = v.sc.collector.get("up")
    if up is None:
        return None
    a = S.series_values_in_window(up, v.start, v.end)
    return float(a.mean()) if a.size else None


def _collector_scrape_durations(v: ScenarioView):
    csd = v.sc.collector.get("collector_scrape_duration")
    return None if csd is None else S.series_values_in_window(csd, v.start, v.end)


def collector_scrape_duration_p95_s(v):
    a = _collector_scrape_durations(v)
    return None if a is None or not a.size else S.percentiles(a)["p95"]


def collector_scrapes_over_timeout(v):
    a = _collector_scrape_durations(v)
    to = S.finite_or_none(v.meta.get("scrape_timeout_s"))
    return None if a is None or not a.size or to is None else int((a >= to).sum())


# --------------------------------------------------------------------------- resources

def _cpu_ms_per(v: ScenarioView, component: str | None, starts) -> float | None:
    g = v.samples(component) if component else None
    if g is None or starts is None or not len(starts):
        return None
    return S.cpu_ms_per_request(g["t"].to_numpy(), g["cpu_seconds"], starts, v.start, v.end)["value"]


def _sent_starts(v: ScenarioView, endpoint: str | None = None):
    df = v.sent if endpoint is None else v.endpoint(endpoint)
    return None if df is None else df["start"].dropna().to_numpy()


def cpu_ms_per_request_of(role: str):
    """A component's CPU-seconds increase over the span of the window its samples cover,
    divided by the requests sent in that span, in ms: total over total."""
    def est(v: ScenarioView):
        return _cpu_ms_per(v, v.component_of(role), _sent_starts(v))
    return est


def _served_between_scrapes(v: ScenarioView, lo: float, hi: float) -> tuple[float, float, float] | None:
    """(t_a, t_b, scrapes served between them): t_a and t_b are the first and last times in
    [lo, hi] at which the collector saw the histogram's count change, i.e. (to one query
    step) the instants it scraped. Counting between two scrapes avoids the error of
    interpolating a counter the collector sees only every scrape interval (±1 interval at
    each edge of the window)."""
    bk = v.sc.collector.get("scrape_duration_buckets")
    inf = [x for x in S.prom_series(bk) if str(x["metric"].get("le")).lower() in ("+inf", "inf")] if bk else []
    if len(inf) != 1:
        return None
    t, c = S._sorted_tv(inf[0]["t"], inf[0]["v"])
    c = S.reset_corrected(c)
    changed = np.concatenate([[False], np.diff(c) != 0])
    idx = np.flatnonzero(changed & (t >= lo) & (t <= hi))
    if idx.size < 2:
        return None
    a, b = idx[0], idx[-1]
    return float(t[a]), float(t[b]), float(c[b] - c[a])


def cpu_ms_per_scrape(v: ScenarioView):
    """Service CPU ÷ scrapes the service served (its histogram's count, collector scrapes
    included), both between the first and last scrape the collector saw in the window;
    without the histogram, ÷ the load generator's /metrics requests over the window (then
    an upper bound, and `cpu_ms_per_scrape_basis` says so)."""
    g = v.samples(v.service) if v.service else None
    if g is None:
        return None
    t = g["t"].to_numpy()
    span = S.covered_span(t, v.start, v.end)
    if span is None:
        return None
    served = _served_between_scrapes(v, *span)
    if served is not None and served[2] > 0:
        cpu = S.counter_increase(t, g["cpu_seconds"], served[0], served[1])
        n = served[2]
    else:
        cpu = S.counter_increase(t, g["cpu_seconds"], *span)
        n = S.in_window(_sent_starts(v, SCRAPE_ENDPOINT) if v.sent is not None else [], *span).sum()
    return None if cpu is None or not n else S.finite_or_none(cpu * 1000.0 / float(n))


def cpu_ms_per_scrape_basis(v: ScenarioView) -> str | None:
    if v.service is None:
        return None
    g = v.samples(v.service)
    span = S.covered_span(g["t"].to_numpy(), v.start, v.end)
    served = _served_between_scrapes(v, *span) if span else None
    if served is not None and served[2] > 0:
        return ("scrapes served (service histogram count, collector scrapes included), between the "
                "first and last collector scrape in the window")
    return "load generator /metrics requests only (no service histogram): an upper bound"


def cores_of(role: str):
    def est(v: ScenarioView):
        c = v.component_of(role)
        g = v.samples(c) if c else None
        return None if g is None else S.mean_cores(g["t"].to_numpy(), g["cpu_seconds"], v.start, v.end)
    return est


def throttled_ratio_of(component_getter):
    def est(v: ScenarioView):
        c = component_getter(v)
        g = v.samples(c) if c else None
        if g is None:
            return None
        periods = g["nr_periods"] if g["nr_periods"].notna().any() else None
        return S.throttled_ratio(g["t"].to_numpy(), g["throttled_periods"], v.start, v.end, periods=periods)
    return est


def throttled_ratio_basis(v: ScenarioView) -> str | None:
    g = v.samples(v.service) if v.service else None
    if g is None:
        return None
    if g["nr_periods"].notna().any():
        return "nr_throttled / nr_periods (cpu.stat)"
    return "nr_throttled / wall-clock periods (no nr_periods in resources.csv): a lower bound"


def _sampled_memory_of(role: str, estimator):
    """``estimator`` over the window's 4 Hz samples of memory (usage − inactive file)."""
    def est(v: ScenarioView):
        c = v.component_of(role)
        w = v.steady_samples(c) if c else None
        return None if w is None else _mb(estimator(w["mem_bytes"]))
    return est


def mem_peak_of(role: str):
    """Largest 4 Hz sample of memory (usage − inactive file) in the window."""
    return _sampled_memory_of(role, S.mem_peak)


def mem_peak_kernel_of(role: str):
    """The kernel's memory high-water mark (v1 memory.max_usage_in_bytes, v2 memory.peak),
    reset at the steady start: its largest value up to the window's end. It catches a
    scrape's millisecond-long temporaries that fall between the samples."""
    def est(v: ScenarioView):
        c = v.component_of(role)
        g = v.samples(c) if c else None
        if g is None or not g["mem_peak_bytes"].notna().any():
            return None
        reset = S.finite_or_none(v.meta.get("peak_reset_at"))   # None: from the scenario's start
        w = g.loc[S.in_window(g["t"], reset, v.end, closed_right=True)]
        return _mb(S.mem_peak(w["mem_peak_bytes"]))
    return est


def mem_peak_kernel_window(v: ScenarioView) -> str | None:
    g = v.samples(v.service) if v.service else None
    if g is None or not g["mem_peak_bytes"].notna().any():
        return None
    if S.finite_or_none(v.meta.get("peak_reset_at")) is not None:
        return STEADY
    scope = v.meta.get("peak_scope")   # e.g. "since the cgroup was created (Linux 6.1 cannot reset ...)"
    return scope if isinstance(scope, str) and scope.startswith(PEAK_SINCE_CREATION) else \
        PEAK_SINCE_CREATION + " (the kernel's mark was not reset at the steady start)"


def mem_steady_of(role: str):
    """Median 4 Hz sample of memory (usage − inactive file) in the window."""
    return _sampled_memory_of(role, S.mem_steady)


def _mb(x):
    return None if x is None else x / S.MIB


def _slope(v: ScenarioView, endpoint: str | None) -> dict:
    g = v.samples(v.service) if v.service else None
    starts = _sent_starts(v, endpoint)
    if g is None or starts is None or not len(starts):
        return {"slope": None, "stderr": None, "r2": None, "segments": None}
    seg = g["restarts"].ffill().fillna(0).to_numpy() if g["restarts"].notna().any() else None
    return S.mem_slope_per_request(g["t"].to_numpy(), g["mem_bytes"], starts, v.start, v.end, segments=seg)


def mem_slope(v: ScenarioView) -> dict:
    """Least squares of service memory on requests served since steady_start, one
    intercept per restart segment; KB per request."""
    sl = _slope(v, None)
    kib = (lambda x: None if x is None else x / S.KIB)
    return {"mem_slope_kb_per_request": kib(sl["slope"]), "mem_slope_stderr_kb_per_request": kib(sl["stderr"]),
            "mem_slope_r2": sl["r2"], "mem_slope_segments": sl.get("segments")}


def mem_per_scrape(v: ScenarioView) -> dict:
    sl = _slope(v, SCRAPE_ENDPOINT)
    return {"mem_per_scrape_mb": _mb(sl["slope"]), "mem_per_scrape_stderr_mb": _mb(sl["stderr"])}


def events_of(column: str, window: str):
    """OOM kills or restarts (step counts) of the service and collector together."""
    def est(v: ScenarioView):
        vals = [_events(v, c, column, window) for c, r in v.roles.items() if r != "loadgen"]
        vals = [x for x in vals if x is not None]
        return int(sum(vals)) if vals else None
    return est


def _events(v: ScenarioView, component: str, column: str, window: str):
    g = v.samples(component)
    lo, hi = (v.start, v.end) if window == STEADY else (None, None)
    x = S.counter_increase(g["t"].to_numpy(), g[column], lo, hi, method="step")
    return None if x is None else int(round(x))


def stack_mem(v: ScenarioView):
    """Service + collector memory summed at each sample time (aligned on a 0.1 s grid)."""
    res = v.sc.resources
    if res is None or not len(res):
        return None
    w = S.steady_samples(res, v.start, v.end)
    w = w[[v.sc.role(c) in ("service", "collector", "other") for c in w["component"]]]
    if not len(w) or w["mem_bytes"].isna().all():
        return None
    p = w.assign(tk=(w["t"] * 10).round() / 10).pivot_table(index="tk", columns="component",
                                                             values="mem_bytes", aggfunc="max")
    p = p.sort_index().ffill().dropna()
    return p.sum(axis=1) if len(p) else None


def stack_mem_peak_mb(v):
    s = stack_mem(v)
    return None if s is None else _mb(float(s.max()))


def stack_mem_steady_mb(v):
    s = stack_mem(v)
    return None if s is None else _mb(float(s.median()))


def collector_disk_write_bytes_per_s(v: ScenarioView):
    g = v.samples(v.collector) if v.collector else None
    if g is None or not g["disk_write_bytes"].notna().any():
        return None
    t = g["t"].to_numpy()
    span = S.covered_span(t, v.start, v.end)
    inc = S.counter_increase(t, g["disk_write_bytes"], *span) if span else None
    return None if inc is None else inc / (span[1] - span[0])


def collector_disk_used_mb(v: ScenarioView):
    w = v.steady_samples(v.collector) if v.collector else None
    du = None if w is None else w["disk_used_bytes"].dropna()
    return _mb(float(du.iloc[-1])) if du is not None and len(du) else None


def loadgen_cpu_ms_per_request(v: ScenarioView):
    lg, n = S.finite_or_none(v.meta.get("loadgen_cpu_seconds")), requests_sent(v)
    return (lg * 1000.0 / n) if (lg is not None and n) else None


# --------------------------------------------------------------------------- the catalogue

F = Figure
CATALOGUE: tuple[Figure, ...] = (
    # client side: requests whose intended time is in the window
    F("requests_intended", "Requests due (intended) in the steady window", "count", NEUTRAL, STEADY,
      requests_intended, "rows of requests.csv.gz whose intended time is in [steady_start, steady_end)"),
    F("requests", "Requests sent", "count", NEUTRAL, STEADY, requests_sent,
      "intended in the window and actually sent (sent = 1)"),
    F("requests_completed", "Requests completed", "count", HIGHER_BETTER, STEADY, requests_completed,
      "sent and answered with any HTTP status"),
    F("failures", "Failed requests (errors, timeouts, never sent)", "count", HIGHER_WORSE, STEADY, failures,
      "intended in the window and not ok (a request never sent counts as failed)"),
    F("failure_ratio", "Failure ratio, all requests", "ratio", HIGHER_WORSE, STEADY, failure_ratio,
      "failures ÷ requests_intended"),
    F("metrics_failure_ratio", "Failed /metrics scrapes (share of those due)", "ratio", HIGHER_WORSE, STEADY,
      endpoint_failure_ratio(SCRAPE_ENDPOINT),
      "/metrics scrapes due in the window that did not complete ok (never sent included) ÷ those due"),
    F("sensor_failure_ratio", "Failed /sensor requests (share of those due)", "ratio", HIGHER_WORSE, STEADY,
      endpoint_failure_ratio(SENSOR_ENDPOINT), "as metrics_failure_ratio, for /sensor"),
    F("throughput_rps", "Throughput, completed (req/s)", "req/s", HIGHER_BETTER, STEADY, throughput_rps,
      "requests_completed ÷ the window's length"),
    F("scrape_requests", "/metrics scrapes sent by the load generator", "count", NEUTRAL, STEADY,
      scrape_requests, "/metrics rows with sent = 1"),
    F("latency_ms", "Service time, all requests (ms)", "ms", HIGHER_WORSE, STEADY, latency_ms,
      "completion − actual start of every sent request (failures included): p50/p95/p99/max"),
    F("scrape_latency_ms", "/metrics service time, client (ms)", "ms", HIGHER_WORSE, STEADY, scrape_latency_ms,
      "as latency_ms, /metrics only"),
    F("latency_from_intended_ms", "Latency from the intended start, all requests (ms)", "ms", HIGHER_WORSE,
      STEADY, latency_from_intended,
      "(start − intended) · 1000 + service time: what a client on a schedule sees (coordinated omission corrected)"),
    F("scrape_latency_from_intended_ms", "/metrics latency from the intended start (ms)", "ms", HIGHER_WORSE,
      STEADY, scrape_latency_from_intended, "as latency_from_intended_ms, /metrics only"),
    # server side: the service's own histogram, via the collector
    F("server_scrape_p50_ms", "/metrics p50, service histogram (ms)", "ms", HIGHER_WORSE, STEADY,
      _server_quantile_ms(0.50), "histogram_quantile(0.5) over each bucket's increase in the window, summed by le"),
    F("server_scrape_p95_ms", "/metrics p95, service histogram (ms)", "ms", HIGHER_WORSE, STEADY,
      _server_quantile_ms(0.95),
      "histogram_quantile(0.95) as above: interpolated inside the bucket named by server_scrape_p95_bucket_ms"),
    F("server_scrape_p95_bucket_ms", "Bucket of the histogram p95 (ms)", "ms", NEUTRAL, STEADY,
      server_scrape_p95_bucket_ms, "[lower, upper] bound of the bucket the histogram p95 falls in"),
    F("server_scrapes", "/metrics scrapes served (service histogram count)", "count", NEUTRAL, STEADY,
      server_scrapes, "increase of the +Inf bucket: every scrape served, collector scrapes included"),
    F("collector_up_ratio", "Collector `up` ratio", "ratio", HIGHER_BETTER, STEADY, collector_up_ratio,
      "mean of the collector's `up` samples in the window"),
    F("collector_scrape_duration_p95_s", "Collector scrape duration p95 (s)", "s", HIGHER_WORSE, STEADY,
      collector_scrape_duration_p95_s, "p95 of the collector's scrape_duration_seconds samples"),
    F("collector_scrapes_over_timeout", "Collector scrapes at or over the timeout", "count", HIGHER_WORSE,
      STEADY, collector_scrapes_over_timeout, "scrape_duration_seconds samples ≥ scrape_timeout_s"),
    # service resources
    F("cpu_ms_per_request", "Service CPU per request (ms)", "ms", HIGHER_WORSE, STEADY,
      cpu_ms_per_request_of("service"),
      "service CPU-seconds increase over the covered window ÷ requests sent in it (total over total)"),
    F("cpu_ms_per_scrape", "Service CPU per /metrics scrape served (ms)", "ms", HIGHER_WORSE, STEADY,
      cpu_ms_per_scrape, "service CPU ÷ scrapes served (histogram count, collector scrapes included), both between the "
      "first and last collector scrape in the window; fallback named in cpu_ms_per_scrape_basis"),
    F("service_cpu_cores", "Service CPU used (cores)", "cores", HIGHER_WORSE, STEADY, cores_of("service"),
      "CPU-seconds increase ÷ elapsed seconds"),
    F("throttled_ratio", "Service throttled ratio (share of CFS periods)", "ratio", HIGHER_WORSE, STEADY,
      throttled_ratio_of(lambda v: v.service),
      "Δnr_throttled ÷ Δnr_periods; older runs ÷ wall-clock periods (a lower bound, see throttled_ratio_basis)"),
    F("service_mem_peak_mb", "Service memory peak, 4 Hz samples (MB)", "MB", HIGHER_WORSE, STEADY,
      mem_peak_of("service"), "largest sampled memory (usage − inactive file)"),
    F("service_mem_peak_kernel_mb", "Service memory peak, kernel high-water mark (MB)", "MB", HIGHER_WORSE,
      STEADY, mem_peak_kernel_of("service"),
      "memory.max_usage_in_bytes (v1) / memory.peak (v2), reset at the steady start"),
    F("service_mem_steady_mb", "Service memory steady, median (MB)", "MB", HIGHER_WORSE, STEADY,
      mem_steady_of("service"), "median of the sampled memory"),
    F("mem_slope_kb_per_request", "Service memory growth per request (KB)", "KB", HIGHER_WORSE, STEADY,
      lambda v: mem_slope(v)["mem_slope_kb_per_request"],
      "least squares of memory on requests served, one intercept per restart segment"),
    F("mem_per_scrape_mb", "Service memory growth per scrape, slope (MB)", "MB", HIGHER_WORSE, STEADY,
      lambda v: mem_per_scrape(v)["mem_per_scrape_mb"], "as mem_slope_kb_per_request, against /metrics requests"),
    F("oom_kills_total", "OOM kills (whole scenario)", "count", HIGHER_WORSE, SCENARIO,
      events_of("oom_kills", SCENARIO), "OOM kills of service and collector, warm-up included (the budget's)"),
    F("restarts_total", "Restarts (whole scenario)", "count", HIGHER_WORSE, SCENARIO,
      events_of("restarts", SCENARIO), "restarts of service and collector, warm-up included (the budget's)"),
    F("oom_kills", "OOM kills (steady window)", "count", HIGHER_WORSE, STEADY,
      events_of("oom_kills", STEADY), "as oom_kills_total, steady window only"),
    F("restarts", "Restarts (steady window)", "count", HIGHER_WORSE, STEADY,
      events_of("restarts", STEADY), "as restarts_total, steady window only"),
    # stack and collector
    F("stack_mem_peak_mb", "Stack memory peak, service + collector (MB)", "MB", HIGHER_WORSE, STEADY,
      stack_mem_peak_mb, "largest sum of service and collector samples at the same time"),
    F("stack_mem_steady_mb", "Stack memory steady (MB)", "MB", HIGHER_WORSE, STEADY, stack_mem_steady_mb,
      "median of that sum"),
    F("collector_mem_peak_mb", "Collector memory peak (MB)", "MB", HIGHER_WORSE, STEADY,
      mem_peak_of("collector"), "as service_mem_peak_mb, for the collector"),
    F("collector_mem_peak_kernel_mb", "Collector memory peak, kernel high-water mark (MB)", "MB", HIGHER_WORSE,
      STEADY, mem_peak_kernel_of("collector"), "as service_mem_peak_kernel_mb, for the collector"),
    F("collector_mem_steady_mb", "Collector memory steady, median (MB)", "MB", HIGHER_WORSE, STEADY,
      mem_steady_of("collector"), "as service_mem_steady_mb, for the collector"),
    F("collector_cpu_cores", "Collector CPU used (cores)", "cores", HIGHER_WORSE, STEADY, cores_of("collector"),
      "as service_cpu_cores, for the collector"),
    F("collector_cpu_ms_per_request", "Collector CPU per request served by the service (ms)", "ms",
      HIGHER_WORSE, STEADY, cpu_ms_per_request_of("collector"), "as cpu_ms_per_request, collector CPU"),
    F("collector_disk_write_bytes_per_s", "Collector disk writes (bytes/s)", "bytes/s", HIGHER_WORSE, STEADY,
      collector_disk_write_bytes_per_s, "disk_write_bytes increase ÷ covered seconds"),
    F("collector_disk_used_mb", "Collector data size at the end of the window (MB)", "MB", HIGHER_WORSE,
      STEADY, collector_disk_used_mb, "last disk_used_bytes sample in the window"),
    F("loadgen_cpu_ms_per_request", "Load generator CPU per request (ms)", "ms", HIGHER_WORSE, SCENARIO,
      loadgen_cpu_ms_per_request, "the load generator's CPU-seconds ÷ requests sent"),
)
_BY_NAME = {f.name: f for f in CATALOGUE}

# Labels for the profile figures (computed from profile/ files by reports.summary).
PROFILE_FIGURES = {
    "scrape_alloc_peak_mb": ("Memory one scrape holds at its peak, tracemalloc (MB)", "MB", HIGHER_WORSE),
    "scrape_alloc_retained_mb": ("Memory one scrape leaves behind, tracemalloc (MB)", "MB", HIGHER_WORSE),
}

# Budget metric names in budgets.yml -> summary paths (a budget is checked on a figure).
BUDGET_FIGURES = {
    "service_mem_peak_mb": "service_mem_peak_mb",
    "service_mem_peak_kernel_mb": "service_mem_peak_kernel_mb",
    "stack_mem_peak_mb": "stack_mem_peak_mb",
    "oom_kills": "oom_kills_total",                 # whole scenario, warm-up included
    "restarts": "restarts_total",                   # whole scenario, warm-up included
    "metrics_failure_ratio": "metrics_failure_ratio",
    "sensor_failure_ratio": "sensor_failure_ratio",
    "scrape_p95_ms": "scrape_latency_ms.p95",       # service time (the gate's choice)
    "cpu_ms_per_scrape": "cpu_ms_per_scrape",
    "mem_slope_kb_per_request": "mem_slope_kb_per_request",
}
# The A/B figures the gate reads per round (names unchanged).
GATE_FIGURES = {"cpu_ms_per_request": "cpu_ms_per_request",
                "scrape_latency_ms": "scrape_latency_ms.p50",
                "service_mem_steady_mb": "service_mem_steady_mb"}


def figure(name: str) -> Figure:
    """The catalogue entry of a summary key ('scrape_latency_ms.p95' -> scrape_latency_ms)."""
    base = name.split(".", 1)[0]
    if base not in _BY_NAME:
        raise KeyError(f"no figure named {name!r} in reports/figures.py")
    return _BY_NAME[base]


def label(path: str, with_unit: bool = True) -> str:
    """How the documents name a summary path; ``with_unit=False`` drops the trailing
    "(ms)"-style unit, for tables whose cells carry their own unit (reports.numbers.human)."""
    base, _, sub = path.partition(".")
    if base in PROFILE_FIGURES:
        text = PROFILE_FIGURES[base][0]
    elif base not in _BY_NAME:
        return path
    else:
        text = _BY_NAME[base].label
    bare, unit = text.rsplit(" (", 1) if text.endswith(")") else (text, "")
    if unit and unit[:-1] not in UNITS:            # "(share of CFS periods)" is words, not a unit
        bare, unit = text, ""
    if sub in PERCENTILE_KEYS:
        bare = f"{bare} {sub}"
    return f"{bare} ({unit}" if unit and with_unit else bare


UNITS = ("ms", "s", "MB", "KB", "cores", "req/s", "bytes/s", "count", "ratio")


def unit(path: str) -> str:
    """The catalogue unit of a summary path ("mem_peak_mb.<component>" is MB), or ""."""
    base = path.partition(".")[0]
    if base in PROFILE_FIGURES:
        return PROFILE_FIGURES[base][1]
    if base in _BY_NAME:
        return _BY_NAME[base].unit
    return "MB" if base.endswith("_mb") else "ms" if base.endswith("_ms") else ""


def evaluate(v: ScenarioView) -> dict:
    """Every catalogue figure of one scenario: {name: value}."""
    return {f.name: f.estimator(v) for f in CATALOGUE}


def catalogue_markdown() -> str:
    """docs/figures.md, generated from CATALOGUE."""
    lines = ["# Figure catalogue", "",
             "Generated from `reports/figures.py` by `python -m reports.figures > docs/figures.md`; "
             "a test keeps the two equal. Every figure has one definition; summary.json, the "
             "documents, the graphs, the budgets and the gate read figures by these names. "
             "Percentile figures (unit ms, dict) hold p50, p95, p99 and max: numpy's linear "
             "interpolation over the raw samples. MB = MiB, KB = KiB. summary.json holds each figure "
             "in the unit below; the documents print it in the unit that fits its size "
             "(`reports.numbers.human`: 112 B, not 0.000107 MB; 5.84 ms/s of CPU, not 0.00584 cores). "
             "The steady window holds "
             "requests whose intended time is in [steady_start, steady_end) and resource samples "
             "taken in [steady_start, steady_end].", "",
             "| name | unit | direction | window | definition |", "| --- | --- | --- | --- | --- |"]
    for f in CATALOGUE:
        lines.append(f"| `{f.name}` | {f.unit} | {f.direction} | {f.window} | {f.definition} |")
    lines += ["", "## Budget metrics (budgets.yml) and the figures they check", "",
              "| budget metric | figure |", "| --- | --- |"]
    lines += [f"| `{k}` | `{v}` |" for k, v in BUDGET_FIGURES.items()]
    lines += ["", "## Figures the gate compares per round", "", "| gate metric | figure |", "| --- | --- |"]
    lines += [f"| `{k}` | `{v}` |" for k, v in GATE_FIGURES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(catalogue_markdown())
