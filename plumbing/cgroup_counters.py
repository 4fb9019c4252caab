"""The one cgroup reader: version detection and every counter edgebench reads from a cgroup.

The stack (status, OOM counting), the resource sampler and the machine fingerprint all
read cgroups through this module, so a counter has one definition:

- memory as ``docker stats`` shows it: usage minus inactive file cache;
- the kernel's memory high-water mark (v1 ``memory.max_usage_in_bytes``, v2
  ``memory.peak``) and how to reset it (:class:`PeakMark`);
- CPU: cumulative usage, CFS ``nr_periods`` / ``nr_throttled`` / throttled time;
- OOM kills (v1 ``memory.oom_control``, v2 ``memory.events``), limits, members, io.

A group is given as the mapping the stack supervisor writes to state.json: v1
``{"memory": dir, "cpu": dir, "cpuacct": dir}`` (co-mounted controllers may repeat a
directory), v2 ``{"unified": dir}``. Parsers are pure functions of file *contents*;
readers only open files, and a missing or unreadable file yields ``None``, never an
exception: a sampler must keep sampling while a service restarts.

``EDGEBENCH_CGROUP_ROOT`` overrides ``/sys/fs/cgroup``.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

# Values at or above this are "no limit" (v1 reports PAGE_COUNTER_MAX * page size).
_V1_NO_LIMIT = 1 << 60


def cgroup_root() -> Path:
    return Path(os.environ.get("EDGEBENCH_CGROUP_ROOT", "/sys/fs/cgroup"))


def detect_version(root: str | os.PathLike | None = None) -> int | None:
    """2 for a unified (v2) mount, 1 for v1 hierarchies (a memory controller), else None."""
    root = Path(root) if root is not None else cgroup_root()
    if (root / "cgroup.controllers").exists():
        return 2
    if (root / "memory" / "memory.limit_in_bytes").exists():
        return 1
    return None


@dataclass
class Counters:
    """One reading of a group's counters (``None`` = not available)."""

    mem_bytes: int | None = None          # usage - inactive_file (docker stats)
    usage_bytes: int | None = None        # raw usage, page cache included
    rss_bytes: int | None = None          # anonymous memory (v1 total_rss, v2 anon) or process RSS
    mem_peak_bytes: int | None = None     # kernel high-water mark of usage
    cpu_seconds: float | None = None      # cumulative CPU time of the group
    nr_periods: int | None = None         # cumulative CFS periods with runnable tasks
    throttled_periods: int | None = None  # cumulative CFS periods throttled (nr_throttled)
    throttled_seconds: float | None = None
    oom_kills: int | None = None          # cumulative OOM kills inside the group
    mem_limit_bytes: int | None = None    # enforced limit, None = unlimited / unknown
    cpus: float | None = None             # quota / period, None = unlimited / unknown
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    pids: list[int] = field(default_factory=list)
    source: str = ""                      # "cgroup-v1", "cgroup-v2", "psutil", ...

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------
# pure parsers
# --------------------------------------------------------------------------

def parse_keyed(text: str) -> dict[str, int]:
    """A flat keyed file (``key value`` per line): memory.stat, cpu.stat, memory.events,
    memory.oom_control. Non-integer values are skipped."""
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
    """A single-value file (``memory.current``, ``cpuacct.usage``); ``max`` -> None."""
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_cpu_max(text: str) -> float | None:
    """v2 ``cpu.max`` (``"50000 100000"`` or ``"max 100000"``) in CPUs."""
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
    """v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` in CPUs (-1 -> None)."""
    quota, period = parse_int(quota_text), parse_int(period_text)
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_pids(text: str) -> list[int]:
    """``cgroup.procs``."""
    out = []
    for word in text.split():
        try:
            out.append(int(word))
        except ValueError:
            pass
    return out


def parse_v2_io(text: str) -> tuple[int | None, int | None]:
    """v2 ``io.stat`` (``8:0 rbytes=1 wbytes=2 ...`` per device): bytes read, written."""
    if not text.strip():
        return None, None
    rd = wr = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            k, _, v = item.partition("=")
            if v.isdigit():
                if k == "rbytes":
                    rd += int(v)
                elif k == "wbytes":
                    wr += int(v)
    return rd, wr


def parse_v1_io(text: str) -> tuple[int | None, int | None]:
    """v1 ``blkio.throttle.io_service_bytes`` (``8:0 Read 123`` per line): bytes read, written."""
    if not text.strip():
        return None, None
    rd = wr = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                rd += int(parts[2])
            elif parts[1] == "Write":
                wr += int(parts[2])
    return rd, wr


def docker_mem_usage(usage: int | None, inactive_file: int | None) -> int | None:
    """``docker stats`` memory: usage minus inactive file cache (never negative)."""
    if usage is None:
        return None
    if inactive_file is None:
        return usage
    return max(0, usage - inactive_file)


def counters_v1(files: Mapping[str, str | None]) -> Counters:
    """Counters from v1 file contents keyed by file name; a missing file -> None fields."""
    def get(name: str) -> str:
        return files.get(name) or ""

    c = Counters(source="cgroup-v1")
    mstat = parse_keyed(get("memory.stat"))
    c.usage_bytes = parse_int(get("memory.usage_in_bytes"))
    # total_* are hierarchical (include child groups); fall back to the local keys.
    c.mem_bytes = docker_mem_usage(c.usage_bytes, mstat.get("total_inactive_file", mstat.get("inactive_file")))
    c.rss_bytes = mstat.get("total_rss", mstat.get("rss"))
    c.mem_peak_bytes = parse_int(get("memory.max_usage_in_bytes"))
    c.oom_kills = parse_keyed(get("memory.oom_control")).get("oom_kill")
    limit = parse_int(get("memory.limit_in_bytes"))
    c.mem_limit_bytes = limit if limit is not None and limit < _V1_NO_LIMIT else None
    cpu_ns = parse_int(get("cpuacct.usage"))
    c.cpu_seconds = cpu_ns / 1e9 if cpu_ns is not None else None
    cstat = parse_keyed(get("cpu.stat"))
    c.nr_periods = cstat.get("nr_periods")
    c.throttled_periods = cstat.get("nr_throttled")
    tt = cstat.get("throttled_time")  # nanoseconds
    c.throttled_seconds = tt / 1e9 if tt is not None else None
    if files.get("cpu.cfs_quota_us") is not None and files.get("cpu.cfs_period_us") is not None:
        c.cpus = parse_v1_cpu_quota(get("cpu.cfs_quota_us"), get("cpu.cfs_period_us"))
    c.io_read_bytes, c.io_write_bytes = parse_v1_io(get("blkio.throttle.io_service_bytes"))
    c.pids = parse_pids(get("cgroup.procs"))
    return c


def counters_v2(files: Mapping[str, str | None]) -> Counters:
    """Counters from v2 file contents keyed by file name; a missing file -> None fields."""
    def get(name: str) -> str:
        return files.get(name) or ""

    c = Counters(source="cgroup-v2")
    mstat = parse_keyed(get("memory.stat"))
    c.usage_bytes = parse_int(get("memory.current"))
    c.mem_bytes = docker_mem_usage(c.usage_bytes, mstat.get("inactive_file"))
    c.rss_bytes = mstat.get("anon")
    c.mem_peak_bytes = parse_int(get("memory.peak"))
    c.oom_kills = parse_keyed(get("memory.events")).get("oom_kill")
    c.mem_limit_bytes = parse_int(get("memory.max"))
    cstat = parse_keyed(get("cpu.stat"))
    usec = cstat.get("usage_usec")
    c.cpu_seconds = usec / 1e6 if usec is not None else None
    c.nr_periods = cstat.get("nr_periods")
    c.throttled_periods = cstat.get("nr_throttled")
    tu = cstat.get("throttled_usec")
    c.throttled_seconds = tu / 1e6 if tu is not None else None
    if files.get("cpu.max") is not None:
        c.cpus = parse_cpu_max(get("cpu.max"))
    c.io_read_bytes, c.io_write_bytes = parse_v2_io(get("io.stat"))
    c.pids = parse_pids(get("cgroup.procs"))
    return c


# --------------------------------------------------------------------------
# readers (I/O)
# --------------------------------------------------------------------------

def read_text(path: str | os.PathLike) -> str | None:
    try:
        with open(path, "r") as f:
            return f.read()
    except OSError:
        return None


V1_FILES = {
    "memory": ("memory.usage_in_bytes", "memory.stat", "memory.oom_control", "memory.limit_in_bytes",
               "memory.max_usage_in_bytes", "cgroup.procs"),
    "cpuacct": ("cpuacct.usage",),
    "cpu": ("cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "blkio": ("blkio.throttle.io_service_bytes",),
}
V2_FILES = ("memory.current", "memory.stat", "memory.events", "memory.max", "memory.peak",
            "cpu.stat", "cpu.max", "io.stat", "cgroup.procs")


def is_v2(paths: Mapping[str, str]) -> bool:
    return "unified" in paths


def read_v1(paths: Mapping[str, str | os.PathLike]) -> Counters:
    """A v1 group from ``{"memory": dir, "cpu": dir, "cpuacct": dir}``."""
    files: dict[str, str | None] = {}
    for controller, names in V1_FILES.items():
        d = paths.get(controller)
        if d:
            for name in names:
                files[name] = read_text(Path(d) / name)
    if files.get("cgroup.procs") is None:
        for controller in ("cpu", "cpuacct"):
            if paths.get(controller):
                procs = read_text(Path(paths[controller]) / "cgroup.procs")
                if procs is not None:
                    files["cgroup.procs"] = procs
                    break
    return counters_v1(files)


def read_v2(path: str | os.PathLike) -> Counters:
    """A v2 group directory."""
    d = Path(path)
    return counters_v2({name: read_text(d / name) for name in V2_FILES})


def read_cgroups(paths: Mapping[str, str] | None) -> Counters | None:
    """The counters of a state.json ``cgroups`` mapping (v1 or v2); None when no
    directory of it exists (no cgroup, or already removed)."""
    if not paths:
        return None
    if is_v2(paths):
        d = paths["unified"]
        return read_v2(d) if d and Path(d).is_dir() else None
    if not any(d and Path(d).is_dir() for d in paths.values()):
        return None
    return read_v1(paths)


def memory_dir(paths: Mapping[str, str]) -> Path | None:
    d = paths.get("unified") or paths.get("memory")
    return Path(d) if d else None


# --------------------------------------------------------------------------
# the memory high-water mark and its reset
# --------------------------------------------------------------------------

PEAK_SINCE_CREATION = "since the cgroup was created"
PEAK_SINCE_RESET = "since the reset at the steady start"


class PeakMark:
    """The kernel's memory high-water mark of one group, resettable where the kernel allows.

    v1: ``memory.max_usage_in_bytes``; writing 0 resets it for every reader.
    v2: ``memory.peak`` (kernel >= 5.19); since 6.12 a write resets it *for the file
    descriptor written to*, so after :meth:`reset` this object keeps that descriptor open
    and reads through it. Before 6.12 the file opens for writing but the write fails
    (EINVAL): the mark then covers the group's life, since the cgroup was created (for a
    service restarted in the same cgroup, its earlier processes too); :attr:`not_reset_because`
    says why in one line, :meth:`scope` says what the mark covers.
    """

    def __init__(self, paths: Mapping[str, str]):
        self.v2 = is_v2(paths)
        d = memory_dir(paths)
        self.path = (d / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")) if d else None
        self._fd: int | None = None
        self.reset_at: float | None = None
        self.not_reset_because: str | None = None

    def reset(self) -> float | None:
        """Reset the mark to the current usage; the epoch time of the reset, or None
        when this kernel cannot reset it (then the mark covers the group's life)."""
        if self.path is None:
            self.not_reset_because = "no memory cgroup"
            return None
        try:
            if not self.v2:
                with open(self.path, "w") as f:
                    f.write("0")
            else:
                fd = os.open(self.path, os.O_RDWR)
                try:
                    os.write(fd, b"reset\n")
                except OSError:
                    os.close(fd)
                    raise
                self.close()
                self._fd = fd
        except OSError as e:
            self.not_reset_because = peak_reset_refusal(self.v2, e.errno, str(self.path), os.uname().release)
            return None
        self.reset_at = time.time()
        self.not_reset_because = None
        return self.reset_at

    def scope(self) -> str:
        """What :meth:`read` covers, in words for a report."""
        if self.reset_at is not None:
            return PEAK_SINCE_RESET
        return PEAK_SINCE_CREATION + (f" ({self.not_reset_because})" if self.not_reset_because else "")

    def read(self) -> int | None:
        if self._fd is not None:
            try:
                return parse_int(os.pread(self._fd, 64, 0).decode())
            except OSError:
                self.close()  # the group was removed and re-created: read the file again
        return parse_int(read_text(self.path) or "") if self.path else None

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def peak_reset_refusal(v2: bool, err: int | None, path: str, release: str) -> str:
    """Why the high-water mark at ``path`` could not be reset, in one line."""
    if v2 and err == errno.EINVAL:
        return f"Linux {release} cannot reset memory.peak; Linux 6.12 and later can"
    if v2 and err == errno.ENOENT:
        return f"Linux {release} has no memory.peak (5.19 and later have it)"
    if err in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write {path}"
    return f"cannot write {path}: {os.strerror(err) if err else 'unknown error'}"
