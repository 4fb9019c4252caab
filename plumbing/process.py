"""Process identity and lifetime: what every edgebench package needs so that nothing it
starts outlives it, and nothing it stops is someone else's process.

A pid alone can be reused; pid + start time (field 22 of ``/proc/<pid>/stat``) cannot.
"""
from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
_libc = None


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return int(data.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None, starttime: int | None = None) -> bool:
    """Running (not a zombie) and, when ``starttime`` is given, the same process."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data.rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] in ("Z", "X"):
        return False
    return starttime is None or int(fields[19]) == starttime


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> None:
    """In a child's ``preexec_fn``: the kernel sends ``sig`` when the parent dies, however
    it died (SIGKILL included). ``parent_pid`` (taken before the fork) closes the race of
    a parent that died before the call. The signal follows the *thread* that forked:
    start long-lived children from a thread that lives as long as they should.
    Linux only; elsewhere a no-op."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except Exception:
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def preexec_die_with_parent(sig: int = signal.SIGKILL):
    """A ``preexec_fn`` for ``subprocess.Popen``: the child dies with this process."""
    parent = os.getpid()
    return lambda: die_with_parent(parent, sig)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: what was measured is kept, everything torn down."""


def _raise_terminated(signum, frame):
    raise Terminated()


def sigterm_as_ctrl_c():
    """From now on SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread, so
    `kill <pid>` and a CI timeout end a run as cleanly as Ctrl-C. Returns the undo."""
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, old)
