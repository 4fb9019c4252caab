"""Memory of a running service: memory-profiler timelines and per-scrape tracemalloc captures.

- ``MprofRecorder(get_pid, out_path)``: memory-profiler's ``memory_usage`` sampling the
  service pid's RSS (with children) in a background thread, re-resolving the pid so it
  follows restarts; writes an mprof-compatible ``.dat`` (``CMDLINE ...`` then
  ``MEM <MiB> <epoch s>`` lines; a restart adds a ``PID <pid> <epoch s>`` line, which
  mprof ignores), so ``mprof plot file.dat`` works on it.
- ``capture_scrape_allocations(service_url, out_dir)``: arms a per-scrape capture on a
  service in profile mode (``SENSOR_TRACEMALLOC=1``) and waits for the next /metrics
  scrape to write its ``tracemalloc-peak.snap`` and ``tracemalloc-after.snap``.
- ``scrape_allocation_sites(peak, after, out_dir)``: largest sites of each ->
  ``allocation_peak.csv``/.txt (what one scrape holds at its peak) and
  ``allocation_retained.csv``/.txt (what it leaves behind); file, line, size_bytes, count.
- ``top_allocations(snapshot)``: largest live allocation sites -> ``allocation_top.csv``/.txt.
- ``memory_per_request(timeline, requests)``: pure; peak above the resting level around
  each request (e.g. per /metrics scrape) from a memory timeline.
"""
from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import pandas as pd

from plumbing.files import write_atomic
from plumbing.wait import WaitTimeout, wait_until

from .errors import ProfilerError
from .recorder import BackgroundRecorder

MIB = 1024 * 1024
GROWTH_COLUMNS = ["file", "line", "size_diff_bytes", "count_diff", "size_bytes", "count"]
TOP_COLUMNS = ["file", "line", "size_bytes", "count"]


# --------------------------------------------------------------------------
# memory-profiler timeline
# --------------------------------------------------------------------------

class MprofRecorder(BackgroundRecorder):
    """Sample a service's memory with memory-profiler into an mprof ``.dat`` file.

    ``get_pid`` is re-evaluated between chunks of ``chunk_s`` seconds and after the
    pid disappears, so an OOM-killed service that comes back with a new pid is followed.
    Samples are streamed to the file as they are taken (an interrupted run keeps them).
    """

    thread_name = "edgebench-mprof"

    def __init__(self, get_pid: Callable[[], int | None], out_path: str | os.PathLike,
                 interval_s: float = 0.1, include_children: bool = True, chunk_s: float = 1.0):
        super().__init__()
        self.get_pid = get_pid
        self.out_path = Path(out_path)
        self.interval_s = interval_s
        self.include_children = include_children
        self.chunk_s = chunk_s
        self.pids: list[int] = []
        self._f = None

    def start(self) -> "MprofRecorder":
        try:
            from memory_profiler import memory_usage  # noqa: F401
        except ImportError as e:
            raise ProfilerError(f"memory-profiler not importable ({e}); fix: `.venv/bin/pip install "
                                f"memory-profiler` (make venv installs it)") from e
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.out_path, "w")
        self._start_thread()
        return self

    def stop(self) -> dict:
        self._stop_thread(join_timeout=self.chunk_s + 5)
        if self._f is not None:
            self._f.flush()
            self._f.close()
            self._f = None
        return {"file": str(self.out_path), "pids": list(self.pids), "errors": list(self.errors)}

    def _run(self) -> None:
        import psutil
        from memory_profiler import memory_usage

        while not self._stop.is_set():
            try:
                pid = self.get_pid()
            except Exception as e:
                pid = None
                self._note(f"mprof: get_pid failed: {type(e).__name__}: {e}")
            if not pid or not psutil.pid_exists(pid):
                self._stop.wait(min(self.interval_s, 0.2))
                continue
            if not self.pids or self.pids[-1] != pid:
                if not self.pids:
                    try:
                        cmd = " ".join(psutil.Process(pid).cmdline()) or f"pid {pid}"
                    except psutil.Error:
                        cmd = f"pid {pid}"
                    self._f.write(f"CMDLINE {cmd}\n")
                self._f.write(f"PID {pid} {time.time():.4f}\n")
                self.pids.append(pid)
            try:
                memory_usage(pid, interval=self.interval_s, timeout=self.chunk_s,
                             include_children=self.include_children, stream=_LiveOnly(self._f))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError):
                pass  # restarted/killed: re-resolve the pid
            except psutil.AccessDenied:
                self._note(f"mprof cannot read pid {pid}: access denied; fix: run as the service's user or root")
                self._stop.wait(1.0)
            except Exception as e:
                self._note(f"mprof: {type(e).__name__}: {e}")
                self._stop.wait(0.5)
            if self._f is not None:
                self._f.flush()


class _LiveOnly:
    """Stream wrapper for memory_usage: drops the 0 MiB samples psutil reports for a pid that
    just died (a zombie has no RSS), which would otherwise read as a memory drop to zero."""

    def __init__(self, f):
        self.f = f

    def write(self, text: str) -> None:
        for line in text.splitlines(keepends=True):
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "MEM":
                try:
                    if float(parts[1]) <= 0.0:
                        continue
                except ValueError:
                    continue
            self.f.write(line)

    def flush(self) -> None:
        self.f.flush()


def read_mprof(path: str | os.PathLike) -> pd.DataFrame:
    """An mprof ``.dat`` file -> DataFrame(t, mem_bytes) (MEM lines only)."""
    ts, mem = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "MEM":
                mem.append(float(parts[1]) * MIB)
                ts.append(float(parts[2]))
    return pd.DataFrame({"t": ts, "mem_bytes": mem})


# --------------------------------------------------------------------------
# tracemalloc
# --------------------------------------------------------------------------

CAPTURE_PEAK = "tracemalloc-peak.snap"
CAPTURE_AFTER = "tracemalloc-after.snap"


def capture_scrape_allocations(service_url: str, out_dir: str | os.PathLike,
                               timeout: float = 30.0) -> tuple[Path, Path]:
    """Arm a per-scrape capture on a service in profile mode (``SENSOR_TRACEMALLOC=1``) and
    wait for the next /metrics scrape to write it: ``(peak, after)`` snapshot paths in
    ``out_dir`` (absolute, on the service's filesystem). The service writes the after file
    last, so this polls for it (up to ``timeout`` s in all). Someone must be scraping.
    Raises ProfilerError: one line naming cause and fix."""
    import requests

    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    peak, after = out_dir / CAPTURE_PEAK, out_dir / CAPTURE_AFTER
    for old in (peak, after):
        old.unlink(missing_ok=True)   # a stale after file would read as done
    url = service_url.rstrip("/") + "/debug/tracemalloc/scrape"
    deadline = time.monotonic() + timeout
    try:
        r = requests.post(url, params={"peak": str(peak), "after": str(after)}, timeout=timeout)
    except requests.RequestException as e:
        raise ProfilerError(f"tracemalloc capture: cannot reach {url} ({type(e).__name__}); "
                            f"fix: check the service is up at {service_url}") from e
    if r.status_code == 404:
        raise ProfilerError(f"tracemalloc capture: {url} answered 404 (profile mode off); fix: "
                            f"start the service with SENSOR_TRACEMALLOC=1")
    if r.status_code == 403:
        raise ProfilerError(f"tracemalloc capture: {url} answered 403 (loopback clients only); "
                            f"fix: call it from the same host via 127.0.0.1")
    if r.status_code != 202:
        raise ProfilerError(f"tracemalloc capture: {url} answered {r.status_code}: "
                            f"{r.text.strip()[:200]!r}")
    try:  # the after file is the armed scrape's last write
        wait_until(after.exists, max(0.0, deadline - time.monotonic()), "the armed scrape's snapshot",
                   interval=0.05)
    except WaitTimeout:
        raise ProfilerError(f"tracemalloc capture: no /metrics scrape took the armed capture "
                            f"within {timeout:.0f}s (or the service restarted); fix: keep "
                            f"scraping while profiling, and share this filesystem with the "
                            f"service (native engine)") from None
    return peak, after


def capture_scrape_allocations_in_container(container_id: str, container_port: int,
                                            out_dir: str | os.PathLike, timeout: float = 30.0) -> tuple[Path, Path]:
    """:func:`capture_scrape_allocations` for a service in a Docker container: the
    endpoint answers loopback clients only and writes to the container's file system, so
    it is armed from inside (``docker exec`` wget, a few hundred KB in the service's
    cgroup during the warm-up) and the snapshots are copied out with ``docker cp``."""
    import subprocess

    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    inside = {"peak": "/tmp/" + CAPTURE_PEAK, "after": "/tmp/" + CAPTURE_AFTER}
    deadline = time.monotonic() + timeout

    def dexec(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", container_id, *argv], capture_output=True, text=True,
                              timeout=max(1.0, deadline - time.monotonic()))

    dexec("rm", "-f", *inside.values())
    url = (f"http://127.0.0.1:{container_port}/debug/tracemalloc/scrape"
           f"?peak={inside['peak']}&after={inside['after']}")
    try:
        r = dexec("wget", "-q", "-O", "-", "--post-data=", url)
        if r.returncode != 0:
            raise ProfilerError(f"tracemalloc capture: arming it in container {container_id[:12]} failed "
                                f"({(r.stderr or r.stdout).strip()[:200]!r}); fix: start the service with "
                                f"SENSOR_TRACEMALLOC=1")
        try:  # the after file is the armed scrape's last write
            wait_until(lambda: dexec("test", "-e", inside["after"]).returncode == 0,
                       max(0.0, deadline - time.monotonic()), "the armed scrape's snapshot", interval=0.2)
        except WaitTimeout:
            raise ProfilerError(f"tracemalloc capture: no /metrics scrape took the armed capture within "
                                f"{timeout:.0f}s (or the container restarted); fix: keep scraping while profiling") from None
        out = {}
        for kind, src in inside.items():
            dst = out_dir / Path(src).name
            c = subprocess.run(["docker", "cp", f"{container_id}:{src}", str(dst)], capture_output=True, text=True,
                               timeout=60)
            if c.returncode != 0:
                raise ProfilerError(f"tracemalloc capture: docker cp {src} failed: {c.stderr.strip()[:200]}")
            out[kind] = dst
    except subprocess.TimeoutExpired:
        raise ProfilerError(f"tracemalloc capture: docker exec did not answer within {timeout:.0f}s; "
                            f"fix: check the Docker engine") from None
    return out["peak"], out["after"]


_NOISE = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>")


def _load(snap) -> tracemalloc.Snapshot:
    if isinstance(snap, tracemalloc.Snapshot):
        s = snap
    else:
        s = tracemalloc.Snapshot.load(str(snap))
    filters = [tracemalloc.Filter(False, p) for p in _NOISE]
    filters.append(tracemalloc.Filter(False, tracemalloc.__file__))
    return s.filter_traces(filters)


def _frame(stat) -> tuple[str, int]:
    fr = stat.traceback[0]
    return fr.filename, fr.lineno


def _write(df: pd.DataFrame, text: str, out_dir, stem: str) -> None:
    out_dir = Path(out_dir)
    write_atomic(out_dir / f"{stem}.csv", lambda tmp: df.to_csv(tmp, index=False))
    write_atomic(out_dir / f"{stem}.txt", text)


def scrape_allocation_sites(peak_snapshot, after_snapshot, out_dir: str | os.PathLike,
                            top: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two snapshots of one captured scrape -> ``(peak, retained)`` DataFrames
    (file, line, size_bytes, count; largest first) written to ``allocation_peak.csv/.txt``
    (what one scrape holds at its peak) and ``allocation_retained.csv/.txt`` (what it
    leaves behind: a leak shows here)."""
    peak = _top_sites(peak_snapshot, top, out_dir, "allocation_peak",
                      "what one /metrics scrape holds at its peak")
    retained = _top_sites(after_snapshot, top, out_dir, "allocation_retained",
                          "what one /metrics scrape leaves behind")
    return peak, retained


def _top_sites(snapshot, top, out_dir, stem, title) -> pd.DataFrame:
    snap = _load(snapshot)
    stats = snap.statistics("lineno")
    total = sum(s.size for s in stats)
    stats = stats[:top]
    rows = []
    for s in stats:
        f, ln = _frame(s)
        rows.append({"file": f, "line": ln, "size_bytes": s.size, "count": s.count})
    df = pd.DataFrame(rows, columns=TOP_COLUMNS)
    if out_dir is not None:
        text = (f"# tracemalloc: {title}; top {top} allocation sites by size\n"
                f"# total traced: {total} bytes\n" + "".join(f"{s}\n" for s in stats))
        _write(df, text, out_dir, stem)
    return df


def top_allocations(snapshot, top: int = 20, out_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Largest live allocation sites in one snapshot (``statistics('lineno')``);
    writes ``allocation_top.csv``/``.txt`` into ``out_dir`` when given."""
    return _top_sites(snapshot, top, out_dir, "allocation_top", "live allocations")


# --------------------------------------------------------------------------
# memory per request (pure)
# --------------------------------------------------------------------------

def memory_per_request(timeline: pd.DataFrame, requests: pd.DataFrame | list,
                       rest_s: float = 1.0, window_s: float | None = None,
                       mem_col: str = "mem_bytes") -> pd.DataFrame:
    """Memory a request costs: the peak above the resting level while it runs.

    ``timeline``: columns ``t`` (epoch s) and ``mem_col`` (bytes) — resources.csv rows of
    one component or ``read_mprof``. ``requests``: DataFrame with ``start`` (epoch s) and
    optionally ``latency_ms``, or a list of start times. For each request:
    resting = median of samples in ``[start - rest_s, start)``; peak = max of samples in
    ``[start, end + pad]`` where end = start + latency (or ``window_s``) and pad is one
    median sampling interval (the peak may be caught just after the response).
    Returns start, resting_bytes, peak_bytes, delta_bytes (clipped at 0; NaN when no
    sample falls in either window). Overlapping requests share their peak: use it on
    requests that do not overlap (one scraper), or read the median.
    """
    tl = timeline[["t", mem_col]].dropna().sort_values("t")
    t = tl["t"].to_numpy(dtype=float)
    m = tl[mem_col].to_numpy(dtype=float)
    if isinstance(requests, pd.DataFrame):
        starts = requests["start"].to_numpy(dtype=float)
        lat = (requests["latency_ms"].to_numpy(dtype=float) / 1000.0
               if "latency_ms" in requests.columns else None)
    else:
        starts = pd.Series(list(requests), dtype=float).to_numpy()
        lat = None
    pad = float(pd.Series(t).diff().median()) if len(t) > 1 else 0.0
    if pad != pad:  # NaN
        pad = 0.0
    rows = []
    import numpy as np

    for i, s in enumerate(starts):
        dur = lat[i] if lat is not None and lat[i] == lat[i] else (window_s or 0.0)
        lo, hi = np.searchsorted(t, s - rest_s, "left"), np.searchsorted(t, s, "left")
        rest = float(np.median(m[lo:hi])) if hi > lo else float("nan")
        a, b = np.searchsorted(t, s, "left"), np.searchsorted(t, s + dur + pad, "right")
        peak = float(m[a:b].max()) if b > a else float("nan")
        delta = max(0.0, peak - rest) if rest == rest and peak == peak else float("nan")
        rows.append({"start": s, "resting_bytes": rest, "peak_bytes": peak, "delta_bytes": delta})
    return pd.DataFrame(rows, columns=["start", "resting_bytes", "peak_bytes", "delta_bytes"])
