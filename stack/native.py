"""Native engine: one service = one process (group) inside its own cgroup(s).

The child joins its cgroups in ``preexec_fn``, i.e. after fork and before exec, so
not one allocation of the program happens outside the limit. It also gets
``PR_SET_PDEATHSIG=SIGKILL`` so it cannot outlive a supervisor that was SIGKILLed.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from plumbing.process import die_with_parent, pid_alive, proc_start_time  # noqa: F401 (re-exported)

from .cgroup_limits import ServiceCgroup
from .cgroup_view import ViewPlan, enter

proc_starttime = proc_start_time  # the stack's historical name


def spawn(argv: list[str], env: dict[str, str], cwd: str, log_path: Path,
          cgroup: ServiceCgroup | None, append: bool = True, view: ViewPlan | None = None) -> subprocess.Popen:
    """Start ``argv`` in a new session, in ``cgroup`` from before exec, dying with this
    process; output appended to the log after a start line (``append=False``: the log
    holds this run's output alone, as a healthcheck's does). With ``view`` (and a cgroup)
    the child sees its own cgroup at /sys/fs/cgroup, as in a container (stack.cgroup_view)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env)

    parent = os.getpid()

    def pre():
        if cgroup is not None:
            cgroup.add_pid(os.getpid())
            if view is not None:
                enter(view)
        die_with_parent(parent)

    with open(log_path, "ab" if append else "wb", buffering=0) as log:
        if append:
            log.write(f"--- edgebench: start {time.strftime('%Y-%m-%dT%H:%M:%S')} {json.dumps(argv)}\n".encode())
        return subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                preexec_fn=pre)


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_ok(url: str, timeout: float = 0.5) -> bool:
    """One health probe: 2xx within ``timeout``."""
    try:
        with _opener.open(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def signal_group(pid: int, sig: int) -> None:
    """Signal the service's process group (its session), falling back to the pid."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def tail(path: Path, n: int = 3) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("--- edgebench:")]
    except OSError:
        return ""
    return " | ".join(ln.strip() for ln in lines[-n:])
