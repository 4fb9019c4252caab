"""The machine-wide list of running stacks, so that `make down` finds every stack edgebench
started (make up, bench, profile, gate), wherever its state directory is.

One small JSON file per stack, ``<runtime dir>/stacks/<stack-id>.json``, pointing at the
stack's state directory. The runtime directory is ``$EDGEBENCH_RUNTIME_DIR``, else
``/run/edgebench`` when writable (root), else ``$XDG_RUNTIME_DIR/edgebench``, else
``/tmp/edgebench-<uid>``. An entry is written when a stack starts and removed once it is
torn down; an entry whose supervisor is dead is *stale*: `down` cleans what it left and
removes it. Cgroups named ``edgebench-<id>-<service>`` that no entry explains (a state
lost with its directory) are found by scanning the cgroup file system.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from plumbing.cgroup_counters import read_text
from plumbing.files import write_json_atomic
from plumbing.process import pid_alive, proc_start_time

from .cgroup_limits import PREFIX, find_edgebench_cgroups

STACK_CGROUP = re.compile(re.escape(PREFIX) + r"(?P<id>[0-9a-f]{8})-(?P<service>.+)$")


def runtime_dir() -> Path:
    env = os.environ.get("EDGEBENCH_RUNTIME_DIR")
    if env:
        return Path(env)
    if os.access("/run", os.W_OK):
        return Path("/run/edgebench")
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "edgebench"
    return Path(f"/tmp/edgebench-{os.getuid()}")


def registry_dir() -> Path:
    return runtime_dir() / "stacks"


def register(stack_id: str, state_dir: Path, engine: str, supervisor_pid: int | None = None,
             owner_pid: int | None = None, compose_file: str | None = None) -> Path:
    """Record a starting stack. ``owner_pid``: the process whose death ends the stack
    (None: a detached stack, `make up`, that lives until `make down`)."""
    import time
    entry = {"stack_id": stack_id, "state_dir": str(state_dir), "engine": engine,
             "supervisor_pid": supervisor_pid,
             "supervisor_starttime": proc_start_time(supervisor_pid) if supervisor_pid else None,
             "owner_pid": owner_pid,
             "owner_starttime": proc_start_time(owner_pid) if owner_pid else None,
             "compose_file": compose_file, "registered_at": time.time()}
    return write_json_atomic(registry_dir() / f"{stack_id}.json", entry)


def unregister(stack_id: str | None) -> None:
    if stack_id:
        (registry_dir() / f"{stack_id}.json").unlink(missing_ok=True)


def entries() -> list[dict]:
    """Every registered stack (unreadable entries are skipped: they name nothing usable)."""
    out = []
    d = registry_dir()
    for p in sorted(d.glob("*.json")) if d.is_dir() else ():
        try:
            e = json.loads(p.read_text())
        except (OSError, ValueError):
            p.unlink(missing_ok=True)
            continue
        if isinstance(e, dict) and e.get("stack_id") and e.get("state_dir"):
            out.append(e)
    return out


def entry_alive(entry: dict) -> bool:
    """A native stack is alive while its supervisor runs; a docker stack until stopped."""
    if entry.get("engine") == "docker":
        return True
    return pid_alive(entry.get("supervisor_pid"), entry.get("supervisor_starttime"))


def _supervisor_of(pid: int) -> int | None:
    """The live stack supervisor that is ``pid``'s parent, or None (an orphan)."""
    stat = read_text(f"/proc/{pid}/stat")
    if not stat:
        return None
    try:
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return None
    cmd = (read_text(f"/proc/{ppid}/cmdline") or "").split("\0")
    return ppid if is_supervisor(cmd) else None


def is_supervisor(argv: list[str]) -> bool:
    """A stack supervisor's command line: ``python -m stack.supervisor ...``, or an older
    checkout's ``python -m stack supervise ...``, so that another checkout's live stack on
    the same machine is left alone whichever edgebench started it."""
    return "stack.supervisor" in argv or ("stack" in argv and "supervise" in argv)


YOUNG_S = 60.0  # an empty cgroup this young may belong to a stack that is starting


def unexplained_cgroups(known_ids: set[str]) -> dict[str, dict]:
    """Stack cgroups (``edgebench-<8 hex>-<service>``) that no registered stack explains:
    {name: {"paths": ..., "pids": [...], "supervisor": pid or None}}. A cgroup whose
    processes are children of a live supervisor belongs to a running stack started by
    another checkout; one without a live supervisor is left over. Empty cgroups younger
    than a minute are not listed: a supervisor creates them just before it starts its
    services."""
    import time

    from plumbing.cgroup_counters import read_cgroups
    out = {}
    for name, paths in find_edgebench_cgroups().items():
        m = STACK_CGROUP.match(name)
        if not m or m.group("id") in known_ids:
            continue
        c = read_cgroups(paths)
        pids = c.pids if c else []
        if not pids:
            try:
                if time.time() - min(os.stat(p).st_mtime for p in paths.values()) < YOUNG_S:
                    continue
            except OSError:
                continue
        sup = next((s for s in map(_supervisor_of, pids) if s), None)
        out[name] = {"paths": paths, "pids": pids, "supervisor": sup}
    return out
