"""Read one component's resource counters from its cgroup directories.

Works for cgroup v1 (separate ``memory``, ``cpu`` and ``cpuacct`` hierarchies)
and cgroup v2 (one ``unified`` directory), with ``docker stats`` semantics for
memory: usage minus inactive file cache.

The ``cgroups`` mapping is the one the stack supervisor writes to state.json:
v1 ``{"memory": dir, "cpu": dir, "cpuacct": dir}``, v2 ``{"unified": dir}``.

All parsers are pure functions of file *contents*; the readers only open
files, so they can be pointed at any directory (tests use ``tmp_path``).
Missing or unreadable files yield ``None`` fields, never an exception: a
sampler must keep sampling while a service restarts.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

# Values at or above this are "no limit" (v1 reports PAGE_COUNTER_MAX * page size).
_V1_NO_LIMIT = 1 << 60


@dataclass
class Counters:
    """One reading of a component's counters (``None`` = not available)."""

    mem_bytes: int | None = None          # usage - inactive_file (docker stats)
    rss_bytes: int | None = None          # anonymous memory (v1 total_rss, v2 anon) or process RSS
    cpu_seconds: float | None = None      # cumulative CPU time of the group
    throttled_periods: int | None = None  # cumulative CFS periods throttled
    throttled_seconds: float | None = None
    oom_kills: int | None = None          # cumulative OOM kills inside the group
    mem_limit_bytes: int | None = None    # enforced limit, None = unlimited / unknown
    cpus: float | None = None             # quota / period, None = unlimited / unknown
    pids: list[int] = field(default_factory=list)
    source: str = ""                      # "cgroup-v1", "cgroup-v2", "psutil", ...

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------
# pure parsers
# --------------------------------------------------------------------------

def parse_keyed(text: str) -> dict[str, int]:
    """Parse a flat keyed file (``key value`` per line): memory.stat, cpu.stat,
    memory.events, memory.oom_control, cpuacct.stat. Non-integer values are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            continue
    return out


def parse_int(text: str) -> int | None:
    """Parse a single-value file (``memory.current``, ``cpuacct.usage``); ``max`` -> None."""
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_cpu_max(text: str) -> float | None:
    """Parse v2 ``cpu.max`` (``"50000 100000"`` or ``"max 100000"``) into CPUs."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100000
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_v1_cpu_quota(quota_text: str, period_text: str) -> float | None:
    """Parse v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` into CPUs (-1 -> None)."""
    quota, period = parse_int(quota_text), parse_int(period_text)
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_pids(text: str) -> list[int]:
    """Parse ``cgroup.procs``."""
    out = []
    for line in text.split():
        try:
            out.append(int(line))
        except ValueError:
            pass
    return out


def docker_mem_usage(usage: int | None, inactive_file: int | None) -> int | None:
    """``docker stats`` memory: usage minus inactive file cache (never negative)."""
    if usage is None:
        return None
    if inactive_file is None or inactive_file > usage:
        return usage if inactive_file is None else 0
    return usage - inactive_file


def counters_v1(files: Mapping[str, str | None]) -> Counters:
    """Build counters from v1 file contents keyed by file name
    (``memory.usage_in_bytes``, ``memory.stat``, ``memory.oom_control``,
    ``memory.limit_in_bytes``, ``cpuacct.usage``, ``cpu.stat``,
    ``cpu.cfs_quota_us``, ``cpu.cfs_period_us``, ``cgroup.procs``); missing -> None."""
    def get(name):
        return files.get(name)

    c = Counters(source="cgroup-v1")
    mstat = parse_keyed(get("memory.stat") or "")
    usage = parse_int(get("memory.usage_in_bytes") or "")
    # total_* are hierarchical (include child groups); fall back to the local keys.
    inactive = mstat.get("total_inactive_file", mstat.get("inactive_file"))
    c.mem_bytes = docker_mem_usage(usage, inactive)
    rss = mstat.get("total_rss", mstat.get("rss"))
    c.rss_bytes = rss
    oom = parse_keyed(get("memory.oom_control") or "")
    c.oom_kills = oom.get("oom_kill")
    limit = parse_int(get("memory.limit_in_bytes") or "")
    c.mem_limit_bytes = limit if limit is not None and limit < _V1_NO_LIMIT else None
    cpu_ns = parse_int(get("cpuacct.usage") or "")
    c.cpu_seconds = cpu_ns / 1e9 if cpu_ns is not None else None
    cstat = parse_keyed(get("cpu.stat") or "")
    c.throttled_periods = cstat.get("nr_throttled")
    tt = cstat.get("throttled_time")  # nanoseconds
    c.throttled_seconds = tt / 1e9 if tt is not None else None
    if get("cpu.cfs_quota_us") is not None and get("cpu.cfs_period_us") is not None:
        c.cpus = parse_v1_cpu_quota(get("cpu.cfs_quota_us"), get("cpu.cfs_period_us"))
    c.pids = parse_pids(get("cgroup.procs") or "")
    return c


def counters_v2(files: Mapping[str, str | None]) -> Counters:
    """Build counters from v2 file contents keyed by file name (``memory.current``,
    ``memory.stat``, ``memory.events``, ``memory.max``, ``cpu.stat``, ``cpu.max``,
    ``cgroup.procs``); missing -> None."""
    def get(name):
        return files.get(name)

    c = Counters(source="cgroup-v2")
    mstat = parse_keyed(get("memory.stat") or "")
    usage = parse_int(get("memory.current") or "")
    c.mem_bytes = docker_mem_usage(usage, mstat.get("inactive_file"))
    c.rss_bytes = mstat.get("anon")
    events = parse_keyed(get("memory.events") or "")
    c.oom_kills = events.get("oom_kill")
    c.mem_limit_bytes = parse_int(get("memory.max") or "")
    cstat = parse_keyed(get("cpu.stat") or "")
    usec = cstat.get("usage_usec")
    c.cpu_seconds = usec / 1e6 if usec is not None else None
    c.throttled_periods = cstat.get("nr_throttled")
    tu = cstat.get("throttled_usec")
    c.throttled_seconds = tu / 1e6 if tu is not None else None
    if get("cpu.max") is not None:
        c.cpus = parse_cpu_max(get("cpu.max"))
    c.pids = parse_pids(get("cgroup.procs") or "")
    return c


# --------------------------------------------------------------------------
# readers (I/O)
# --------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        with open(path, "r") as f:
            return f.read()
    except OSError:
        return None


V1_FILES = {
    "memory": ("memory.usage_in_bytes", "memory.stat", "memory.oom_control",
               "memory.limit_in_bytes", "cgroup.procs"),
    "cpuacct": ("cpuacct.usage",),
    "cpu": ("cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us"),
}
V2_FILES = ("memory.current", "memory.stat", "memory.events", "memory.max",
            "cpu.stat", "cpu.max", "cgroup.procs")


def read_v1(paths: Mapping[str, str | os.PathLike]) -> Counters:
    """Read a v1 group from ``{"memory": dir, "cpu": dir, "cpuacct": dir}``.
    (With the hierarchies co-mounted as ``cpu,cpuacct`` the same dir may be given twice.)"""
    files: dict[str, str | None] = {}
    for controller, names in V1_FILES.items():
        d = paths.get(controller)
        if not d:
            continue
        for name in names:
            files[name] = _read(Path(d) / name)
    if files.get("cgroup.procs") is None:
        for controller in ("cpu", "cpuacct"):
            if paths.get(controller):
                procs = _read(Path(paths[controller]) / "cgroup.procs")
                if procs is not None:
                    files["cgroup.procs"] = procs
                    break
    return counters_v1(files)


def read_v2(path: str | os.PathLike) -> Counters:
    """Read a v2 group directory."""
    d = Path(path)
    return counters_v2({name: _read(d / name) for name in V2_FILES})


def is_v2(cgroups: Mapping[str, str]) -> bool:
    return "unified" in cgroups


def read_cgroups(cgroups: Mapping[str, str] | None) -> Counters | None:
    """Read the counters of the state.json ``cgroups`` mapping (v1 or v2).
    Returns None when no usable directory exists (no cgroup, or not readable)."""
    if not cgroups:
        return None
    if is_v2(cgroups):
        d = cgroups["unified"]
        if not d or not Path(d).is_dir():
            return None
        return read_v2(d)
    if not any(d and Path(d).is_dir() for d in cgroups.values()):
        return None
    return read_v1(cgroups)


def detect_cgroup_version(root: str | os.PathLike = "/sys/fs/cgroup") -> int | None:
    """2 if ``root`` is a v2 (unified) mount, 1 if it holds v1 hierarchies, else None."""
    root = Path(root)
    if (root / "cgroup.controllers").exists():
        return 2
    if (root / "memory").is_dir() or (root / "cpu").is_dir() or (root / "cpuacct").is_dir():
        return 1
    return None


# --------------------------------------------------------------------------
# process fallbacks
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
    """Parse ``/proc/<pid>/io`` (``key: value`` lines)."""
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
    text = _read(Path(f"/proc/{pid}/io"))
    if text is None:
        return None
    return parse_proc_io(text).get("write_bytes")


def proc_start_time(pid: int) -> int | None:
    """Start time in clock ticks (field 22 of /proc/<pid>/stat): with the pid, a
    process identity that survives pid reuse."""
    text = _read(Path(f"/proc/{pid}/stat"))
    if not text:
        return None
    try:
        rest = text.rsplit(")", 1)[1].split()
        return int(rest[19])
    except (IndexError, ValueError):
        return None


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
