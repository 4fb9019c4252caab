"""cgroup v1 and v2: create a service's cgroup(s) with docker's limits, read counters, remove.

v1 (separate or co-mounted hierarchies): ``memory/<name>`` with ``memory.limit_in_bytes``
and ``memory.memsw.limit_in_bytes`` (when swap accounting exists), ``cpu/<name>`` with
``cpu.cfs_period_us=100000`` / ``cpu.cfs_quota_us=cpus*100000``, ``cpuacct/<name>``.
v2: ``<root>/<name>`` with ``memory.max``, ``memory.swap.max``, ``cpu.max "50000 100000"``.

``EDGEBENCH_CGROUP_ROOT`` overrides ``/sys/fs/cgroup`` (used to test the unconfined path).
"""
from __future__ import annotations

import errno
import os
import secrets
import signal
from pathlib import Path

from plumbing.cgroup_counters import Counters, cgroup_root, detect_version, read_cgroups, read_text
from plumbing.errors import EdgebenchError
from plumbing.wait import WaitTimeout, wait_until

PERIOD_US = 100000
V1_CONTROLLERS = ("memory", "cpu", "cpuacct")
PREFIX = "edgebench-"  # every cgroup edgebench creates is named edgebench-<stack-id>-<service>


class CgroupUnavailable(EdgebenchError):
    """No cgroup file system, or no permission to create cgroups."""


def _write(p: Path, value) -> None:
    with open(p, "w") as f:
        f.write(str(value))


def _pids_in(path: Path) -> set[int]:
    return {int(x) for x in (read_text(path / "cgroup.procs") or "").split() if x.strip().isdigit()}


class ServiceCgroup:
    """The cgroup(s) of one service. ``paths``: {"memory"|"cpu"|"cpuacct": dir} (v1) or
    {"unified": dir} (v2)."""

    def __init__(self, version: int, paths: dict[str, str]):
        self.version = version
        self.paths = {k: Path(v) for k, v in paths.items()}

    # ------------------------------------------------------------ creation
    @classmethod
    def create(cls, name: str, mem_limit: int | None, memswap_limit: int | None,
               cpus: float | None, root: Path | None = None) -> "ServiceCgroup":
        """Create and configure; raises CgroupUnavailable (nothing left behind) if impossible."""
        root = root or cgroup_root()
        version = detect_version(root)
        if version is None:
            raise CgroupUnavailable(f"no cgroup file system at {root}")
        made: list[Path] = []
        try:
            if version == 1:
                paths: dict[str, Path] = {}
                real: dict[str, Path] = {}
                for c in V1_CONTROLLERS:
                    base = root / c
                    if not base.is_dir():
                        raise CgroupUnavailable(f"cgroup v1 controller {c} is not mounted at {base}")
                    d = base / name
                    rp = Path(os.path.realpath(base)) / name
                    if str(rp) not in real:
                        os.mkdir(d)
                        made.append(d)
                        real[str(rp)] = d
                    paths[c] = d
                cg = cls(1, {k: str(v) for k, v in paths.items()})
            else:
                # enable the controllers for children of the root
                try:
                    _write(root / "cgroup.subtree_control", "+memory +cpu")
                except OSError:
                    pass
                d = root / name
                os.mkdir(d)
                made.append(d)
                cg = cls(2, {"unified": str(d)})
            cg.made = made
            cg.apply_limits(mem_limit, memswap_limit, cpus)
            return cg
        except CgroupUnavailable:
            for d in reversed(made):
                _rmdir(d)
            raise
        except OSError as e:
            for d in reversed(made):
                _rmdir(d)
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
                raise CgroupUnavailable(f"cannot create cgroup {name} under {root}: {e.strerror}") from None
            raise

    def apply_limits(self, mem_limit: int | None, memswap_limit: int | None, cpus: float | None) -> None:
        """Docker's settings: swap limit unset -> memory+swap = 2*memory; -1 -> unlimited."""
        if self.version == 1:
            mem = self.paths["memory"]
            if mem_limit is not None:
                _write(mem / "memory.limit_in_bytes", mem_limit)
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    sw = memswap_limit if memswap_limit is not None else 2 * mem_limit
                    _write(mem / "memory.memsw.limit_in_bytes", -1 if sw == -1 else sw)
            if cpus is not None:
                cpu = self.paths["cpu"]
                _write(cpu / "cpu.cfs_period_us", PERIOD_US)
                _write(cpu / "cpu.cfs_quota_us", int(round(cpus * PERIOD_US)))
        else:
            d = self.paths["unified"]
            for f, want in (("memory.max", mem_limit), ("cpu.max", cpus)):
                if want is not None and not (d / f).exists():
                    raise CgroupUnavailable(f"cgroup v2 controller {f.split('.')[0]} is not enabled for "
                                            f"{d.parent} (see its cgroup.subtree_control)")
            if mem_limit is not None:
                _write(d / "memory.max", mem_limit)
                if (d / "memory.swap.max").exists():
                    if memswap_limit == -1:
                        _write(d / "memory.swap.max", "max")
                    else:
                        sw = memswap_limit if memswap_limit is not None else 2 * mem_limit
                        _write(d / "memory.swap.max", max(0, sw - mem_limit))
            if cpus is not None:
                _write(d / "cpu.max", f"{int(round(cpus * PERIOD_US))} {PERIOD_US}")

    # ------------------------------------------------------------ membership
    def _dirs(self) -> list[Path]:
        seen, out = set(), []
        for p in self.paths.values():
            rp = os.path.realpath(p)
            if rp not in seen:
                seen.add(rp)
                out.append(p)
        return out

    def add_pid(self, pid: int) -> None:
        """Move ``pid`` (0 = the caller) into every cgroup. Safe in a preexec_fn."""
        for d in self._dirs():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self._dirs():
            out |= _pids_in(d)
        return out

    # ------------------------------------------------------------ counters
    def counters(self) -> Counters:
        """Everything plumbing.cgroup_counters reads (docker-stats memory, CPU, OOM kills, ...)."""
        return read_cgroups({k: str(v) for k, v in self.paths.items()}) or Counters(source="none")

    def oom_kills(self) -> int:
        return self.counters().oom_kills or 0

    # ------------------------------------------------------------ teardown
    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def remove(self, timeout: float = 5.0) -> bool:
        """SIGKILL whatever is left inside, then rmdir every directory. True if all gone."""
        def removed() -> bool:
            self.kill_all()
            for d in reversed(self._dirs()):
                _rmdir(d)
            return not any(d.exists() for d in self._dirs())
        try:
            return wait_until(removed, timeout, "its cgroup directories to be removed", interval=0.05)
        except WaitTimeout:
            return False


def _rmdir(d: Path) -> None:
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def probe(root: Path | None = None) -> str | None:
    """None if this process may create cgroups, else the reason (one line)."""
    try:
        cg = ServiceCgroup.create(f"edgebench-probe-{os.getpid()}-{secrets.token_hex(3)}", None, None, None, root)
    except CgroupUnavailable as e:
        return str(e)
    cg.remove(timeout=1)
    return None


def remove_paths(paths: dict[str, str], timeout: float = 5.0) -> bool:
    """Remove cgroups recorded in a state file (e.g. after the supervisor was SIGKILLed)."""
    if not paths:
        return True
    version = 2 if "unified" in paths else 1
    return ServiceCgroup(version, paths).remove(timeout)


def find_edgebench_cgroups(root: Path | None = None) -> dict[str, dict[str, str]]:
    """Every ``edgebench-*`` cgroup on this machine, as {name: paths mapping}: what a
    stack whose state was lost left behind (v1: one directory per controller)."""
    root = root or cgroup_root()
    version = detect_version(root)
    found: dict[str, dict[str, str]] = {}
    if version == 2:
        for d in sorted(root.glob(PREFIX + "*")):
            if d.is_dir():
                found[d.name] = {"unified": str(d)}
    elif version == 1:
        for c in V1_CONTROLLERS:
            for d in sorted((root / c).glob(PREFIX + "*")) if (root / c).is_dir() else ():
                if d.is_dir():
                    found.setdefault(d.name, {})[c] = str(d)
    return found
