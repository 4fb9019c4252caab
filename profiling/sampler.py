"""Resource sampler with ``docker stats`` semantics.

``ResourceSampler`` is a background thread that, every ``interval_s``, re-reads
the stack supervisor's state.json (pids, cgroups and restart/OOM counters change
across restarts) and appends one row per service to ``resources.csv``::

    t, component, mem_bytes, rss_bytes, cpu_seconds, throttled_periods,
    throttled_seconds, oom_kills, restarts, mem_limit_bytes, cpus,
    disk_write_bytes, disk_used_bytes, nr_periods, mem_peak_bytes

``throttled_periods`` is cpu.stat's nr_throttled and ``nr_periods`` its nr_periods (both
cumulative): throttled ratio = Δthrottled_periods / Δnr_periods. ``mem_peak_bytes`` is
the kernel's high-water mark of the group's memory usage (v1 memory.max_usage_in_bytes,
v2 memory.peak): it sees a 5 MB temporary that lives for milliseconds between two 4 Hz
samples. ``reset_peak()`` (called at the start of the steady window) resets it where the
kernel can; otherwise it covers the cgroup's life.

It runs in the orchestrator's process, outside the services' cgroups, and only
reads files: cgroup counter files (v1 or v2, see ``plumbing.cgroup_counters``),
``/proc/<pid>/io`` and the data volume directories. Cumulative columns
(cpu_seconds, throttled_*, oom_kills, disk_write_bytes) are kept monotonic
across restarts and re-created cgroups. An empty cell means "not observable"
(e.g. throttling of a service without a cgroup).

A service without a readable cgroup (``limits_enforced`` false, or a docker
engine whose cgroups are not visible) falls back to psutil on its pid. Other
sources (``docker stats``) plug in through ``readers``: callables
``(name, ServiceState, StackState) -> Counters | None`` tried before the built-in ones.
state.json is read through ``stack.state`` (typed; a key its model does not know raises).
"""
from __future__ import annotations

import csv
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from plumbing.cgroup_counters import PEAK_SINCE_CREATION, PEAK_SINCE_RESET, Counters, PeakMark, read_cgroups, read_text
from plumbing.files import write_atomic
from plumbing.process import proc_start_time
from stack.state import ServiceState, StackState, read_state

COLUMNS = [
    "t", "component", "mem_bytes", "rss_bytes", "cpu_seconds", "throttled_periods",
    "throttled_seconds", "oom_kills", "restarts", "mem_limit_bytes", "cpus",
    "disk_write_bytes", "disk_used_bytes", "nr_periods", "mem_peak_bytes",
]

Reader = Callable[[str, dict, dict], "Counters | None"]


# --------------------------------------------------------------------------
# process fallbacks (a service without a readable cgroup)
# --------------------------------------------------------------------------

def read_process(pid: int, include_children: bool = True) -> Counters | None:
    """psutil fallback for a service without a readable cgroup: RSS for memory
    (there is no page-cache split per process), user+system CPU of the process and
    its children. Throttling, OOM kills and limits are not observable -> None."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p]
        if include_children:
            procs += p.children(recursive=True)
        rss = 0
        cpu = 0.0
        pids = []
        for q in procs:
            try:
                with q.oneshot():
                    if q.status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped: no memory
                        continue
                    rss += q.memory_info().rss
                    t = q.cpu_times()
                    cpu += t.user + t.system
                    pids.append(q.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if not pids:
            return None
        return Counters(mem_bytes=rss, rss_bytes=rss, cpu_seconds=cpu, pids=pids, source="psutil")
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def parse_proc_io(text: str) -> dict[str, int]:
    """``/proc/<pid>/io`` (``key: value`` lines)."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        try:
            out[k.strip()] = int(v.strip())
        except ValueError:
            continue
    return out


def proc_write_bytes(pid: int) -> int | None:
    """Bytes this process caused to be written to storage (``/proc/<pid>/io`` write_bytes)."""
    text = read_text(f"/proc/{pid}/io")
    if text is None:
        return None
    return parse_proc_io(text).get("write_bytes")


def dir_size_bytes(path: str | os.PathLike) -> int:
    """Apparent-allocation size of a directory tree (``du``-like, st_blocks*512),
    tolerant of files vanishing while walking (collectors compact their data)."""
    total = 0
    for root, dirs, files in os.walk(path, onerror=lambda e: None):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total


def service_pid(state_file: str | os.PathLike, service: str) -> int | None:
    """The current pid of ``service`` according to state.json (None if not running)."""
    state = read_state(Path(state_file).parent)
    svc = state.services.get(service) if state else None
    if svc is None or svc.pid is None or svc.pid <= 0:
        return None
    if svc.status not in (None, "running", "starting", "healthy"):
        return None
    return svc.pid


def pid_getter(state_file: str | os.PathLike, service: str) -> Callable[[], int | None]:
    """A ``get_pid`` callable for the profilers: re-resolves the pid from state.json."""
    return lambda: service_pid(state_file, service)


class _Monotonic:
    """Keeps a cumulative counter monotonic across resets (restart, new cgroup, new pid)."""

    def __init__(self) -> None:
        self.base = 0
        self.last: float | None = None
        self.ident = None

    def update(self, ident, raw):
        if raw is None:
            return None if self.last is None else self.base + self.last
        if self.last is not None and (ident != self.ident or raw < self.last):
            self.base += self.last
        self.ident, self.last = ident, raw
        return self.base + raw


class _DiskWrites:
    """Cumulative write_bytes over a component's processes, monotonic across restarts."""

    def __init__(self) -> None:
        self.base = 0
        self.live: dict[tuple[int, int | None], int] = {}
        self.seen = False

    def update(self, pids: Iterable[int]) -> int | None:
        current: dict[tuple[int, int | None], int] = {}
        for pid in pids:
            wb = proc_write_bytes(pid)
            if wb is None:
                continue
            current[(pid, proc_start_time(pid))] = wb
        for key, last in self.live.items():
            if key not in current:  # process gone: keep what it wrote
                self.base += last
        self.live = current
        if current:
            self.seen = True
        if not self.seen:
            return None
        return self.base + sum(current.values())


class _Component:
    def __init__(self) -> None:
        self.cpu = _Monotonic()
        self.thr_periods = _Monotonic()
        self.nr_periods = _Monotonic()
        self.peak: PeakMark | None = None
        self.peak_key: str | None = None
        self.thr_seconds = _Monotonic()
        self.oom = _Monotonic()
        self.disk_writes = _DiskWrites()
        self.disk_used: int | None = None
        self.disk_used_at = 0.0
        self.sources: set[str] = set()


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return str(v)


class ResourceSampler:
    """Samples every service in state.json into resources.csv (docker-stats semantics).

    Use as a context manager or with ``start()``/``stop()``. ``overhead()`` reports
    the sampler's own CPU cost; ``stop()`` also writes it to ``<out_csv>.meta.json``.
    """

    def __init__(self, state_file: str | os.PathLike, out_csv: str | os.PathLike,
                 interval_s: float = 0.25, disk_interval_s: float = 2.0,
                 readers: Iterable[Reader] = (), services: Iterable[str] | None = None):
        self.state_file = Path(state_file)
        self.out_csv = Path(out_csv)
        self.interval_s = float(interval_s)
        self.disk_interval_s = float(disk_interval_s)
        self.readers = list(readers)
        self.services = set(services) if services is not None else None
        self._components: dict[str, _Component] = {}
        self._state: StackState | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file = None
        self._writer = None
        self._lock = threading.Lock()
        self.latest: dict[str, dict] = {}   # component -> its newest row (for progress lines)
        self.ticks = 0
        self.rows = 0
        self.errors = 0
        self.last_error: str | None = None
        self._cpu_s = 0.0
        self._t_start: float | None = None
        self._t_stop: float | None = None
        self.peak_reset_at: float | None = None
        self.peak_scope: str = PEAK_SINCE_CREATION   # what mem_peak_bytes covers, in words

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "ResourceSampler":
        if self._thread is not None:
            return self
        self._open()
        self._t_start = time.time()
        self._thread = threading.Thread(target=self._run, name="edgebench-resource-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 4 * self.interval_s))
        self._t_stop = time.time()
        with self._lock:
            if self._file is not None:
                self._file.flush()
                self._file.close()
                self._file = None
            for comp in self._components.values():
                if comp.peak is not None:
                    comp.peak.close()
        info = self.overhead()
        try:
            write_atomic(self.out_csv.with_name(self.out_csv.name + ".meta.json"),
                         json.dumps(info, indent=2))
        except OSError:
            pass
        return info

    def reset_peak(self) -> float | None:
        """Reset every component's memory high-water mark (the start of the steady
        window); returns the epoch time of the reset, or None where the kernel cannot
        reset it (cgroup v2 before Linux 6.12, or no cgroup): then mem_peak_bytes covers
        the cgroup's whole life, and scenario.json says so with ``peak_reset_at: null``."""
        state = read_state(self.state_file.parent) or self._state or StackState()
        times, why = [], []
        with self._lock:
            for name, svc in sorted(state.services.items()):
                if self.services is not None and name not in self.services:
                    continue
                comp = self._components.setdefault(name, _Component())
                mark = self._peak_mark(comp, svc)
                times.append(mark.reset() if mark is not None else None)
                if times[-1] is None:
                    why.append(mark.not_reset_because if mark is not None else "no cgroup")
        self.peak_reset_at = min(times) if times and all(t is not None for t in times) else None
        reasons = sorted({w for w in why if w})
        self.peak_scope = PEAK_SINCE_RESET if self.peak_reset_at is not None else \
            PEAK_SINCE_CREATION + (f" ({'; '.join(reasons)})" if reasons else "")
        return self.peak_reset_at

    @staticmethod
    def _peak_mark(comp: "_Component", svc: ServiceState) -> PeakMark | None:
        cg = svc.cgroups or None
        if not cg:
            return None
        key = json.dumps(cg, sort_keys=True)
        if comp.peak is None or comp.peak_key != key:
            if comp.peak is not None:
                comp.peak.close()
            comp.peak, comp.peak_key = PeakMark(cg), key
        return comp.peak

    def __enter__(self) -> "ResourceSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def overhead(self) -> dict:
        """The sampler's own cost: CPU seconds of its thread per second of sampling."""
        end = self._t_stop or time.time()
        wall = (end - self._t_start) if self._t_start else 0.0
        return {
            "interval_s": self.interval_s,
            "ticks": self.ticks,
            "rows": self.rows,
            "errors": self.errors,
            "last_error": self.last_error,
            "wall_seconds": round(wall, 3),
            "sampler_cpu_seconds": round(self._cpu_s, 6),
            "cpu_seconds_per_second": round(self._cpu_s / wall, 6) if wall > 0 else None,
            "cpu_ms_per_tick": round(1000 * self._cpu_s / self.ticks, 4) if self.ticks else None,
            "peak_reset_at": self.peak_reset_at,
            "peak_scope": self.peak_scope,
            "sources": {k: sorted(c.sources) for k, c in self._components.items()},
        }

    # -- sampling --------------------------------------------------------
    def _open(self) -> None:
        self.out_csv.parent.mkdir(parents=True, exist_ok=True)
        new = not self.out_csv.exists() or self.out_csv.stat().st_size == 0
        self._file = open(self.out_csv, "a", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(COLUMNS)
            self._file.flush()

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            c0 = time.thread_time()
            try:
                self.sample_once()
            except Exception as e:  # keep sampling whatever happens
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
            self._cpu_s += time.thread_time() - c0
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind: skip missed ticks, keep the cadence
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def sample_once(self) -> list[dict]:
        """Take one sample of every service and append the rows; returns them."""
        if self._file is None:
            self._open()
        state = read_state(self.state_file.parent)
        if state is not None:
            self._state = state
        state = self._state
        if not state:
            return []
        t = time.time()
        rows = []
        with self._lock:
            for name, svc in sorted(state.services.items()):
                if self.services is not None and name not in self.services:
                    continue
                rows.append(self._row(t, name, svc, state))
            if self._file is None:
                return rows
            for r in rows:
                self._writer.writerow([_fmt(r[c]) for c in COLUMNS])
            self._file.flush()
        self.latest = {r["component"]: r for r in rows}
        self.ticks += 1
        self.rows += len(rows)
        return rows

    def _read(self, name: str, svc: ServiceState, state: StackState) -> tuple[Counters | None, object]:
        for reader in self.readers:
            c = reader(name, svc, state)
            if c is not None:
                return c, ("reader", c.source)
        cg = svc.cgroups or None
        c = read_cgroups(cg) if cg else None
        if c is not None:
            return c, ("cgroup", json.dumps(cg, sort_keys=True))
        pid = svc.pid
        if pid is not None and pid > 0:
            c = read_process(pid)
            if c is not None:
                return c, ("pid", pid, proc_start_time(pid))
        return None, None

    def _row(self, t: float, name: str, svc: ServiceState, state: StackState) -> dict:
        comp = self._components.setdefault(name, _Component())
        c, ident = self._read(name, svc, state)
        if c is None:
            c = Counters(source="none")
        comp.sources.add(c.source)
        pids = c.pids or ([svc.pid] if svc.pid is not None else [])

        oom = comp.oom.update(ident, c.oom_kills)
        if svc.oom_kills is not None:
            oom = max(oom or 0, svc.oom_kills)
        peak = c.mem_peak_bytes
        mark = self._peak_mark(comp, svc)
        if mark is not None and mark.reset_at is not None:
            peak = mark.read()  # through the descriptor the reset was written to (v2)
        now = time.monotonic()
        volumes = svc.volumes
        if volumes and (comp.disk_used is None or now - comp.disk_used_at >= self.disk_interval_s):
            comp.disk_used = sum(dir_size_bytes(d) for d in volumes.values() if d and os.path.isdir(d))
            comp.disk_used_at = now
        return {
            "t": round(t, 3),
            "component": name,
            "mem_bytes": c.mem_bytes,
            "rss_bytes": c.rss_bytes,
            "cpu_seconds": comp.cpu.update(ident, c.cpu_seconds),
            "throttled_periods": comp.thr_periods.update(ident, c.throttled_periods),
            "throttled_seconds": comp.thr_seconds.update(ident, c.throttled_seconds),
            "oom_kills": oom,
            "restarts": svc.restarts,
            "mem_limit_bytes": c.mem_limit_bytes if c.mem_limit_bytes is not None else svc.mem_limit_bytes,
            "cpus": c.cpus if c.cpus is not None else svc.cpus,
            "disk_write_bytes": comp.disk_writes.update(pids),
            "disk_used_bytes": comp.disk_used if volumes else None,
            "nr_periods": comp.nr_periods.update(ident, c.nr_periods),
            "mem_peak_bytes": peak,
        }


class SteadyStart:
    """Resets the sampler's high-water marks when the load's steady window begins.

    The load runner reports progress about once a second with ``elapsed`` and ``phase``;
    the first report schedules the reset at exactly ``warmup_s`` after the load started
    (a timer, not the next report, which may come a second late). ``announce`` (e.g. a
    progress line) is called right after the reset, so an observer sees the phase change.
    """

    def __init__(self, sampler: ResourceSampler, warmup_s: float,
                 announce: Callable[[str], None] | None = None):
        self.sampler = sampler
        self.warmup_s = float(warmup_s)
        self.announce = announce
        self._timer: threading.Timer | None = None

    def on_progress(self, info: dict) -> None:
        if self._timer is not None or info.get("phase") not in ("warmup", "steady"):
            return
        delay = max(0.0, self.warmup_s - float(info.get("elapsed") or 0.0))
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        at = self.sampler.reset_peak()
        if self.announce is not None:
            self.announce("steady window: memory high-water mark "
                          + ("reset" if at is not None else f"not reset: it covers the time {self.sampler.peak_scope}"))

    def cancel(self) -> float | None:
        """Stop a pending reset; the time of the reset that happened, if any."""
        if self._timer is not None:
            self._timer.cancel()
        return self.sampler.peak_reset_at
