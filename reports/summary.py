"""summary.json: per-scenario figures, repeats aggregated, comparisons, what is missing.

A figure that was not measured is None (JSON null) and named in ``missing``; it is
never 0 and never silently absent.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reports import stats as S
from reports.load import Run, Scenario, collector_kind, component_role

SUMMARY_VERSION = 1
STACK_BUDGET_MB = 300.0
MANIFEST_KEYS = ("run_id", "command", "argv", "parameters", "git", "machine", "status",
                 "started_at", "finished_at")
SCRAPE_ENDPOINT = "/metrics"
SENSOR_ENDPOINT = "/sensor"

# keys compared between variants (before = baseline, after = optimized)
VARIANT_METRICS = (
    "cpu_ms_per_request", "cpu_ms_per_scrape", "service_cpu_cores", "throttled_ratio",
    "latency_ms.p50", "latency_ms.p95", "latency_ms.p99", "latency_ms.max",
    "scrape_latency_ms.p50", "scrape_latency_ms.p95", "scrape_latency_ms.p99", "scrape_latency_ms.max",
    "server_scrape_p50_ms", "server_scrape_p95_ms",
    "service_mem_peak_mb", "service_mem_steady_mb", "stack_mem_peak_mb", "stack_mem_steady_mb",
    "mem_slope_kb_per_request", "mem_per_scrape_mb", "scrape_alloc_peak_mb", "scrape_alloc_retained_mb",
    "throughput_rps", "requests", "failures",
    "oom_kills", "restarts", "oom_kills_total", "restarts_total", "collector_up_ratio",
)
# keys compared between collectors (a = prometheus, b = victoriametrics)
COLLECTOR_METRICS = (
    "collector_mem_peak_mb", "collector_mem_steady_mb", "collector_cpu_cores",
    "collector_cpu_ms_per_request", "collector_disk_write_bytes_per_s", "collector_disk_used_mb",
    "stack_mem_peak_mb", "stack_mem_steady_mb",
)


def _mb(x):
    return None if x is None else x / S.MIB


def _window(sc: Scenario, run_status: str | None, missing: list) -> tuple[float | None, float | None]:
    start, end = S._clean(sc.meta.get("steady_start")), S._clean(sc.meta.get("steady_end"))
    req, res = sc.requests, sc.resources
    last_seen = []
    if req is not None and len(req):
        last_seen.append(float(req["start"].max()))
    if res is not None and len(res):
        last_seen.append(float(res["t"].max()))
    if start is None or end is None:
        first = [float(req["start"].min())] if req is not None and len(req) else []
        if res is not None and len(res):
            first.append(float(res["t"].min()))
        missing.append("steady window (steady_start/steady_end) not recorded: the whole run is used, warm-up included")
        start = start if start is not None else (min(first) if first else None)
        end = end if end is not None else (np.nextafter(max(last_seen), np.inf) if last_seen else None)
    interrupted = (sc.meta.get("status") not in (None, "complete")) or (run_status == "interrupted")
    if interrupted and last_seen and end is not None and max(last_seen) < end:
        new_end = float(np.nextafter(max(last_seen), np.inf))
        missing.append(f"steady window cut short at {new_end - (start or new_end):.0f} s "
                       f"(scenario status '{sc.meta.get('status') or run_status}')")
        end = new_end
    return start, end


def _components(res: pd.DataFrame | None) -> dict:
    if res is None or len(res) == 0:
        return {}
    return {str(c): g for c, g in res.groupby("component", sort=True)}


def _stack_mem(res_w: pd.DataFrame) -> pd.Series | None:
    """Sum of stack (non-loadgen) memory at each sample time (components aligned by
    forward-fill on a 0.1 s grid)."""
    if res_w is None or len(res_w) == 0:
        return None
    r = res_w[[component_role(c) in ("service", "collector", "other") for c in res_w["component"]]]
    if len(r) == 0 or r["mem_bytes"].isna().all():
        return None
    p = r.assign(tk=(r["t"] * 10).round() / 10).pivot_table(index="tk", columns="component",
                                                             values="mem_bytes", aggfunc="max")
    p = p.sort_index().ffill().dropna()
    return p.sum(axis=1) if len(p) else None


def _scaled(x, unit):
    """x / unit, or None when x was not measurable (e.g. a standard error from 2 points)."""
    return None if x is None else x / unit


def short_path(path, roots=()) -> str:
    """A source path as people read it: 'waitress/task.py' for anything under
    site-packages, 'threading.py' for the standard library, repository-relative
    ('service/burden.py') under one of ``roots``, else the last two components
    (py-spy's top_functions.csv is already short and is left alone)."""
    p = str(path).replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in p:
            return p.split(marker, 1)[1]
    m = re.search(r"/lib/python\d+(\.\d+)?/(.+)$", p)
    if m:
        return m.group(2)
    if not p.startswith("/"):
        return p
    for r in roots:
        r = str(r).rstrip("/") + "/"
        if r != "/" and p.startswith(r):
            return p[len(r):]
    parts = [x for x in p.split("/") if x]
    return "/".join(parts[-2:])


def _int_or_none(x):
    try:
        return None if x is None or pd.isna(x) else int(x)
    except (TypeError, ValueError):
        return None


def _float_or_none(x):
    try:
        return None if x is None or pd.isna(x) else float(x)
    except (TypeError, ValueError):
        return None


def _alloc_sites(df: pd.DataFrame, roots, top: int) -> list[dict]:
    df = df.sort_values("size_bytes", ascending=False, kind="stable").head(top)
    out = []
    for _, r in df.iterrows():
        f = short_path(r["file"], roots)
        ln = _int_or_none(r["line"])
        out.append({"site": f"{f}:{ln}" if ln is not None else f, "file": f, "line": ln,
                    "size_mb": float(r["size_bytes"]) / S.MIB, "count": _int_or_none(r.get("count"))})
    return out


def profile_figures(sc: Scenario, missing: list, top_functions: int = 5, top_changes: int = 5,
                    top_sites: int = 3) -> dict:
    """What the profile files say: top functions by self time, the biggest changes against
    the baseline profile (top_functions_diff.csv), and the allocations of one traced
    /metrics scrape (allocation_peak.csv / allocation_retained.csv, sizes summed in MiB)."""
    roots = [sc.dir.parent.parent, Path.cwd()]     # results/<run>/.. /.. = the repository
    out: dict = {"profile_top_functions": None, "profile_diff": None, "profile_diff_before_top": None,
                 "scrape_alloc_peak_mb": None, "scrape_alloc_retained_mb": None,
                 "scrape_alloc_top_site": None, "scrape_alloc_peak_sites": None,
                 "scrape_alloc_retained_sites": None, "profile_errors": None}
    tf = sc.top_functions
    if tf is not None and len(tf):
        df = tf.assign(self_pct=pd.to_numeric(tf["self_pct"], errors="coerce"))
        df = df[df["self_pct"] > 0].sort_values("self_pct", ascending=False, kind="stable").head(top_functions)
        out["profile_top_functions"] = [
            {"function": str(r["function"]), "file": short_path(r["file"], roots) if pd.notna(r["file"]) else None,
             "line": _int_or_none(r["line"]), "self_pct": float(r["self_pct"]),
             "self_samples": _int_or_none(r["self_samples"])} for _, r in df.iterrows()]
    d = sc.top_functions_diff
    if d is not None and len(d):
        d = d.assign(delta_self_pct=pd.to_numeric(d["delta_self_pct"], errors="coerce"))

        def row(r):
            return {"function": str(r["function"]),
                    "file": short_path(r["file"], roots) if pd.notna(r["file"]) else None,
                    "status": str(r["status"]), "before_self_pct": _float_or_none(r["before_self_pct"]),
                    "after_self_pct": _float_or_none(r["after_self_pct"]),
                    "delta_self_pct": _float_or_none(r["delta_self_pct"])}
        ch = d[(d["status"] != "same") & (d["delta_self_pct"].abs() > 0)]
        ch = ch.reindex(ch["delta_self_pct"].abs().sort_values(ascending=False, kind="stable").index)
        out["profile_diff"] = [row(r) for _, r in ch.head(top_changes).iterrows()]
        b = pd.to_numeric(d["before_self_pct"], errors="coerce")
        if b.notna().any() and b.max() > 0:
            out["profile_diff_before_top"] = row(d.loc[b.idxmax()])
    pm = sc.profile_meta or {}
    errs = [str(e) for e in (pm.get("errors") or []) if "tracemalloc" in str(e) or "alloc" in str(e)]
    out["profile_errors"] = errs or None
    absent = []
    for stem, key, sites_key in (("allocation_peak", "scrape_alloc_peak_mb", "scrape_alloc_peak_sites"),
                                 ("allocation_retained", "scrape_alloc_retained_mb",
                                  "scrape_alloc_retained_sites")):
        a = getattr(sc, stem)
        if a is not None:
            out[key] = float(a["size_bytes"].sum()) / S.MIB
            out[sites_key] = _alloc_sites(a, roots, top_sites)
        else:
            absent.append((key, stem))
    if out["scrape_alloc_peak_sites"]:
        t = out["scrape_alloc_peak_sites"][0]
        out["scrape_alloc_top_site"] = {"site": t["site"], "size_mb": t["size_mb"], "count": t["count"]}
    if absent:
        keys = [k for k, _ in absent] + ([] if out["scrape_alloc_top_site"] else ["scrape_alloc_top_site"])
        if not sc.profile_dir:
            why = "no profile/ directory (tracemalloc of one /metrics scrape: run `make profile`)"
        else:
            why = (" and ".join(f"profile/{st}.csv" for _, st in absent) + " not found (the per-scrape "
                   "tracemalloc capture did not run" + (f": {errs[0]}" if errs else "") + ")")
        missing.append(f"{', '.join(keys)}: {why}")
    return out


def summarize_scenario(sc: Scenario, run_status: str | None = None) -> dict:
    """Every figure of one scenario directory (one repeat)."""
    missing: list[str] = []
    meta = sc.meta
    start, end = _window(sc, run_status, missing)
    req = sc.requests
    res = sc.resources
    out: dict = {
        "scenario": sc.name, "repeat": sc.repeat, "dir": sc.dir_name,
        "variant": sc.variant, "collector": sc.collector_name,
        "status": meta.get("status"), "engine": meta.get("engine"),
        "limits_enforced": meta.get("limits_enforced"),
        "limits": meta.get("limits"), "users": meta.get("users"),
        "scrape_timeout_s": meta.get("scrape_timeout_s"),
        "warmup_s": meta.get("warmup_s"),
        "window": {"steady_start": start, "steady_end": end},
        "duration_s": (end - start) if (start is not None and end is not None) else None,
    }
    if out["variant"] is None:
        missing.append("variant not recorded in scenario.json")
    if out["limits_enforced"] is False:
        missing.append("limits were not enforced (no cgroup limits): OOM kills and throttling "
                       "do not reflect the robot's limits")

    # ---- client side
    reqw = S.steady_requests(req, start, end) if req is not None else None
    if reqw is None:
        for k in ("requests", "failures", "throughput_rps"):
            out[k] = None
        out["latency_ms"] = S.percentiles([])
        out["scrape_latency_ms"] = S.percentiles([])
        out["latency_ms_by_endpoint"] = {}
        missing.append("client-side latency, requests, failures, throughput (no requests.csv.gz)")
    else:
        n = int(len(reqw))
        out["requests"] = n
        out["failures"] = int((reqw["ok"] == 0).sum())
        out["failure_ratio"] = (out["failures"] / n) if n else None
        out["throughput_rps"] = (n / out["duration_s"]) if out["duration_s"] else None
        out["latency_ms"] = S.percentiles(reqw["latency_ms"])
        out["latency_ms_by_endpoint"] = S.latency_by_endpoint(reqw)
        scr = reqw[reqw["name"] == SCRAPE_ENDPOINT]
        out["scrape_requests"] = int(len(scr))
        out["scrape_latency_ms"] = S.percentiles(scr["latency_ms"])
        if n == 0:
            missing.append("no requests in the steady window")
        if len(scr) == 0:
            missing.append(f"no {SCRAPE_ENDPOINT} requests in the steady window")

    # ---- server side (the service's own histogram, via the collector)
    out["server_scrape_p50_ms"] = None
    out["server_scrape_p95_ms"] = None
    bk = sc.collector.get("scrape_duration_buckets")
    qf = sc.collector.get("scrape_duration_p95")
    if bk is not None:
        p95 = S.server_quantile_from_buckets(bk, 0.95, start, end)
        p50 = S.server_quantile_from_buckets(bk, 0.50, start, end)
        out["server_scrape_p95_ms"] = None if p95 is None else p95 * 1000.0
        out["server_scrape_p50_ms"] = None if p50 is None else p50 * 1000.0
        if p95 is None:
            missing.append("server_scrape_p95_ms: collector/scrape_duration_buckets.json has no "
                           "observations in the steady window")
    elif qf is not None:
        v = S.series_values_in_window(qf, start, end)
        v = v[np.isfinite(v)]
        out["server_scrape_p95_ms"] = float(np.median(v) * 1000.0) if v.size else None
        if not v.size:
            missing.append("server_scrape_p95_ms: collector/scrape_duration_p95.json has no values in the window")
    else:
        missing.append("server_scrape_p95_ms: collector/scrape_duration_buckets.json not found")

    # ---- collector's view of the service
    up = sc.collector.get("up")
    if up is not None:
        v = S.series_values_in_window(up, start, end)
        out["collector_up_ratio"] = float(v.mean()) if v.size else None
    else:
        out["collector_up_ratio"] = None
        missing.append("collector_up_ratio: collector/up.json not found")
    csd = sc.collector.get("collector_scrape_duration")
    out["collector_scrape_duration_p95_s"] = None
    out["collector_scrapes_over_timeout"] = None
    if csd is not None:
        v = S.series_values_in_window(csd, start, end)
        if v.size:
            out["collector_scrape_duration_p95_s"] = S.percentiles(v)["p95"]
            to = S._clean(meta.get("scrape_timeout_s"))
            if to is not None:
                out["collector_scrapes_over_timeout"] = int((v >= to).sum())
    else:
        missing.append("collector_scrape_duration_p95_s: collector/collector_scrape_duration.json not found")

    # ---- resources
    comps = _components(res)
    roles = {c: component_role(c) for c in comps}
    service = next((c for c, r in roles.items() if r == "service"), None)
    coll = next((c for c, r in roles.items() if r == "collector"), None)
    out["service_component"] = service
    out["collector_component"] = coll
    starts = reqw["start"].to_numpy() if reqw is not None else np.array([])
    scrape_starts = (reqw.loc[reqw["name"] == SCRAPE_ENDPOINT, "start"].to_numpy()
                     if reqw is not None else np.array([]))
    cpu_by, cores_by, peak_by, steady_by, limit_by, cpus_by = {}, {}, {}, {}, {}, {}
    oom_by, rst_by, oom_tot_by, rst_tot_by, thr_by = {}, {}, {}, {}, {}
    for c, g in comps.items():
        t = g["t"].to_numpy()
        w = S.steady_samples(g, start, end)
        r = S.cpu_ms_per_request(t, g["cpu_seconds"], starts, start, end) if len(starts) else {"value": None}
        cpu_by[c] = r["value"]
        cores_by[c] = S.mean_cores(t, g["cpu_seconds"], start, end)
        peak_by[c] = _mb(S.mem_peak(w["mem_bytes"]))
        steady_by[c] = _mb(S.mem_steady(w["mem_bytes"]))
        lim = g["mem_limit_bytes"].dropna()
        limit_by[c] = _mb(float(lim.iloc[-1])) if len(lim) else None
        cp = g["cpus"].dropna()
        cpus_by[c] = float(cp.iloc[-1]) if len(cp) else None
        oom_by[c] = S.counter_increase(t, g["oom_kills"], start, end, method="step")
        rst_by[c] = S.counter_increase(t, g["restarts"], start, end, method="step")
        oom_tot_by[c] = S.counter_increase(t, g["oom_kills"], None, None, method="step")
        rst_tot_by[c] = S.counter_increase(t, g["restarts"], None, None, method="step")
        periods = g["nr_periods"] if "nr_periods" in g else (g["periods"] if "periods" in g else None)
        thr_by[c] = S.throttled_ratio(t, g["throttled_periods"], start, end, periods=periods)
    # fall back to scenario.json limits for components without limit columns
    for c, lim in (meta.get("limits") or {}).items():
        if isinstance(lim, dict):
            if limit_by.get(c) is None and lim.get("mem_limit_bytes"):
                limit_by[c] = _mb(float(lim["mem_limit_bytes"]))
            if cpus_by.get(c) is None and lim.get("cpus"):
                cpus_by[c] = float(lim["cpus"])

    def _int(x):
        return None if x is None else int(round(x))

    out["cpu_ms_per_request_by_component"] = cpu_by
    out["cpu_cores_by_component"] = cores_by
    out["mem_peak_mb"] = peak_by
    out["mem_steady_mb"] = steady_by
    out["mem_limit_mb"] = limit_by
    out["cpus_by_component"] = cpus_by
    out["oom_kills_by_component"] = {c: _int(v) for c, v in oom_by.items()}
    out["restarts_by_component"] = {c: _int(v) for c, v in rst_by.items()}
    out["oom_kills_total_by_component"] = {c: _int(v) for c, v in oom_tot_by.items()}
    out["restarts_total_by_component"] = {c: _int(v) for c, v in rst_tot_by.items()}
    out["throttled_ratio_by_component"] = thr_by

    def _sum(d):
        vals = [v for c, v in d.items() if roles.get(c) != "loadgen" and v is not None]
        return int(sum(vals)) if vals else None

    out["oom_kills"] = _sum(out["oom_kills_by_component"])
    out["restarts"] = _sum(out["restarts_by_component"])
    out["oom_kills_total"] = _sum(out["oom_kills_total_by_component"])
    out["restarts_total"] = _sum(out["restarts_total_by_component"])

    g = comps.get(service)
    out["cpu_ms_per_request"] = cpu_by.get(service)
    out["service_mem_peak_mb"] = peak_by.get(service)
    out["service_mem_steady_mb"] = steady_by.get(service)
    out["throttled_ratio"] = thr_by.get(service)
    out["service_cpu_cores"] = cores_by.get(service)
    out["cpu_ms_per_scrape"] = None
    out["mem_slope_kb_per_request"] = None
    out["mem_slope_stderr_kb_per_request"] = None
    out["mem_slope_r2"] = None
    out["mem_per_scrape_mb"] = None
    out["mem_per_scrape_stderr_mb"] = None
    if g is not None:
        t = g["t"].to_numpy()
        seg = g["restarts"].ffill().fillna(0).to_numpy() if g["restarts"].notna().any() else None
        if len(scrape_starts):
            out["cpu_ms_per_scrape"] = S.cpu_ms_per_request(t, g["cpu_seconds"], scrape_starts,
                                                            start, end)["value"]
        if len(starts):
            sl = S.mem_slope_per_request(t, g["mem_bytes"], starts, start, end, segments=seg)
            if sl["slope"] is not None:
                out["mem_slope_kb_per_request"] = sl["slope"] / S.KIB
                out["mem_slope_stderr_kb_per_request"] = _scaled(sl["stderr"], S.KIB)
                out["mem_slope_r2"] = sl["r2"]
        if len(scrape_starts):
            sl = S.mem_slope_per_request(t, g["mem_bytes"], scrape_starts, start, end, segments=seg)
            if sl["slope"] is not None:
                out["mem_per_scrape_mb"] = sl["slope"] / S.MIB
                out["mem_per_scrape_stderr_mb"] = _scaled(sl["stderr"], S.MIB)
        out["mem_slope_segments"] = sl.get("segments") if len(starts) else None
    elif res is not None:
        missing.append("no service component (sensor-service) in resources.csv")
    if res is None:
        missing.append("CPU, memory, OOM kills, restarts, throttling (no resources.csv)")
    elif g is not None and out["throttled_ratio"] is None:
        missing.append("throttled_ratio: no throttled_periods samples for the service")

    # ---- stack and collector
    if res is not None:
        sm = _stack_mem(S.steady_samples(res, start, end))
        out["stack_mem_peak_mb"] = _mb(float(sm.max())) if sm is not None else None
        out["stack_mem_steady_mb"] = _mb(float(sm.median())) if sm is not None else None
    else:
        out["stack_mem_peak_mb"] = out["stack_mem_steady_mb"] = None
    out["budget_mb"] = STACK_BUDGET_MB
    out["collector_mem_peak_mb"] = peak_by.get(coll)
    out["collector_mem_steady_mb"] = steady_by.get(coll)
    out["collector_cpu_cores"] = cores_by.get(coll)
    out["collector_cpu_ms_per_request"] = cpu_by.get(coll)
    out["collector_disk_write_bytes_per_s"] = None
    out["collector_disk_used_mb"] = None
    cg = comps.get(coll)
    if cg is not None:
        t = cg["t"].to_numpy()
        span = S.covered_span(t, start, end)
        if span and cg["disk_write_bytes"].notna().any():
            inc = S.counter_increase(t, cg["disk_write_bytes"], *span)
            out["collector_disk_write_bytes_per_s"] = None if inc is None else inc / (span[1] - span[0])
        du = S.steady_samples(cg, start, end)["disk_used_bytes"].dropna()
        out["collector_disk_used_mb"] = _mb(float(du.iloc[-1])) if len(du) else None
        if out["collector_disk_write_bytes_per_s"] is None:
            missing.append("collector_disk_write_bytes_per_s: no disk_write_bytes samples")
        if out["collector_disk_used_mb"] is None:
            missing.append("collector_disk_used_mb: no disk_used_bytes samples")
    elif res is not None:
        missing.append("no collector component in resources.csv")

    # ---- load generator
    lg = S._clean(meta.get("loadgen_cpu_seconds"))
    out["loadgen_cpu_seconds"] = lg
    out["loadgen_cpu_ms_per_request"] = (lg * 1000.0 / out["requests"]) if (lg is not None and out.get("requests")) else None
    if lg is None:
        missing.append("loadgen_cpu_seconds not recorded")

    # ---- profile
    out["has_profile"] = sc.top_functions is not None or bool(sc.profile_files)
    out["profile_files"] = [f"{sc.dir_name}/profile/{p.name}" for p in sc.profile_files]
    out.update(profile_figures(sc, missing))

    for key in ("requests", "failures", "throughput_rps", "cpu_ms_per_request", "mem_slope_kb_per_request",
                "oom_kills", "restarts"):
        if out.get(key) is None and not any(key in m for m in missing):
            missing.append(f"{key} not measured")
    if all(v is None for v in out["latency_ms"].values()) and reqw is not None:
        missing.append("latency_ms not measured (no requests in the window)")
    out["missing"] = missing + list(sc.missing)
    return out


# --------------------------------------------------------------------------- repeats

PROFILE_LISTS = ("profile_top_functions", "profile_diff", "profile_diff_before_top",
                 "scrape_alloc_top_site", "scrape_alloc_peak_sites", "scrape_alloc_retained_sites",
                 "profile_errors")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def get_path(d: dict, path: str):
    """d['a']['b'] for 'a.b'; endpoint names such as '/metrics' contain no dots."""
    cur = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def aggregate_repeats(items: list[dict]) -> dict:
    """One entry from repeats: numbers are medians, ``spread`` holds {key: [min, max]}."""
    if len(items) == 1:
        out = dict(items[0])
        out["repeats"] = 1
        out["repeat_dirs"] = [items[0]["dir"]]
        out["spread"] = {}
        return out
    skip = {"repeat", "window", "limits"}

    def merge(vals: list, path: str, spread: dict):
        present = [v for v in vals if v is not None]
        if not present:
            return None
        if all(isinstance(v, dict) for v in present):
            keys = []
            for v in present:
                keys += [k for k in v if k not in keys]
            return {k: merge([v.get(k) if isinstance(v, dict) else None for v in vals],
                             f"{path}.{k}" if path else k, spread) for k in keys}
        if all(_is_num(v) for v in present):
            ms = S.median_spread(present)
            if ms["min"] != ms["max"]:
                spread[path] = [ms["min"], ms["max"]]
            med = ms["median"]
            if all(isinstance(v, int) for v in present) and med is not None and float(med).is_integer():
                med = int(med)
            return med
        return present[0]

    spread: dict = {}
    out = {}
    keys = []
    for it in items:
        keys += [k for k in it if k not in keys]
    for k in keys:
        vals = [it.get(k) for it in items]
        if k in skip:
            out[k] = items[0].get(k)
        elif k == "missing":
            seen = []
            for it in items:
                for m in it.get("missing", []):
                    tagged = m if len(items) == 1 else f"{it['dir']}: {m}"
                    if tagged not in seen:
                        seen.append(tagged)
            out[k] = seen
        elif k in ("dir", "profile_files"):
            out[k] = items[0].get(k)
        elif k in PROFILE_LISTS:            # from the first repeat that has them
            out[k] = next((it.get(k) for it in items if it.get(k) is not None), None)
        else:
            out[k] = merge(vals, k, spread)
    out["repeats"] = len(items)
    out["repeat_dirs"] = [it["dir"] for it in items]
    out["spread"] = spread
    return out


# --------------------------------------------------------------------------- comparisons

def _compare(a_name: str, a: dict, b_name: str, b: dict, keys, kind: str) -> dict:
    keys = list(keys)
    if kind == "variant":
        comps = []
        for s in (a, b):
            comps += [c for c in (s.get("mem_peak_mb") or {}) if c not in comps and component_role(c) != "loadgen"]
        comps.sort(key=lambda c: (component_role(c) != "service", c))
        keys += [f"{k}.{c}" for c in comps for k in ("mem_peak_mb", "mem_steady_mb")]
    metrics = {}
    for k in keys:
        va, vb = get_path(a, k), get_path(b, k)
        metrics[k] = {"a": va, "b": vb, "ratio": S.ratio(va, vb), "change_pct": S.change_pct(va, vb)}
    return {"kind": kind, "a": a_name, "b": b_name, "metrics": metrics}


def comparisons(scenarios: dict) -> dict:
    """Variant pairs (a = baseline, b = optimized, same collector) and collector pairs
    (a = prometheus, b = victoriametrics, same variant). ratio = a / b, change_pct =
    (b - a) / a."""
    by = {}
    for name, s in scenarios.items():
        by.setdefault((s.get("variant"), collector_kind(s.get("collector"))), name)
    out = {}
    for ck in ("vm", "prom"):
        a, b = by.get(("baseline", ck)), by.get(("optimized", ck))
        if a and b:
            out[f"{a} vs {b}"] = _compare(a, scenarios[a], b, scenarios[b], VARIANT_METRICS, "variant")
    for v in ("optimized", "baseline"):
        a, b = by.get((v, "prom")), by.get((v, "vm"))
        if a and b:
            out[f"{a} vs {b}"] = _compare(a, scenarios[a], b, scenarios[b], COLLECTOR_METRICS, "collector")
    return out


# --------------------------------------------------------------------------- whole run

def build_summary(run: Run, now: float | None = None) -> dict:
    per_dir = [summarize_scenario(sc, run.status) for sc in run.scenarios]
    groups: dict[str, list] = {}
    for s in per_dir:
        groups.setdefault(s["scenario"], []).append(s)
    scenarios = {name: aggregate_repeats(items) for name, items in groups.items()}
    missing = list(run.missing)
    for name, s in scenarios.items():
        missing += [f"{name}: {m}" for m in s.get("missing", [])]
    comps = comparisons(scenarios)
    if not any(c["kind"] == "variant" for c in comps.values()):
        missing.append("no baseline vs optimized comparison (needs baseline and optimized scenarios "
                       "with the same collector)")
    if not any(c["kind"] == "collector" for c in comps.values()):
        missing.append("no VictoriaMetrics vs Prometheus comparison (needs both collectors with the "
                       "same variant)")
    man = {k: run.manifest.get(k) for k in MANIFEST_KEYS if k in run.manifest}
    return {
        "summary_version": SUMMARY_VERSION,
        "run_id": run.run_id,
        "run_dir": str(run.dir),
        "status": run.status,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time())),
        "budget_mb": STACK_BUDGET_MB,
        "manifest": man,
        "scenarios": scenarios,
        "comparisons": comps,
        "missing": missing,
    }


def scenario_order(summary: dict) -> list[str]:
    """baseline before optimized, VictoriaMetrics before Prometheus, then by name."""
    def key(n):
        s = summary["scenarios"][n]
        v = {"baseline": 0, "optimized": 1}.get(s.get("variant"), 2)
        c = {"vm": 0, "prom": 1}.get(collector_kind(s.get("collector")), 2)
        return (v, c, n)
    return sorted(summary.get("scenarios", {}), key=key)


def write_atomic(path, data: bytes | str) -> Path:
    """Write a file atomically: a temporary file in the same directory, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)            # mkstemp's 0600 would hide a report from its readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def jsonable(x):
    """numpy scalars to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, Path):
        return str(x)
    return x


def write_summary(summary: dict, path) -> Path:
    return write_atomic(path, json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n")
