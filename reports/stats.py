"""Pure statistics on a run's raw samples: functions of arrays and DataFrames, no I/O.

Conventions (documented in docs/figures.md and docs/reports.md):

* The steady window is half-open: a request belongs to it when
  ``steady_start <= start < steady_end``; a resource sample when
  ``steady_start <= t <= steady_end``.
* Percentiles are numpy's default (linear interpolation between order statistics)
  over the raw per-request latencies, failures included (a slow failure is slow).
* Cumulative counters (cpu_seconds, throttled_periods, disk_write_bytes, histogram
  buckets) are corrected for resets the way Prometheus' ``increase()`` is (a drop
  means the counter restarted from zero), then interpolated linearly at the window
  edges. Event counters (oom_kills, restarts) use step semantics instead: the last
  value seen at or before each edge.
* MB are MiB (1048576 bytes) and KB are KiB (1024 bytes), as ``docker stats`` and
  compose's ``50m`` mean them.
* The throttled ratio is the share of CFS periods in the window in which the cgroup
  was throttled. cgroups count ``nr_periods`` only while the cgroup is runnable; the
  sampler records ``throttled_periods`` (nr_throttled) but not always ``nr_periods``,
  so when a ``periods``/``nr_periods`` column is present it is the denominator,
  otherwise the wall-clock number of periods (elapsed / 0.1 s, Docker's CFS period).
  The latter is a lower bound of nr_throttled / nr_periods, in [0, 1].
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sps

MIB = 1024.0 * 1024.0
KIB = 1024.0
CFS_PERIOD_S = 0.1
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def finite_or_none(x) -> float | None:
    """A float, or None for a missing/non-finite value (JSON has no NaN)."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --------------------------------------------------------------------------- windows

def in_window(times, start: float | None, end: float | None, closed_right: bool = False) -> np.ndarray:
    """Boolean mask of ``start <= t < end`` (``<= end`` when closed_right); None = unbounded."""
    t = np.asarray(times, dtype=float)
    mask = np.ones(t.shape, dtype=bool)
    if start is not None:
        mask &= t >= start
    if end is not None:
        mask &= (t <= end) if closed_right else (t < end)
    return mask


def steady_samples(resources: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    """Resource samples taken in the steady window (both edges included)."""
    if resources is None or len(resources) == 0:
        return resources.iloc[0:0] if resources is not None else pd.DataFrame()
    return resources.loc[in_window(resources["t"], start, end, closed_right=True)]


# --------------------------------------------------------------------------- latency

def percentiles(values: Iterable[float]) -> dict:
    """{p50, p95, p99, max} of raw samples (linear interpolation); all None when empty."""
    a = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values,
                   dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {k: None for k in (*PERCENTILES, "max")}
    out = {k: finite_or_none(np.percentile(a, q)) for k, q in PERCENTILES.items()}
    out["max"] = finite_or_none(a.max())
    return out


def latency_summary(requests: pd.DataFrame) -> dict:
    """Count, failures and percentiles of a set of requests (already windowed)."""
    n = int(len(requests))
    failures = int((requests["ok"] == 0).sum()) if n and "ok" in requests else 0
    return {"count": n, "failures": failures,
            **percentiles(requests["latency_ms"] if n else [])}


def latency_by_endpoint(requests: pd.DataFrame) -> dict:
    if requests is None or len(requests) == 0 or "name" not in requests:
        return {}
    return {str(name): latency_summary(g) for name, g in requests.groupby("name", sort=True)}


# --------------------------------------------------------------------------- counters

def _sorted_tv(t, v) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=float)
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def reset_corrected(values) -> np.ndarray:
    """A cumulative counter made monotonic: a drop is a restart from zero."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return v
    d = np.diff(v)
    d = np.where(d < 0, v[1:], d)
    return np.concatenate([[v[0]], v[0] + np.cumsum(d)])


def covered_span(t, start: float | None, end: float | None) -> tuple[float, float] | None:
    """The part of [start, end] that the samples ``t`` cover, or None."""
    t = np.asarray(t, dtype=float)
    t = t[np.isfinite(t)]
    if t.size < 2:
        return None
    lo = t.min() if start is None else max(start, t.min())
    hi = t.max() if end is None else min(end, t.max())
    return (float(lo), float(hi)) if hi > lo else None


def counter_increase(t, v, start: float | None = None, end: float | None = None,
                     method: str = "linear") -> float | None:
    """Increase of a cumulative counter over [start, end] (clamped to the samples).

    ``linear`` interpolates the reset-corrected counter at the edges (CPU seconds,
    bytes, periods); ``step`` takes the last value at or before each edge (event
    counts such as oom_kills and restarts, which must stay whole numbers).
    """
    t, v = _sorted_tv(t, v)
    if t.size == 0:
        return None
    if t.size == 1:
        return 0.0 if method == "step" else None
    c = reset_corrected(v)
    if method == "step":
        def at(x):
            if x is None:
                return c[-1]
            i = np.searchsorted(t, x, side="right") - 1
            return c[max(i, 0)]
        lo_v = c[0] if start is None or start <= t[0] else at(start)
        hi_v = at(end)
        return finite_or_none(max(hi_v - lo_v, 0.0))
    span = covered_span(t, start, end)
    if span is None:
        return None
    lo, hi = span
    return finite_or_none(np.interp(hi, t, c) - np.interp(lo, t, c))


def rate_series(t, v) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rate of a cumulative counter between consecutive samples (midpoint
    times); an interval containing a reset is NaN."""
    t, v = _sorted_tv(t, v)
    if t.size < 2:
        return np.array([]), np.array([])
    dt = np.diff(t)
    dv = np.diff(v)
    r = np.where((dt > 0) & (dv >= 0), dv / np.where(dt > 0, dt, 1.0), np.nan)
    return (t[1:] + t[:-1]) / 2.0, r


# --------------------------------------------------------------------------- cpu

def cpu_ms_per_request(t, cpu_seconds, request_starts, start: float | None, end: float | None) -> dict:
    """CPU milliseconds per request over the steady window.

    The CPU delta and the request count use the same span: the part of the window
    the resource samples cover (so a late first sample does not inflate the figure).
    Returns {value, cpu_seconds, requests, span_s}; value None when not measurable.
    """
    out = {"value": None, "cpu_seconds": None, "requests": None, "span_s": None}
    span = covered_span(t, start, end)
    if span is None:
        return out
    lo, hi = span
    cpu = counter_increase(t, cpu_seconds, lo, hi)
    n = int(in_window(request_starts, lo, hi).sum())
    out.update(cpu_seconds=cpu, requests=n, span_s=hi - lo)
    if cpu is not None and n > 0:
        out["value"] = finite_or_none(cpu * 1000.0 / n)
    return out


def mean_cores(t, cpu_seconds, start: float | None, end: float | None) -> float | None:
    """Average cores used over the window: delta cpu seconds / elapsed seconds."""
    span = covered_span(t, start, end)
    if span is None:
        return None
    cpu = counter_increase(t, cpu_seconds, *span)
    return None if cpu is None else finite_or_none(cpu / (span[1] - span[0]))


def throttled_ratio(t, throttled_periods, start: float | None, end: float | None,
                    periods=None, cfs_period_s: float = CFS_PERIOD_S) -> float | None:
    """Share of CFS periods in the window that were throttled (see module docstring)."""
    span = covered_span(t, start, end)
    if span is None:
        return None
    thr = counter_increase(t, throttled_periods, *span)
    if thr is None:
        return None
    if periods is not None:
        total = counter_increase(t, periods, *span)
    else:
        total = (span[1] - span[0]) / cfs_period_s
    if not total:
        return None
    return finite_or_none(min(max(thr / total, 0.0), 1.0))


# --------------------------------------------------------------------------- memory

def mem_peak(mem_bytes) -> float | None:
    a = np.asarray(mem_bytes, dtype=float)
    a = a[np.isfinite(a)]
    return finite_or_none(a.max()) if a.size else None


def mem_steady(mem_bytes) -> float | None:
    """Median memory over the (already windowed) samples."""
    a = np.asarray(mem_bytes, dtype=float)
    a = a[np.isfinite(a)]
    return finite_or_none(np.median(a)) if a.size else None


def cumulative_requests_at(sample_times, request_starts, start: float | None = None) -> np.ndarray:
    """Requests started since ``start`` (and before each sample time), per sample."""
    rs = np.sort(np.asarray(request_starts, dtype=float))
    if start is not None:
        rs = rs[rs >= start]
    return np.searchsorted(rs, np.asarray(sample_times, dtype=float), side="right").astype(float)


def linear_slope(x, y) -> dict:
    """Ordinary least squares y = a + b x (scipy.stats.linregress).

    Returns {slope, stderr, intercept, r2, n}; slope None when x does not vary or
    there are fewer than 3 points (a standard error needs n - 2 >= 1).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"slope": None, "stderr": None, "intercept": None, "r2": None, "n": int(x.size)}
    if x.size < 3 or np.ptp(x) == 0:
        return out
    res = _sps.linregress(x, y)
    out.update(slope=finite_or_none(res.slope), stderr=finite_or_none(res.stderr),
               intercept=finite_or_none(res.intercept), r2=finite_or_none(res.rvalue ** 2))
    return out


def mem_slope_per_request(sample_t, mem_bytes, request_starts, start: float | None,
                          end: float | None, segments=None) -> dict:
    """Memory growth per request: OLS of mem_bytes on cumulative requests served in
    the steady window. Returns linear_slope()'s dict in bytes/request (plus
    ``segments``, the number of pieces fitted).

    ``segments`` (optional, one label per sample, e.g. the cumulative restart count)
    splits the series where the process restarted: memory drops to its start value
    there, so one slope is fitted with an intercept per segment (x and y are centred
    within each segment, segments with fewer than 2 samples dropped). The standard
    error then uses n - 2 degrees of freedom, ignoring the per-segment intercepts:
    slightly optimistic when there are many segments.
    """
    t = np.asarray(sample_t, dtype=float)
    m = in_window(t, start, end, closed_right=True)
    rs = np.asarray(request_starts, dtype=float)
    rs = rs[in_window(rs, start, end)]
    x = cumulative_requests_at(t[m], rs, start)
    y = np.asarray(mem_bytes, dtype=float)[m]
    if segments is None:
        out = linear_slope(x, y)
        out["segments"] = 1
        return out
    seg = np.asarray(segments, dtype=float)[m]
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(seg)
    x, y, seg = x[ok], y[ok], seg[ok]
    labels = np.unique(seg)
    if labels.size <= 1:
        out = linear_slope(x, y)
        out["segments"] = int(labels.size)
        return out
    xs, ys = [], []
    for lab in labels:
        k = seg == lab
        if k.sum() >= 2:
            xs.append(x[k] - x[k].mean())
            ys.append(y[k] - y[k].mean())
    if not xs:
        return {"slope": None, "stderr": None, "intercept": None, "r2": None, "n": 0, "segments": 0}
    out = linear_slope(np.concatenate(xs), np.concatenate(ys))
    out["intercept"] = None
    out["segments"] = len(xs)
    return out


# --------------------------------------------------------------------------- histograms

def _le(value) -> float:
    s = str(value).strip()
    if s in ("+Inf", "Inf", "inf", "+inf"):
        return math.inf
    return float(s)


def histogram_quantile(q: float, buckets) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets.

    ``buckets``: mapping or pairs of (upper bound ``le``, cumulative count); ``le``
    may be a string such as "+Inf". Linear interpolation inside the bucket, the lower
    bound of the first bucket is 0, a rank in the +Inf bucket returns the largest
    finite bound. None when there is no +Inf bucket or no observations.
    """
    items = buckets.items() if hasattr(buckets, "items") else buckets
    bs = sorted(((_le(le), float(c)) for le, c in items), key=lambda b: b[0])
    if len(bs) < 2 or not math.isinf(bs[-1][0]):
        return None
    # counts must be monotonic (they can dip when series are scraped at slightly different times)
    fixed, running = [], 0.0
    for ub, c in bs:
        running = max(running, c)
        fixed.append((ub, running))
    bs = fixed
    total = bs[-1][1]
    if total <= 0 or not math.isfinite(total):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * total
    b = next(i for i, (_, c) in enumerate(bs) if c >= rank)
    if b == len(bs) - 1:
        return bs[-2][0]
    if b == 0 and bs[0][0] <= 0:
        return bs[0][0]
    start, end, count = 0.0, bs[b][0], bs[b][1]
    if b > 0:
        start = bs[b - 1][0]
        count -= bs[b - 1][1]
        rank -= bs[b - 1][1]
    if count <= 0:
        return end
    return start + (end - start) * (rank / count)


def histogram_quantile_bucket(q: float, buckets) -> tuple[float, float] | None:
    """(lower, upper) bound of the bucket holding the q-quantile: where the true value
    lies; histogram_quantile only interpolates inside it. None as histogram_quantile."""
    items = buckets.items() if hasattr(buckets, "items") else buckets
    bs = sorted(((_le(le), float(c)) for le, c in items), key=lambda b: b[0])
    if len(bs) < 2 or not math.isinf(bs[-1][0]):
        return None
    running, fixed = 0.0, []
    for ub, c in bs:
        running = max(running, c)
        fixed.append((ub, running))
    total = fixed[-1][1]
    if total <= 0 or not math.isfinite(total):
        return None
    rank = min(max(q, 0.0), 1.0) * total
    b = next(i for i, (_, c) in enumerate(fixed) if c >= rank)
    return (fixed[b - 1][0] if b > 0 else 0.0, fixed[b][0])


def prom_series(payload) -> list[dict]:
    """Series of a Prometheus/VictoriaMetrics HTTP API answer (query or query_range):
    [{"metric": {...}, "t": ndarray, "v": ndarray}]. Unparseable input gives []."""
    if not isinstance(payload, dict):
        return []
    data = payload.get("data", payload)
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return []
    out = []
    for s in result:
        if not isinstance(s, dict):
            continue
        pts = s.get("values")
        if pts is None and "value" in s:
            pts = [s["value"]]
        tv = []
        for p in pts or []:
            try:
                tv.append((float(p[0]), float(p[1])))
            except (TypeError, ValueError, IndexError):
                continue
        arr = np.array(tv, dtype=float).reshape(-1, 2)
        out.append({"metric": s.get("metric") or {}, "t": arr[:, 0], "v": arr[:, 1]})
    return out


def histogram_increase_buckets(series: Sequence[dict], start: float | None, end: float | None) -> dict:
    """Per-``le`` increase of bucket counters over the window, summed across series
    sharing an ``le`` (i.e. ``sum by (le) (increase(bucket[window]))``)."""
    out: dict[float, float] = {}
    for s in series:
        le = s["metric"].get("le")
        if le is None:
            continue
        inc = counter_increase(s["t"], s["v"], start, end)
        if inc is None:
            continue
        key = _le(le)
        out[key] = out.get(key, 0.0) + inc
    return out


def server_quantile_from_buckets(payload, q: float, start: float | None, end: float | None) -> float | None:
    """The q-quantile (seconds) of a histogram stored as a query_range of its buckets."""
    buckets = histogram_increase_buckets(prom_series(payload), start, end)
    return finite_or_none(histogram_quantile(q, buckets)) if buckets else None


def series_values_in_window(payload, start: float | None, end: float | None) -> np.ndarray:
    """All sample values of all series of an API answer inside the window."""
    vals = [s["v"][in_window(s["t"], start, end, closed_right=True)] for s in prom_series(payload)]
    return np.concatenate(vals) if vals else np.array([])


# --------------------------------------------------------------------------- aggregation

def median_spread(values: Iterable) -> dict:
    """{median, min, max, n} of the non-None values (repeats), all None when none."""
    a = np.array([v for v in values if finite_or_none(v) is not None], dtype=float)
    if a.size == 0:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": finite_or_none(np.median(a)), "min": finite_or_none(a.min()), "max": finite_or_none(a.max()),
            "n": int(a.size)}


def ratio(a, b) -> float | None:
    a, b = finite_or_none(a), finite_or_none(b)
    if a is None or b is None or b == 0:
        return None
    return finite_or_none(a / b)


def change_pct(before, after) -> float | None:
    """(after - before) / before in percent; None when before is 0 or missing."""
    before, after = finite_or_none(before), finite_or_none(after)
    if before is None or after is None or before == 0:
        return None
    return finite_or_none((after - before) / abs(before) * 100.0)
