"""summary.json: per-scenario figures, repeats aggregated, comparisons, what is missing.

A figure that was not measured is None (JSON null) and named in ``missing``; it is
never 0 and never silently absent.
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reports import contract
from reports import figures as FIG
from reports import stats as S
from reports.budgets import stack_budget_mb
from reports.load import Run, Scenario, collector_kind
from reports.view import SCRAPE_ENDPOINT, ScenarioView

SUMMARY_VERSION = contract.SUMMARY_VERSION
MANIFEST_KEYS = ("run_id", "command", "argv", "parameters", "git", "machine", "status",
                 "started_at", "finished_at")

# keys compared between variants (before = baseline, after = optimized)
VARIANT_METRICS = (
    "cpu_ms_per_request", "cpu_ms_per_scrape", "service_cpu_cores", "throttled_ratio",
    "latency_ms.p50", "latency_ms.p95", "latency_ms.p99", "latency_ms.max",
    "scrape_latency_ms.p50", "scrape_latency_ms.p95", "scrape_latency_ms.p99", "scrape_latency_ms.max",
    "scrape_latency_from_intended_ms.p50", "scrape_latency_from_intended_ms.p95",
    "scrape_latency_from_intended_ms.p99", "latency_from_intended_ms.p99",
    "server_scrape_p50_ms", "server_scrape_p95_ms",
    "service_mem_peak_mb", "service_mem_peak_kernel_mb", "service_mem_steady_mb",
    "stack_mem_peak_mb", "stack_mem_steady_mb",
    "mem_slope_kb_per_request", "mem_per_scrape_mb", "scrape_alloc_peak_mb", "scrape_alloc_retained_mb",
    "throughput_rps", "requests_intended", "requests", "requests_completed", "failures",
    "metrics_failure_ratio", "oom_kills", "restarts", "oom_kills_total", "restarts_total",
    "collector_up_ratio",
)
# keys compared between collectors (a = prometheus, b = victoriametrics)
COLLECTOR_METRICS = (
    "collector_mem_peak_mb", "collector_mem_steady_mb", "collector_cpu_cores",
    "collector_cpu_ms_per_request", "collector_disk_write_bytes_per_s", "collector_disk_used_mb",
    "stack_mem_peak_mb", "stack_mem_steady_mb",
)


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


def scenario_facts(v: ScenarioView) -> dict:
    """What the scenario was: names, limits, the window (no figures)."""
    sc, meta = v.sc, v.meta
    return {"scenario": sc.name, "repeat": sc.repeat, "dir": sc.dir_name,
            "variant": sc.variant, "collector": sc.collector_name,
            "status": meta.get("status"), "engine": meta.get("engine"),
            "limits_enforced": meta.get("limits_enforced"), "limits": meta.get("limits"),
            "cgroup_version": meta.get("cgroup_version"), "cgroup_view": meta.get("cgroup_view"),
            "counters_source": meta.get("counters_source"),
            "users": meta.get("users"), "scrape_timeout_s": meta.get("scrape_timeout_s"),
            "warmup_s": meta.get("warmup_s"),
            "window": {"steady_start": v.start, "steady_end": v.end}, "duration_s": v.duration_s,
            "components": dict(v.roles), "service_component": v.service,
            "collector_component": v.collector, "peak_reset_at": meta.get("peak_reset_at"),
            "loadgen_cpu_seconds": S.finite_or_none(meta.get("loadgen_cpu_seconds"))}


def component_breakdown(v: ScenarioView) -> dict:
    """Per-component figures (the catalogue's estimators, evaluated for every component)."""
    out = {k: {} for k in ("cpu_ms_per_request_by_component", "cpu_cores_by_component", "mem_peak_mb",
                           "mem_peak_kernel_mb", "mem_steady_mb", "mem_limit_mb", "cpus_by_component",
                           "oom_kills_by_component", "restarts_by_component",
                           "oom_kills_total_by_component", "restarts_total_by_component",
                           "throttled_ratio_by_component")}
    starts = FIG._sent_starts(v)
    for c, g in v.components.items():
        w = v.steady_samples(c)
        out["cpu_ms_per_request_by_component"][c] = FIG._cpu_ms_per(v, c, starts)
        out["cpu_cores_by_component"][c] = S.mean_cores(g["t"].to_numpy(), g["cpu_seconds"], v.start, v.end)
        out["mem_peak_mb"][c] = FIG._mb(S.mem_peak(w["mem_bytes"]))
        out["mem_steady_mb"][c] = FIG._mb(S.mem_steady(w["mem_bytes"]))
        lim, cp = g["mem_limit_bytes"].dropna(), g["cpus"].dropna()
        out["mem_limit_mb"][c] = FIG._mb(float(lim.iloc[-1])) if len(lim) else None
        out["cpus_by_component"][c] = float(cp.iloc[-1]) if len(cp) else None
        out["oom_kills_by_component"][c] = FIG._events(v, c, "oom_kills", FIG.STEADY)
        out["restarts_by_component"][c] = FIG._events(v, c, "restarts", FIG.STEADY)
        out["oom_kills_total_by_component"][c] = FIG._events(v, c, "oom_kills", FIG.SCENARIO)
        out["restarts_total_by_component"][c] = FIG._events(v, c, "restarts", FIG.SCENARIO)
        out["throttled_ratio_by_component"][c] = FIG.throttled_ratio_of(lambda _v, c=c: c)(v)
    role_of = {"service": FIG.mem_peak_kernel_of("service"), "collector": FIG.mem_peak_kernel_of("collector")}
    out["mem_peak_kernel_mb"] = {c: role_of[r](v) for c, r in v.roles.items() if r in role_of}
    for c, lim in (v.meta.get("limits") or {}).items():     # scenario.json limits fill the gaps
        if isinstance(lim, dict):
            if out["mem_limit_mb"].get(c) is None and lim.get("mem_limit_bytes"):
                out["mem_limit_mb"][c] = FIG._mb(float(lim["mem_limit_bytes"]))
            if out["cpus_by_component"].get(c) is None and lim.get("cpus"):
                out["cpus_by_component"][c] = float(lim["cpus"])
    return out


def labels(v: ScenarioView) -> dict:
    """How some figures were obtained, where it depends on what the run recorded."""
    return {"cpu_ms_per_scrape_basis": FIG.cpu_ms_per_scrape_basis(v),
            "throttled_ratio_basis": FIG.throttled_ratio_basis(v),
            "service_mem_peak_kernel_window": FIG.mem_peak_kernel_window(v),
            "request_counts_by_endpoint": FIG.request_counts_by_endpoint(v),
            "latency_ms_by_endpoint": FIG.latency_by_endpoint(v),
            **FIG.mem_slope(v), **FIG.mem_per_scrape(v)}


def what_is_missing(v: ScenarioView, out: dict) -> list[str]:
    """Plain-words reasons for every figure that is None."""
    sc, m = v.sc, []
    if out["variant"] is None:
        m.append("variant not recorded in scenario.json")
    if out["limits_enforced"] is False:
        m.append("limits were not enforced (no cgroup limits): OOM kills and throttling do not reflect "
                 "the robot's limits")
    if out.get("counters_source") == "docker stats":
        m.append("no container cgroup was readable (Docker Desktop or rootless?): memory from `docker stats`; "
                 "CPU, throttling, OOM kills and the memory high-water mark not measured")
    if sc.requests is None:
        m.append("client-side latency, requests, failures, throughput (no requests.csv.gz)")
    else:
        if not out["requests_intended"]:
            m.append("no requests in the steady window")
        if not out["scrape_requests"]:
            m.append(f"no {SCRAPE_ENDPOINT} requests in the steady window")
    if "scrape_duration_buckets" not in sc.collector:
        m.append("server_scrape_p95_ms: collector/scrape_duration_buckets.json not found")
    elif out["server_scrape_p95_ms"] is None:
        m.append("server_scrape_p95_ms: collector/scrape_duration_buckets.json has no observations in "
                 "the steady window")
    if "up" not in sc.collector:
        m.append("collector_up_ratio: collector/up.json not found")
    if "collector_scrape_duration" not in sc.collector:
        m.append("collector_scrape_duration_p95_s: collector/collector_scrape_duration.json not found")
    if sc.resources is None:
        m.append("CPU, memory, OOM kills, restarts, throttling (no resources.csv)")
    else:
        if v.service is None:
            m.append("no service component (sensor-service) in resources.csv")
        elif out["throttled_ratio"] is None:
            m.append("throttled_ratio: no throttled_periods samples for the service")
        if v.service is not None and out["service_mem_peak_kernel_mb"] is None:
            m.append("service_mem_peak_kernel_mb: resources.csv has no mem_peak_bytes (older sampler)")
        if v.collector is None:
            m.append("no collector component in resources.csv")
        else:
            if out["collector_disk_write_bytes_per_s"] is None:
                m.append("collector_disk_write_bytes_per_s: no disk_write_bytes samples")
            if out["collector_disk_used_mb"] is None:
                m.append("collector_disk_used_mb: no disk_used_bytes samples")
    if out["loadgen_cpu_seconds"] is None:
        m.append("loadgen_cpu_seconds not recorded")
    for key in ("requests", "failures", "throughput_rps", "cpu_ms_per_request", "mem_slope_kb_per_request",
                "oom_kills", "restarts"):
        if out.get(key) is None and not any(key in x for x in m):
            m.append(f"{key} not measured")
    return m


def summarize_scenario(sc: Scenario, run_status: str | None = None) -> dict:
    """Every figure of one scenario directory (one repeat): facts, the catalogue's figures,
    per-component breakdowns, labels, profile figures, and what is missing."""
    v = ScenarioView(sc, run_status)
    out = scenario_facts(v)
    out.update(FIG.evaluate(v))
    out.update(component_breakdown(v))
    out.update(labels(v))
    out["budget_mb"] = stack_budget_mb()
    out["has_profile"] = sc.top_functions is not None or bool(sc.profile_files)
    out["profile_files"] = [f"{sc.dir_name}/profile/{p.name}" for p in sc.profile_files]
    missing = list(v.missing)
    out.update(profile_figures(sc, missing))
    out["missing"] = missing + what_is_missing(v, out) + list(sc.missing)
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
    # min–max of n repeats holds the median with probability 1 − 2^(1−n) (distribution-free)
    out["spread_confidence"] = 1.0 - 2.0 ** (1 - len(items))
    return out


# --------------------------------------------------------------------------- comparisons

def _compare(a_name: str, a: dict, b_name: str, b: dict, keys, kind: str) -> dict:
    keys = list(keys)
    if kind == "variant":
        roles = {**(a.get("components") or {}), **(b.get("components") or {})}
        comps = []
        for s in (a, b):
            comps += [c for c in (s.get("mem_peak_mb") or {}) if c not in comps and roles.get(c) != "loadgen"]
        comps.sort(key=lambda c: (roles.get(c) != "service", c))
        keys += [f"{k}.{c}" for c in comps for k in ("mem_peak_mb", "mem_steady_mb")]
    metrics = {}
    for k in keys:
        va, vb = get_path(a, k), get_path(b, k)
        metrics[k] = {"a": va, "b": vb, "ratio": S.ratio(va, vb), "change_pct": S.change_pct(va, vb),
                      "no_change": va is not None and va == vb}
        for side, s in (("a", a), ("b", b)):
            sp = (s.get("spread") or {}).get(k)
            if sp:
                metrics[k][f"{side}_spread"] = sp
        if k == "server_scrape_p95_ms":
            metrics[k]["a_bucket"] = a.get("server_scrape_p95_bucket_ms")
            metrics[k]["b_bucket"] = b.get("server_scrape_p95_bucket_ms")
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
        "budget_mb": stack_budget_mb(),
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
    """summary.json through the results contract (versioned, atomic)."""
    return contract.write_summary(jsonable(summary), path)
