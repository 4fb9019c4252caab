"""What a native service sees of its own limits: a container's view of ``/sys/fs/cgroup``.

Inside ``docker run`` a process reads its own limits at ``/sys/fs/cgroup`` (a cgroup
namespace rooted at its container's cgroup, mounted read-only). A native service that only
*joins* its cgroup reads the host's root there instead: VictoriaMetrics then sizes its caches
from the host's RAM and its GOMAXPROCS from the host's CPUs. So, in the child after it has
joined its cgroups and before it execs, ``enter`` unshares a cgroup namespace and a private
mount namespace and mounts the host's cgroup hierarchies again, read-only, at the same
places: each mount then shows the service's own cgroup as its root, as Docker's does.

``plan_view`` reads the mount table in the parent (nothing may fail late in a child);
``enter`` only makes system calls. ``check_view`` tries it once in a throwaway child, so a
machine where it cannot work (no namespaces, not root) is said once, at start-up.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from dataclasses import dataclass, field

CGROUP_DIR = "/sys/fs/cgroup"
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_RELATIME = 1 << 21
_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME
_GENERIC_OPTS = {"rw", "ro", "relatime", "noatime", "nodiratime", "strictatime", "nosuid", "nodev",
                 "noexec", "clone_children"}


@dataclass
class CgroupMount:
    fstype: str          # cgroup (v1) or cgroup2
    target: str          # where it is mounted, e.g. /sys/fs/cgroup/memory
    options: str         # the hierarchy's controllers / name=, e.g. "memory" or "name=systemd"


@dataclass
class ViewPlan:
    """How to rebuild ``/sys/fs/cgroup`` in a service's own namespaces."""
    tmpfs: bool                               # v1/hybrid: a tmpfs holds one directory per hierarchy
    mounts: list[CgroupMount] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # name -> symlink target (co-mounted names)


def _hierarchy_options(fstype: str, super_opts: str) -> str:
    if fstype == "cgroup2":
        return ""
    keep = [o for o in super_opts.split(",") if o and o not in _GENERIC_OPTS and not o.startswith("release_agent=")]
    return ",".join(keep)


def plan_view(mountinfo: str | None = None, cgroup_dir: str = CGROUP_DIR) -> ViewPlan | None:
    """The cgroup mounts at and below ``cgroup_dir`` from ``/proc/self/mountinfo``, or None when
    there are none (then a service sees what the host shows, and nothing is changed)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        except OSError:
            return None
    top: str | None = None
    mounts: dict[str, CgroupMount] = {}
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        target = fields[4].replace("\\040", " ")
        if target != cgroup_dir and not target.startswith(cgroup_dir + "/"):
            continue
        fstype = tail[0]
        if target == cgroup_dir:
            top = fstype
            mounts.pop(target, None)
        if fstype in ("cgroup", "cgroup2"):
            mounts[target] = CgroupMount(fstype, target, _hierarchy_options(fstype, tail[2]))
    if not mounts:
        return None
    if top == "cgroup2":  # the unified hierarchy alone
        return ViewPlan(tmpfs=False, mounts=[mounts[cgroup_dir]])
    links = {}
    try:
        for name in sorted(os.listdir(cgroup_dir)):
            p = os.path.join(cgroup_dir, name)
            if os.path.islink(p):
                links[name] = os.readlink(p)
    except OSError:
        pass
    below = [m for t, m in sorted(mounts.items()) if t != cgroup_dir]
    return ViewPlan(tmpfs=True, mounts=below, links=links)


_libc = None


def _call(name: str, *args) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _call("mount", source.encode(), target.encode(), fstype.encode() if fstype else None,
          ctypes.c_ulong(flags), data.encode() if data else None)


def enter(plan: ViewPlan, cgroup_dir: str = CGROUP_DIR) -> None:
    """In the child, after it joined its cgroups and before exec: new cgroup and mount
    namespaces, and ``cgroup_dir`` rebuilt read-only from ``plan``. Changes nothing the host
    sees (the mount namespace is private from its root down)."""
    _call("unshare", CLONE_NEWCGROUP | CLONE_NEWNS)
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    if plan.tmpfs:
        _mount("tmpfs", cgroup_dir, "tmpfs", _FLAGS, "mode=755")
        for m in plan.mounts:
            os.makedirs(m.target, exist_ok=True)
        for name, dest in plan.links.items():
            os.symlink(dest, os.path.join(cgroup_dir, name))
    for m in plan.mounts:
        _mount(m.fstype, m.target, m.fstype, _FLAGS | MS_RDONLY, m.options or None)
    if plan.tmpfs:
        _mount("tmpfs", cgroup_dir, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _FLAGS, None)


_CHECK = ("import sys; from stack.cgroup_view import plan_view, enter; p = plan_view(); "
          "enter(p) if p else sys.exit('no cgroup mounts to rebuild'); "
          "print(open('/proc/self/cgroup').read().splitlines()[0])")


def check_view(cwd: str, timeout: float = 10.0) -> str | None:
    """None if a child can get its own view here, else the reason (one line). Runs a
    throwaway child that enters the view in the root cgroup and reads ``/proc/self/cgroup``."""
    try:
        r = subprocess.run([sys.executable, "-c", _CHECK], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot start the view check: {e}"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return f"a cgroup namespace cannot be entered here ({last})"
    return None if r.stdout.strip().endswith(":/") else f"the namespace shows {r.stdout.strip()!r}, not its own root"
