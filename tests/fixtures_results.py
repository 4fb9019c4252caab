"""A small, realistic, synthetic results directory with known answers.

``build_run(root)`` writes ``root/<run-id>/`` in the results-contract layout
(manifest.json, <scenario>/{scenario.json, requests.csv.gz, resources.csv,
collector/*.json, profile/...}) and returns (run_dir, expected), where
``expected[<scenario dir>]`` holds the figures reports/ must compute from it.

Construction (per scenario, t in seconds after T0):
* warm-up 0-10 s, steady window [10, 70), data until 72 s;
* /metrics every 0.5 s, /sensor every 0.1 s -> 120 + 600 requests in the window;
* service CPU grows at a constant rate (cores), so CPU per request is exact;
* optimized service memory = 30 MiB + slope x (requests since steady_start) + noise;
* baseline service memory leaks 0.5 MiB per /metrics scrape and is OOM-killed
  (and restarted) when it passes its 50 MiB limit: at 30 s and 60 s;
* the service histogram puts, per 5 s, 9 scrapes in (0.25, 0.5] s and 1 in
  (1, 2.5] s (baseline) -> p95 = 1.75 s; optimized: all in (0.005, 0.01] -> 9.75 ms.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

T0 = 1_700_000_000.0
WARMUP = 10.0
DURATION = 60.0
TAIL = 2.0
MIB = 1048576.0
LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]

SCENARIOS = {
    "baseline-vm": {"variant": "baseline", "collector": "victoriametrics"},
    "optimized-vm": {"variant": "optimized", "collector": "victoriametrics"},
    "optimized-prom": {"variant": "optimized", "collector": "prometheus"},
}
SERVICE_CPU = {"baseline": 0.45, "optimized": 0.02}     # cores
COLLECTOR = {"victoriametrics": {"mem": 60 * MIB, "cpu": 0.03, "disk": 20_000.0, "used0": 2 * MIB},
             "prometheus": {"mem": 110 * MIB, "cpu": 0.08, "disk": 120_000.0, "used0": 8 * MIB}}
OPT_SLOPE_BYTES = 2048.0          # bytes per request (optimized service)
BASE_LEAK = 0.5 * MIB             # bytes per /metrics scrape (baseline service)
THROTTLED_PER_S = {"baseline": 3.0, "optimized": 0.0}
PERIODS_PER_S = 6.0               # nr_periods: the cgroup is runnable in 6 of 10 CFS periods a second
SCRAPE_SPIKE = 5 * MIB            # a scrape temporary the 1 Hz samples miss, the kernel peak catches
SCRAPE_DELAY_S = 0.2              # baseline scrapes leave this late (latency from intended start)
# tracemalloc of one /metrics scrape (profile/allocation_{peak,retained}.csv): file, line, bytes, count
REPO = "/home/robot/edgebench"
ALLOC_SITES = {
    "baseline": {
        "allocation_peak": [(f"{REPO}/service/burden.py", 26, 10_000_098, 2),
                            (f"{REPO}/.venv/lib/python3.11/site-packages/prometheus_client/exposition.py",
                             309, 524_288, 400),
                            ("/usr/lib/python3.11/threading.py", 265, 6_840, 18),
                            (f"{REPO}/.venv/lib/python3.11/site-packages/waitress/task.py", 558, 2_280, 19)],
        "allocation_retained": [(f"{REPO}/service/burden.py", 50, 1_048_576, 1),
                                ("/usr/lib/python3.11/threading.py", 265, 1_140, 3)]},
    "optimized": {
        "allocation_peak": [(f"{REPO}/.venv/lib/python3.11/site-packages/prometheus_client/exposition.py",
                             309, 40_960, 352),
                            (f"{REPO}/.venv/lib/python3.11/site-packages/waitress/task.py", 558, 6_480, 54)],
        "allocation_retained": [(f"{REPO}/.venv/lib/python3.11/site-packages/waitress/task.py", 558, 2_048, 16)]},
}


def _prom_matrix(series: list[tuple[dict, list[tuple[float, float]]]]) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": m, "values": [[t, repr(float(v))] for t, v in pts]} for m, pts in series]}}


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def build_scenario(run_dir: Path, name: str, repeat: int = 1, *, end_s: float | None = None,
                   status: str = "complete", old_format: bool = False, profile: bool = True,
                   seed: int = 0) -> dict:
    """Write one scenario directory; return its expected figures."""
    spec = SCENARIOS[name]
    variant, collector = spec["variant"], spec["collector"]
    dname = name if repeat == 1 else f"{name}.r{repeat}"
    d = run_dir / dname
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed + 17 * repeat + len(name))
    end_s = WARMUP + DURATION + TAIL if end_s is None else end_s
    s0, s1 = T0 + WARMUP, T0 + WARMUP + DURATION
    cpu_rate = SERVICE_CPU[variant] * (1 + 0.1 * (repeat - 1))

    # ---- requests
    m_starts = T0 + np.arange(0, int(end_s * 2)) / 2.0
    s_starts = T0 + np.arange(0, int(end_s * 10)) / 10.0
    if variant == "baseline":
        m_lat = 300.0 + 50.0 * rng.random(m_starts.size)
        fail = (np.arange(m_starts.size) % 20) == 7
        m_lat[fail] = 4000.0
        s_lat = 200.0 + 100.0 * rng.random(s_starts.size)
    else:
        m_lat = 5.0 + 3.0 * rng.random(m_starts.size)
        fail = np.zeros(m_starts.size, dtype=bool)
        s_lat = 2.0 + 2.0 * rng.random(s_starts.size)
    req = pd.concat([
        pd.DataFrame({"start": m_starts, "name": "/metrics", "latency_ms": m_lat,
                      "ok": (~fail).astype(int), "bytes": 4200, "status_code": np.where(fail, 0, 200)}),
        pd.DataFrame({"start": s_starts, "name": "/sensor", "latency_ms": s_lat, "ok": 1,
                      "bytes": 80, "status_code": 200}),
    ]).sort_values("start", kind="stable")
    # open-loop columns: every row is an intended request; the baseline's scrapers fall
    # behind: every 20th scrape (index 13) is never sent, the others leave 0.2 s late
    req["intended"] = req["start"]
    req["sent"] = 1
    if variant == "baseline":
        late = req["name"] == "/metrics"
        skipped = late & ((((req["intended"] - T0) * 2).round().astype(int) % 20) == 13)
        req.loc[late, "start"] = req.loc[late, "intended"] + SCRAPE_DELAY_S
        req.loc[skipped, ["start", "latency_ms", "bytes"]] = np.nan
        req.loc[skipped, ["ok", "status_code", "sent"]] = 0
    if old_format:
        req = req.drop(columns=["status_code", "bytes", "intended", "sent"])
        req["start"] = req["start"].fillna(req["start"].ffill())
    with gzip.open(d / "requests.csv.gz", "wt") as f:
        req.to_csv(f, index=False)
    col = "start" if old_format else "intended"
    win = req[(req[col] >= s0) & (req[col] < min(s1, T0 + end_s + 1))]

    # ---- resources, one sample per second
    ts = T0 + np.arange(0, int(end_s) + 1, dtype=float)
    all_starts = np.sort(req["start"].to_numpy())
    rows = []
    oom = restarts = 0
    restart_t = T0
    mem_service = []
    for t in ts:
        if variant == "baseline":
            sent_scrapes = m_starts[(np.arange(m_starts.size) % 20) != 13]     # never-sent ones leak nothing
            n_scr = np.count_nonzero((sent_scrapes > restart_t) & (sent_scrapes <= t))
            mem = 20 * MIB + BASE_LEAK * n_scr
            if mem > 50 * MIB:
                oom += 1
                restarts += 1
                restart_t = t
                mem = 20 * MIB
        else:
            n_req = np.count_nonzero((all_starts >= s0) & (all_starts <= t))
            mem = 30 * MIB + OPT_SLOPE_BYTES * n_req + rng.normal(0, 40_000)
        mem_service.append((t, mem, oom, restarts))
        since = [m for tt, m, _, _ in mem_service if tt >= s0] if t >= s0 else [m for _, m, _, _ in mem_service]
        kernel_peak = max(since) + SCRAPE_SPIKE
        rows.append({"t": t, "component": "sensor-service", "mem_bytes": mem, "rss_bytes": mem * 1.1,
                     "cpu_seconds": cpu_rate * (t - T0),
                     "throttled_periods": THROTTLED_PER_S[variant] * (t - T0),
                     "throttled_seconds": THROTTLED_PER_S[variant] * 0.02 * (t - T0),
                     "nr_periods": PERIODS_PER_S * (t - T0), "mem_peak_bytes": kernel_peak,
                     "oom_kills": oom, "restarts": restarts, "mem_limit_bytes": 50 * MIB, "cpus": 0.5,
                     "disk_write_bytes": 0, "disk_used_bytes": np.nan})
        c = COLLECTOR[collector]
        rows.append({"t": t, "component": collector,
                     "mem_bytes": c["mem"] + 2 * MIB * np.sin((t - T0) / 7.0),
                     "rss_bytes": c["mem"] * 1.05, "cpu_seconds": c["cpu"] * (t - T0),
                     "throttled_periods": 0, "throttled_seconds": 0.0, "oom_kills": 0, "restarts": 0,
                     "nr_periods": PERIODS_PER_S * (t - T0), "mem_peak_bytes": c["mem"] + 3 * MIB,
                     "mem_limit_bytes": 150 * MIB, "cpus": 0.5,
                     "disk_write_bytes": c["disk"] * (t - T0),
                     "disk_used_bytes": c["used0"] + 10_000 * (t - T0)})
    res = pd.DataFrame(rows)
    if old_format:
        res = res.drop(columns=["disk_write_bytes", "disk_used_bytes", "rss_bytes", "nr_periods",
                                "mem_peak_bytes"])
    res.to_csv(d / "resources.csv", index=False)

    # ---- collector answers (query_range, 5 s step)
    steps = T0 + np.arange(0, int(end_s) + 1, 5, dtype=float)
    k = np.arange(steps.size, dtype=float)
    if variant == "baseline":
        per_step = {"0.5": 9, "2.5": 1}
    else:
        per_step = {"0.01": 10}
    buckets = []
    for le in LE:
        cum_per_step = sum(v for b, v in per_step.items() if float(b) <= (np.inf if le == "+Inf" else float(le)))
        buckets.append(({"__name__": "sensor_scrape_duration_seconds_bucket", "job": "sensor", "le": le},
                        list(zip(steps, cum_per_step * k))))
    cdir = d / "collector"
    _write_json(cdir / "scrape_duration_buckets.json", _prom_matrix(buckets))
    oom_times = [t for (t, _, o, _), prev in zip(mem_service[1:], mem_service[:-1]) if o > prev[2]]
    up = [(t, 0.0 if any(abs(t - ot) < 2.5 for ot in oom_times) else 1.0) for t in steps]
    _write_json(cdir / "up.json", _prom_matrix([({"job": "sensor", "instance": "127.0.0.1:8000"}, up)]))
    sd = [(t, (4.0 if variant == "baseline" and i % 4 == 1 else (0.3 if variant == "baseline" else 0.01)))
          for i, t in enumerate(steps)]
    _write_json(cdir / "collector_scrape_duration.json",
                _prom_matrix([({"job": "sensor", "instance": "127.0.0.1:8000"}, sd)]))
    _write_json(cdir / "process_resident_memory.json", _prom_matrix(
        [({"job": "sensor"}, [(t, m) for t, m, _, _ in mem_service][::5])]))

    # ---- profile
    if profile and collector == "victoriametrics":
        pdir = d / "profile"
        pdir.mkdir()
        if variant == "baseline":
            funcs = [("burn_cpu", "service/baseline.py", 42, 81.0), ("copy_blob", "service/baseline.py", 57, 9.5),
                     ("generate_latest", "prometheus_client/exposition.py", 230, 4.2),
                     ("handle", "waitress/task.py", 120, 2.1)]
        else:
            funcs = [("generate_latest", "prometheus_client/exposition.py", 230, 38.0),
                     ("handle", "waitress/task.py", 120, 21.0), ("read_sensor", "service/optimized.py", 30, 12.0),
                     ("json_dumps", "json/encoder.py", 199, 8.0)]
        pd.DataFrame([{"function": f, "file": fi, "line": ln, "self_pct": p, "total_pct": min(100, p * 1.2),
                       "self_samples": int(p * 10), "total_samples": int(min(100, p * 1.2) * 10)}
                      for f, fi, ln, p in funcs]).to_csv(pdir / "top_functions.csv", index=False)
        if variant == "optimized":
            pd.DataFrame([
                {"function": "burn_cpu", "file": "service/baseline.py", "status": "gone", "before_self_pct": 81.0,
                 "after_self_pct": 0.0, "delta_self_pct": -81.0},
                {"function": "generate_latest", "file": "prometheus_client/exposition.py", "status": "grew",
                 "before_self_pct": 4.2, "after_self_pct": 38.0, "delta_self_pct": 33.8},
                {"function": "handle", "file": "waitress/task.py", "status": "grew", "before_self_pct": 2.1,
                 "after_self_pct": 21.0, "delta_self_pct": 18.9},
                {"function": "read_sensor", "file": "service/optimized.py", "status": "new",
                 "before_self_pct": 0.0, "after_self_pct": 12.0, "delta_self_pct": 12.0},
                {"function": "copy_blob", "file": "service/baseline.py", "status": "gone", "before_self_pct": 9.5,
                 "after_self_pct": 0.0, "delta_self_pct": -9.5},
                {"function": "json_dumps", "file": "json/encoder.py", "status": "new", "before_self_pct": 0.0,
                 "after_self_pct": 8.0, "delta_self_pct": 8.0},
                {"function": "idle", "file": "x.py", "status": "same", "before_self_pct": 1.0,
                 "after_self_pct": 1.0, "delta_self_pct": 0.0},
            ]).to_csv(pdir / "top_functions_diff.csv", index=False)
        for stem, sites in ALLOC_SITES[variant].items():
            pd.DataFrame([{"file": f, "line": ln, "size_bytes": b, "count": c} for f, ln, b, c in sites]) \
                .to_csv(pdir / f"{stem}.csv", index=False)
        (pdir / "speedscope.json").write_text('{"$schema": "https://www.speedscope.app/file-format-schema.json"}')
        (pdir / "flamegraph.svg").write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="20">'
            '<rect width="200" height="20" fill="#e55"/></svg>')

    # ---- scenario.json
    meta = {"name": dname, "scenario": name, "repeat": repeat, "variant": variant, "collector": collector,
            "engine": "native", "limits_enforced": True,
            "limits": {"sensor-service": {"mem_limit_bytes": int(50 * MIB), "cpus": 0.5},
                       collector: {"mem_limit_bytes": int(150 * MIB), "cpus": 0.5}},
            "steady_start": s0, "steady_end": s1, "warmup_s": WARMUP, "duration_s": DURATION,
            "users": 4, "scrape_timeout_s": 4.0, "loadgen_cpu_seconds": 3.6, "status": status,
            "scenario_version": 2, "components": {"sensor-service": "service", collector: "collector"},
            "peak_reset_at": s0}
    if not old_format:
        _write_json(d / "scenario.json", meta)

    # ---- expected
    eff_end = min(s1, T0 + end_s + 1e-9) if status != "complete" else s1
    sent = win[win["sent"] == 1] if "sent" in win else win
    n = int(len(sent))
    lat = sent["latency_ms"].to_numpy()
    scr = sent[sent["name"] == "/metrics"]
    due = win[win["name"] == "/metrics"]
    exp = {
        "requests": n, "failures": int((win["ok"] == 0).sum()),
        "completed": int((win["status_code"] > 0).sum()) if "status_code" in win else n,
        "scrape_requests": int(len(scr)),
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                       "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
        "cpu_ms_per_request": cpu_rate * (eff_end - s0) * 1000.0 / n if n else None,
        "cpu_ms_per_scrape": cpu_rate * (eff_end - s0) * 1000.0 / ((eff_end - s0) * 2.0),  # histogram: 2/s
        "server_scrape_p95_ms": 1750.0 if variant == "baseline" else 9.75,
        "throttled_ratio": THROTTLED_PER_S[variant] * (0.1 if old_format else 1 / PERIODS_PER_S),
        "requests_intended": int(len(win)),
        "scrapes_due": int(len(due)), "scrapes_never_sent": int(len(due) - len(scr)),
        "metrics_failure_ratio": float((due["ok"] == 0).sum() / len(due)) if len(due) else None,
        "scrape_delay_ms": SCRAPE_DELAY_S * 1000.0 if variant == "baseline" else 0.0,
        "mem_peak_sampled_mb": max(m for tt, m, _, _ in mem_service if s0 <= tt <= s1) / MIB,
        "mem_peak_kernel_mb": None if old_format else
        (max(m for tt, m, _, _ in mem_service if s0 <= tt <= s1) + SCRAPE_SPIKE) / MIB,
        "oom_kills": 2 if variant == "baseline" and status == "complete" else 0,
        "restarts": 2 if variant == "baseline" and status == "complete" else 0,
        "mem_slope_kb_per_request": None if variant == "baseline" else OPT_SLOPE_BYTES / 1024.0,
        "collector_disk_write_bytes_per_s": COLLECTOR[collector]["disk"],
        "collector_cpu_cores": COLLECTOR[collector]["cpu"],
        "duration_s": eff_end - s0,
    }
    if profile and collector == "victoriametrics":
        for stem, key in (("allocation_peak", "scrape_alloc_peak_mb"),
                          ("allocation_retained", "scrape_alloc_retained_mb")):
            exp[key] = sum(b for _, _, b, _ in ALLOC_SITES[variant][stem]) / MIB
        f, ln, b, c = ALLOC_SITES[variant]["allocation_peak"][0]
        exp["scrape_alloc_top_site"] = {"site": f"{f.split('site-packages/')[-1].replace(REPO + '/', '')}:{ln}",
                                        "size_mb": b / MIB, "count": c}
    else:
        exp["scrape_alloc_peak_mb"] = exp["scrape_alloc_retained_mb"] = exp["scrape_alloc_top_site"] = None
    return exp


def build_run(root: Path, scenarios=tuple(SCENARIOS), repeats: int = 1, status: str = "complete",
              interrupted_scenario: str | None = None, old_format: bool = False,
              profile: bool = True, run_id: str = "20240101T000000Z-test") -> tuple[Path, dict]:
    """Write a run directory under ``root``; return (run_dir, expected by scenario dir)."""
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True)
    expected = {}
    for name in scenarios:
        for r in range(1, repeats + 1):
            cut = name == interrupted_scenario and r == repeats
            dname = name if r == 1 else f"{name}.r{r}"
            expected[dname] = build_scenario(
                run_dir, name, r, end_s=(WARMUP + 30.0) if cut else None,
                status="interrupted" if cut else "complete", old_format=old_format, profile=profile)
    manifest = {
        "run_id": run_id, "command": "edgebench bench --duration 60 --warmup 10",
        "argv": ["edgebench", "bench", "--duration", "60"],
        "parameters": {"duration_s": DURATION, "warmup_s": WARMUP, "users": 4, "repeats": repeats,
                       "scenarios": list(SCENARIOS)},
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "machine": {"hostname": "robot-test", "cpu_model": "Test CPU @ 2.0GHz", "cores": 2,
                    "mem_total_bytes": 524288000, "kernel": "6.1.0-test", "arch": "x86_64",
                    "cgroup_version": 2, "python": "3.11.9",
                    "packages": {"pandas": "3.1.1", "locust": "2.47.0"},
                    "os_packages": {"victoria-metrics": "1.79.5", "prometheus": "2.42.0"}},
        "started_at": T0 - 5, "status": status, "scenarios": {},
    }
    if status != "running":
        manifest["finished_at"] = T0 + 300
    if not old_format:
        (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return run_dir, expected
