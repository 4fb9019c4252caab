"""What `status` and `up` print: one stack's table (limits, memory, CPU, restarts) or every
registered stack's, read from state.json and the services' cgroups. Display only: the
stack is started, stopped and recorded by stack.api; edgebench's
`up`/`status` both print through here."""
from __future__ import annotations

import json
import time
from pathlib import Path

from . import registry
from .api import supervisor_alive
from .cgroup_limits import ServiceCgroup
from .images import StackError
from .state import StackState, read_state

CPU_WINDOW_S = 0.5  # CPU % is measured over this window from the cgroup counters (docker stats semantics)


def _mb(n) -> str:
    return "-" if n in (None, 0) else f"{n / 1048576:.1f}M"


def show_started(state: StackState, state_dir: Path, seconds: float) -> None:
    """The lines `up` prints once every service is healthy."""
    print(f"stack {state.stack_id} up ({state.engine}) in {seconds:.1f}s; "
          f"state {state_dir}/state.json")
    for n, s in state.services.items():
        print(f"  {n}: {s.url} pid {s.pid or s.container_id}")


def show_stopped(state: StackState | None, state_dir: Path) -> None:
    """The line `down` prints for one stack (``state``: what stop_stack returned)."""
    print(f"stack {state.stack_id} stopped" if state else f"no stack in {state_dir}")


def show_all_status() -> int:
    """Every registered stack, then stray stack cgroups; 1 when there is none."""
    found = registry.entries()
    for e in found:
        if not registry.entry_alive(e):
            print(f"stack {e['stack_id']} (state {e['state_dir']}): STALE, its supervisor is gone; "
                  f"`make down` cleans it")
            continue
        show_status(Path(e["state_dir"]))
    strays = registry.unexplained_cgroups({e["stack_id"] for e in found})
    for name, info in strays.items():
        owner = f"supervisor pid {info['supervisor']}" if info["supervisor"] else "no supervisor: left over"
        print(f"cgroup {name}: pids {info['pids'] or '-'} ({owner})")
    if not found and not strays:
        print("no stack running")
        return 1
    return 0


def show_status(state_dir: Path, as_json: bool = False) -> int:
    """One stack's header line and service table (or its state.json); 1 when there is none."""
    st = read_state(state_dir)
    if not st:
        print(f"no stack in {state_dir}")
        return 1
    if as_json:
        print(json.dumps(st.model_dump(exclude_unset=True), indent=1))
        return 0
    alive = supervisor_alive(st) if st.engine == "native" else st.status == "running"
    _print_header(st, alive)
    stats = _docker_stats(st)
    usage = _usage(st, alive, stats)
    print(f"{'service':<18}{'status':<12}{'health':<9}{'pid':>8} {'url':<24}{'mem':>9}{'limit':>9}"
          f"{'cpus':>6}{'cpu%':>7}{'cpu_s':>9}{'restarts':>9}{'ooms':>6}")
    for n, s in st.services.items():
        mem, cpu_pct, cpu_s = usage.get(n, (None, None, None))
        print(f"{n:<18}{s.status or '?':<12}{s.health or '-':<9}{s.pid or '-':>8} "
              f"{s.url or '-':<24}{_mb(mem):>9}{_mb(s.mem_limit_bytes):>9}"
              f"{s.cpus if s.cpus is not None else '-':>6}"
              f"{'-' if cpu_pct is None else f'{cpu_pct:.1f}':>7}{'-' if cpu_s is None else f'{cpu_s:.2f}':>9}"
              f"{s.restarts or 0:>9}{s.oom_kills or 0:>6}")
    return 0


def _print_header(st: StackState, alive: bool) -> None:
    print(f"stack {st.stack_id} engine={st.engine} status={st.status}"
          f"{'' if alive or st.engine != 'native' else ' (supervisor not running)'} "
          f"cgroup v{st.cgroup_version} limits_enforced={st.limits_enforced}")
    if st.limits_enforced is False:
        print("warning: running UNCONFINED, memory and CPU limits are NOT enforced")
    if st.error:
        print(f"error: {st.error}")


def _docker_stats(st: StackState) -> dict:
    """`docker stats` per service, where the Docker engine's cgroups cannot be read."""
    if not (st.engine == "docker" and st.status == "running" and st.counters_source != "cgroup"):
        return {}
    from .docker_engine import stats as dstats
    try:
        return dstats(st)
    except StackError as e:
        print(f"warning: {e}")
        return {}


def _usage(st: StackState, alive: bool, stats: dict) -> dict[str, tuple]:
    """(memory bytes, CPU %, CPU seconds) per service, each None where unknown: from its
    cgroup (CPU % over CPU_WINDOW_S), from the process tree when it runs unconfined, or
    from `docker stats`."""
    cgs = {n: ServiceCgroup(2 if "unified" in s.cgroups else 1, s.cgroups)
           for n, s in st.services.items() if s.cgroups and alive}
    cpu0 = {n: cg.counters().cpu_seconds or 0.0 for n, cg in cgs.items()}
    t0 = time.monotonic()
    if cgs:
        time.sleep(CPU_WINDOW_S)  # the measuring window itself, not a wait for readiness
    dt = time.monotonic() - t0
    out: dict[str, tuple] = {}
    for n, s in st.services.items():
        if n in cgs:
            try:
                now = cgs[n].counters()
                c = now.cpu_seconds or 0.0
                out[n] = (now.mem_bytes, 100 * (c - cpu0[n]) / dt, c)
            except (OSError, KeyError):
                pass
        elif alive and s.pid and st.engine == "native":
            out[n] = _process_tree_usage(s.pid)
        else:
            d = stats.get(n) or next((v for v in stats.values()
                                      if s.container_id and s.container_id.startswith(v["id"])), None)
            if d is not None:
                out[n] = (d["mem_bytes"], d["cpu_percent"], None)
    return out


def _process_tree_usage(pid: int) -> tuple:
    """An unconfined service: its process and children, RSS and user+system CPU."""
    try:
        import psutil
        pr = psutil.Process(pid)
        procs = [pr] + pr.children(recursive=True)
        return (sum(p.memory_info().rss for p in procs), None,
                sum(sum(p.cpu_times()[:2]) for p in procs))
    except Exception:
        return (None, None, None)
