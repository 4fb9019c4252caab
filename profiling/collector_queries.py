"""Series from the collector (VictoriaMetrics or Prometheus), saved as raw API answers.

``query_collector(base_url, out_dir, start, end, step)`` saves the raw JSON answers of
``/api/v1/query_range`` for the scenario window into ``out_dir``:

- ``scrape_duration_buckets.json``  ``sensor_scrape_duration_seconds_bucket{job="sensor"}``
- ``up.json``                       ``up{job="sensor"}``
- ``collector_scrape_duration.json`` ``scrape_duration_seconds{job="sensor"}``
- ``process_resident_memory.json``  ``process_resident_memory_bytes{job="sensor"}``
- ``queries.json``                  what was asked, of whom, for which window, and how
                                     long we waited for the data to be visible

VictoriaMetrics' latency offset: VM treats points younger than ``-search.latencyOffset``
(30 s by default) as possibly incomplete, and ``query_range`` *replaces* them with the
previous point's value (``nocache=1`` does not change that; this VM build also ignores a
``latency_offset`` query arg). So before querying we wait — polling, not sleeping
blindly — until (a) ``now >= end + latencyOffset`` (offset read from VM's ``/flags``
page, 30 s if not set there) and (b) a sample at or after ``end`` is visible
(``max(timestamp(up{job=...}))`` with ``nocache=1``). For Prometheus only (b) applies.
Recommended: start VM with ``-search.latencyOffset=5s`` (one scrape interval, above the
4 s scrape timeout) so the wait after each scenario is ~5 s instead of ~30 s.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import requests

from plumbing.durations import parse_duration
from plumbing.errors import EdgebenchError
from plumbing.files import write_atomic
from plumbing.wait import WaitTimeout, wait_until

QUERIES: dict[str, str] = {
    "scrape_duration_buckets": 'sensor_scrape_duration_seconds_bucket{{job="{job}"}}',
    "up": 'up{{job="{job}"}}',
    "collector_scrape_duration": 'scrape_duration_seconds{{job="{job}"}}',
    "process_resident_memory": 'process_resident_memory_bytes{{job="{job}"}}',
}
KINDS = ("victoriametrics", "prometheus")
VM_DEFAULT_LATENCY_OFFSET_S = 30.0


class CollectorError(EdgebenchError):
    """The collector cannot be queried; one line naming the cause and the fix."""


def parse_flag_duration(text: str) -> float:
    """A VictoriaMetrics flag's duration (``30s``, or bare seconds) -> seconds."""
    text = text.strip().strip('"')
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def parse_vm_flags(text: str) -> dict[str, str]:
    """VM's ``/flags`` page (``-name="value"`` lines, explicitly set flags only) -> dict."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^\s*-([\w.\-]+)=(.*)$', line)
        if m:
            out[m.group(1)] = m.group(2).strip().strip('"')
    return out


def vm_latency_offset(base_url: str, session: requests.Session | None = None, timeout: float = 5.0) -> float:
    """VM's ``-search.latencyOffset`` in seconds (30 when not set explicitly). A collector
    that refuses the connection is gone: CollectorError at once, not after waiting out the
    default offset for answers that cannot come."""
    s = session or requests
    url = base_url.rstrip("/") + "/flags"
    try:
        r = s.get(url, timeout=timeout)
        if r.ok:
            flags = parse_vm_flags(r.text)
            if "search.latencyOffset" in flags:
                return parse_flag_duration(flags["search.latencyOffset"])
    except requests.ConnectionError as e:
        raise CollectorError(f"collector at {url} not reachable ({type(e).__name__}); fix: query it "
                             f"before the stack is stopped, and check its URL/port") from e
    except (requests.RequestException, ValueError):
        pass
    return VM_DEFAULT_LATENCY_OFFSET_S


def _get(session, url, params, timeout):
    try:
        return session.get(url, params=params, timeout=timeout)
    except requests.RequestException as e:
        raise CollectorError(f"collector at {url} not reachable ({type(e).__name__}); fix: query it "
                             f"before the stack is stopped, and check its URL/port") from e


def newest_sample_time(base_url: str, job: str = "sensor", kind: str = "victoriametrics",
                       session: requests.Session | None = None, timeout: float = 10.0) -> float | None:
    """Timestamp (epoch s) of the newest ``up{job=...}`` sample the collector shows now."""
    s = session or requests.Session()
    params = {"query": f'max(timestamp(up{{job="{job}"}}))', "time": f"{time.time():.3f}"}
    if kind == "victoriametrics":
        params["nocache"] = "1"
    r = _get(s, base_url.rstrip("/") + "/api/v1/query", params, timeout)
    try:
        res = r.json()["data"]["result"]
    except (ValueError, KeyError, TypeError):
        return None
    if not res:
        return None
    return float(res[0]["value"][1])


def wait_until_visible(base_url: str, end: float, job: str = "sensor", kind: str = "victoriametrics",
                       latency_offset_s: float | None = None, timeout_s: float | None = None,
                       poll_s: float = 0.5, session: requests.Session | None = None) -> dict:
    """Poll until query_range answers for ``[.., end]`` are final (see module doc).
    Returns what happened (never raises on timeout: the answer is still saved, with a warning)."""
    s = session or requests.Session()
    offset = 0.0
    if kind == "victoriametrics":
        offset = latency_offset_s if latency_offset_s is not None else vm_latency_offset(base_url, s)
    if timeout_s is None:
        timeout_s = offset + 30.0
    t0 = time.time()
    newest = None

    def visible() -> bool:
        nonlocal newest
        if time.time() < end + offset:
            return False  # answers for the window's end are not final before end + offset
        newest = newest_sample_time(base_url, job, kind, s)
        return newest is not None and newest >= end
    try:
        wait_until(visible, max(t0, end + offset) + timeout_s - t0, f"{job} samples up to end={end:.3f}",
                   interval=poll_s)
    except WaitTimeout:
        return {"ok": False, "latency_offset_s": offset, "waited_s": round(time.time() - t0, 3),
                "newest_sample": newest,
                "warning": (f"no {job} sample at/after end={end:.3f} became visible within "
                            f"{timeout_s:.0f}s (newest: {newest}); the last points may be missing")}
    return {"ok": True, "latency_offset_s": offset, "waited_s": round(time.time() - t0, 3),
            "newest_sample": newest}


def query_collector(base_url: str, out_dir: str | os.PathLike, start: float, end: float,
                    step: float | str = "5s", job: str = "sensor", kind: str = "victoriametrics",
                    queries: dict[str, str] | None = None, wait: bool = True,
                    latency_offset_s: float | None = None, wait_timeout_s: float | None = None,
                    timeout: float = 30.0) -> dict:
    """Save the raw ``query_range`` answers for ``[start, end]`` into ``out_dir``.

    Returns (and writes as queries.json) the description of every query. Raises
    CollectorError when the collector cannot be reached; an answer with an error status
    is saved as is and listed with its error.
    """
    if kind not in KINDS:
        raise CollectorError(f"collector kind {kind!r} unknown; fix: use one of {', '.join(KINDS)}")
    if end <= start:
        raise CollectorError(f"query window end {end} <= start {start}; fix: pass the scenario's "
                             f"steady_start/steady_end")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = base_url.rstrip("/")
    s = requests.Session()
    waited = {"ok": None, "skipped": True}
    if wait:
        waited = wait_until_visible(base, end, job, kind, latency_offset_s, wait_timeout_s, session=s)
    step_param = step if isinstance(step, str) else f"{float(step):g}s"
    entries, warnings = [], []
    if waited.get("warning"):
        warnings.append(waited["warning"])
    for name, template in (queries or QUERIES).items():
        q = template.format(job=job)
        params = {"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step_param}
        if kind == "victoriametrics":
            params["nocache"] = "1"
        entries.append(_save_range(s, base + "/api/v1/query_range", params, out, name, timeout, warnings))
    build = _buildinfo(s, base)
    desc = {
        "collector": {"kind": kind, "base_url": base, "buildinfo": build,
                      "latency_offset_s": waited.get("latency_offset_s")},
        "job": job, "start": start, "end": end, "step": step_param,
        "queried_at": time.time(), "wait": waited, "queries": entries, "warnings": warnings,
    }
    write_atomic(out / "queries.json", json.dumps(desc, indent=2))
    return desc


def _save_range(s: requests.Session, url: str, params: dict, out: Path, name: str, timeout: float,
                warnings: list[str]) -> dict:
    """Save one query_range answer as name.json as received; its entry for queries.json."""
    r = _get(s, url, params, timeout)
    fname = f"{name}.json"
    write_atomic(out / fname, r.text)
    entry = {"name": name, "file": fname, "query": params["query"], "params": params,
             "http_status": r.status_code}
    try:
        doc = r.json()
        entry["status"] = doc.get("status")
        if doc.get("status") != "success":
            entry["error"] = doc.get("error")
            warnings.append(f"{name}: {doc.get('errorType')}: {doc.get('error')}")
        result = (doc.get("data") or {}).get("result") or []
        entry["series"] = len(result)
        entry["points"] = sum(len(x.get("values", [])) for x in result)
    except ValueError:
        entry["status"] = "invalid-json"
        warnings.append(f"{name}: answer is not JSON (HTTP {r.status_code})")
    return entry


def _buildinfo(s: requests.Session, base: str) -> dict | None:
    """The collector's build information, or None when it gives none."""
    try:
        rb = s.get(base + "/api/v1/status/buildinfo", timeout=5)
        if rb.ok:
            return (rb.json() or {}).get("data")
    except (requests.RequestException, ValueError):
        pass
    return None
