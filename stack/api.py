"""Python API for the orchestrator: start_stack / stop_stack / wait_healthy (state.json is
read by stack.state.read_state).

``start_stack`` parses and validates the compose file and checks ports and binaries in
the caller's process (so bad input fails at once with one line), then spawns the same
detached supervisor (``python -m stack.supervisor``) and waits until every service
answers its health endpoint.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping

from plumbing.checks import number
from plumbing.files import write_json_atomic
from plumbing.ports import free_port, port_busy
from plumbing.wait import WaitTimeout, wait_until

from . import cgroup_limits, registry
from .compose import Compose, ComposeError, load_compose  # noqa: F401  (re-exported)
from .images import StackError, host_ports, plan_service
from .native import http_ok, pid_alive, proc_start_time, signal_group, tail
from .state import ServiceState, StackState, checked, read_state

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMPOSE = REPO_ROOT / "docker-compose.yml"
DEFAULT_STATE_DIR = REPO_ROOT / ".edgebench" / "stack"
START_TIMEOUT_ENV = "EDGEBENCH_STACK_START_TIMEOUT_S"  # a slower machine (the cgroup v2 guest: minutes)
START_TIMEOUT_S = 30.0

__all__ = ["start_stack", "stop_stack", "stop_all_stacks", "wait_healthy", "StackHandle",
           "StackError", "ComposeError", "DEFAULT_STATE_DIR", "DEFAULT_COMPOSE", "choose_engine"]


def start_timeout() -> float:
    """Seconds every service may take to be healthy: $EDGEBENCH_STACK_START_TIMEOUT_S or 30."""
    text = os.environ.get(START_TIMEOUT_ENV)
    return START_TIMEOUT_S if text is None else float(number(
        text, START_TIMEOUT_ENV, above=0, unit="s", what="a number of seconds",
        fix=f"e.g. {START_TIMEOUT_ENV}=300", error=StackError))


def supervisor_alive(state: StackState | None) -> bool:
    return state is not None and pid_alive(state.supervisor_pid, state.supervisor_starttime)


def choose_engine(engine: str = "auto") -> str:
    if engine not in ("auto", "native", "docker"):
        raise StackError(f"engine {engine!r} is unknown; fix: use auto, native or docker")
    if engine != "auto":
        if engine == "docker":
            from .docker_engine import engine_available
            if not engine_available(timeout=60):   # asked for: wait for a slow machine's answer
                raise StackError("--engine docker: no Docker engine answers `docker info`; "
                                 "fix: start dockerd or use --engine native")
        return engine
    from .docker_engine import engine_available
    return "docker" if engine_available(timeout=3) else "native"


class StackHandle:
    """A running stack. ``with start_stack(...) as h:`` always stops it."""

    def __init__(self, state_dir: Path, proc: subprocess.Popen | None = None):
        self.state_dir = Path(state_dir)
        self._proc = proc

    def state(self) -> StackState:
        """state.json as the model; an empty state before its first write."""
        return read_state(self.state_dir) or StackState()

    def service(self, name: str) -> ServiceState:
        return self.state().services[name]

    def url(self, name: str) -> str:
        return self.service(name).url

    def pid(self, name: str) -> int | None:
        return self.service(name).pid

    @property
    def stack_id(self) -> str:
        return self.state().stack_id

    def stop(self, timeout: float = 30) -> None:
        stop_stack(self.state_dir, timeout=timeout, proc=self._proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def start_stack(compose_path: str | os.PathLike = DEFAULT_COMPOSE,
                state_dir: str | os.PathLike = DEFAULT_STATE_DIR,
                services: Iterable[str] | None = None, profiles: Iterable[str] = (),
                env: Mapping[str, Mapping[str, str]] | None = None,
                ports: Mapping[str, int] | None = None, engine: str = "auto", timeout: float | None = None,
                extra_args: Mapping[str, list[str]] | None = None, stop_grace: float = 10.0,
                contexts: Mapping[str, str | os.PathLike] | None = None,
                detach: bool = False) -> StackHandle:
    """Start ``compose_path``'s services (``services``: a subset, plus what they depend on;
    ``profiles``: compose profiles to activate) with per-service ``env`` overrides, host
    ``ports`` overrides, ``extra_args`` appended to a service's command and ``contexts``
    replacing a built service's build context (another checkout of it); return once
    every service is healthy (within ``timeout`` seconds, default :func:`start_timeout`).
    Raises ComposeError / StackError (one line each).

    The stack belongs to the calling process: its supervisor tears it down as soon as this
    process is gone, however it died. ``detach=True`` (`make up`) makes a stack that lives
    until `make down`."""
    state_dir = Path(state_dir).resolve()
    timeout = start_timeout() if timeout is None else timeout
    profiles = tuple(profiles)
    compose = load_compose(compose_path, profiles=profiles)
    selected = compose.select(list(services) if services else None)
    _claim_state_dir(state_dir)
    _check_overrides(compose, env, ports, extra_args, contexts)
    engine = choose_engine(engine)
    stack_id = secrets.token_hex(4)
    owner = None if detach else os.getpid()
    names = [s.name for s in selected]
    if engine == "docker":
        return _start_docker(compose, state_dir, stack_id, names, profiles, env, ports, timeout,
                             contexts, extra_args, owner)
    hp = _native_host_ports(compose, names, ports)
    plans = [plan_service(compose, s, state_dir, hp, (env or {}).get(s.name), (extra_args or {}).get(s.name),
                          context=(contexts or {}).get(s.name))
             for s in selected]
    why = cgroup_limits.probe()
    if why is not None:  # the supervisor will run unconfined: say so before anything starts
        print(f"edgebench stack: warning: {why}; the services will run UNCONFINED: memory and CPU limits "
              f"are NOT enforced (run as root with cgroups mounted, or use --engine docker)",
              file=sys.stderr, flush=True)
    _write_plan(state_dir, {
        "stack_id": stack_id, "compose_file": str(compose.path.resolve()), "profiles": list(profiles),
        "timeout": timeout, "stop_grace": stop_grace, "services": [p.to_json() for p in plans],
        "owner_pid": owner, "owner_starttime": proc_start_time(owner) if owner else None})
    proc = _spawn_supervisor(state_dir)
    try:
        wait_healthy(state_dir, timeout + 15, proc=proc)
    except BaseException:
        stop_stack(state_dir, proc=proc)
        raise
    return StackHandle(state_dir, proc)


def _claim_state_dir(state_dir: Path) -> None:
    """Refuse a state directory whose stack still runs; clean what a dead one left."""
    old = read_state(state_dir)
    if supervisor_alive(old) or (old and old.engine == "docker" and old.status == "running"):
        raise StackError(f"a stack is already running in {state_dir} (supervisor pid {old.supervisor_pid}); "
                         f"fix: bin/edgebench down --state-dir {state_dir}")
    if old and old.status not in ("stopped", "failed", None):
        _cleanup_leftovers(old)  # a supervisor that died hard: remove what it left
    state_dir.mkdir(parents=True, exist_ok=True)


def _check_overrides(compose: Compose, *overrides: Mapping | None) -> None:
    """Every per-service override names a service of the compose file."""
    for n in (n for o in overrides for n in (o or {})):
        if n not in compose.all_services:
            raise StackError(f"override for unknown service '{n}'; fix: use one of {', '.join(compose.all_services)}")


def _start_docker(compose: Compose, state_dir: Path, stack_id: str, names: list[str], profiles: tuple,
                  env, ports, timeout: float, contexts, extra_args, owner: int | None) -> StackHandle:
    """The Docker engine: compose up, then a watcher that keeps state.json current and
    owns the stack like a supervisor."""
    from . import docker_engine
    state = docker_engine.up(compose, state_dir, stack_id, names, profiles, env, ports, timeout,
                             cgroup_limits.detect_version(), contexts, extra_args)
    state["state_dir"] = str(state_dir)
    state["owner_pid"] = owner
    state["owner_starttime"] = proc_start_time(owner) if owner else None
    (state_dir / "events.jsonl").write_text("")
    write_json_atomic(state_dir / "state.json", state)
    try:
        watcher = docker_engine.spawn_watcher(state_dir, state["owner_pid"])
        state.update(supervisor_pid=watcher.pid, supervisor_starttime=proc_start_time(watcher.pid))
        write_json_atomic(state_dir / "state.json", state)
        registry.register(stack_id, state_dir, "docker", watcher.pid, state["owner_pid"],
                          str(compose.path.resolve()))
    except BaseException:
        stop_stack(state_dir)
        raise
    return StackHandle(state_dir)


def _native_host_ports(compose: Compose, names: list[str], ports: Mapping[str, int] | None) -> dict[str, int]:
    """Each service's host port, refused when two services want one or it is taken."""
    hp = host_ports(compose, dict(ports or {}), free_port)
    used: dict[int, str] = {}
    for n in names:
        if hp[n] in used:
            raise StackError(f"host port {hp[n]} is wanted by both '{used[hp[n]]}' and '{n}'; "
                             f"fix: pass --port {n}=N with another port")
        used[hp[n]] = n
    for n in names:
        if port_busy(hp[n]):
            raise StackError(f"port 127.0.0.1:{hp[n]} (service '{n}') is already in use; "
                             f"fix: stop what listens there or pass --port {n}=<free port>")
    return hp


def _write_plan(state_dir: Path, plan: dict) -> None:
    """A fresh state directory for the supervisor: empty logs and events, no old
    state.json, and plan.json (what it runs)."""
    (state_dir / "logs").mkdir(exist_ok=True)
    (state_dir / "events.jsonl").write_text("")
    try:
        (state_dir / "state.json").unlink()
    except FileNotFoundError:
        pass
    write_json_atomic(state_dir / "plan.json", plan)


def _spawn_supervisor(state_dir: Path) -> subprocess.Popen:
    """``python -m stack.supervisor``, detached in its own session, logging beside its state."""
    penv = dict(os.environ)
    penv["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + penv["PYTHONPATH"] if penv.get("PYTHONPATH") else "")
    with open(state_dir / "supervisor.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "stack.supervisor", "--state-dir", str(state_dir)],
                                cwd=str(REPO_ROOT), env=penv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def wait_healthy(state_dir: str | os.PathLike = DEFAULT_STATE_DIR, timeout: float = 30,
                 proc: subprocess.Popen | None = None) -> StackState:
    """Wait until the supervisor reports every service healthy, then confirm each health URL
    answers. Raises StackError with the supervisor's one-line reason on failure/timeout."""
    state_dir = Path(state_dir)
    last: dict = {}

    def healthy() -> StackState | None:
        st = last["state"] = read_state(state_dir)
        if st and st.status == "running":
            if all(http_ok(s.health_url, 2) for s in st.services.values() if s.health_url):
                return st
        if st and st.status == "failed":
            raise StackError(st.error or "the stack failed to start")
        dead = proc.poll() is not None if proc is not None else (st is not None and not supervisor_alive(st))
        if dead:
            st = read_state(state_dir)
            if st and st.error:
                raise StackError(st.error)
            raise StackError(f"the stack supervisor exited during start-up: "
                             f"{tail(state_dir / 'supervisor.log', 2) or 'no output'}; fix: see {state_dir}/supervisor.log")
        return None

    try:
        return wait_until(healthy, timeout, "every service to be healthy", interval=0.05)
    except WaitTimeout:
        bad = [n for n, s in (last.get("state") or StackState()).services.items() if s.health != "healthy"]
        raise StackError(f"services not healthy after {timeout:g}s: {', '.join(bad) or '?'}; "
                         f"fix: see the logs in {state_dir}/logs") from None


def _cleanup_leftovers(state: StackState) -> None:
    """What a supervisor killed with SIGKILL leaves: service processes and cgroups."""
    for s in state.services.values():
        if s.pid and pid_alive(s.pid, s.pid_starttime):
            signal_group(s.pid, signal.SIGKILL)
        if s.cgroups:
            cgroup_limits.remove_paths(s.cgroups)


def stop_stack(state_dir: str | os.PathLike = DEFAULT_STATE_DIR, timeout: float = 30,
               proc: subprocess.Popen | None = None) -> StackState | None:
    """Stop the stack recorded in ``state_dir``: SIGTERM to the supervisor, wait for it to
    stop every service and remove its cgroups. Idempotent. Returns the final state."""
    state_dir = Path(state_dir)
    st = read_state(state_dir)
    if st and st.engine == "docker":
        wpid = st.supervisor_pid
        if wpid and pid_alive(wpid, st.supervisor_starttime):  # the watcher first: it writes state.json
            try:
                os.kill(wpid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                wait_until(lambda: not pid_alive(wpid, st.supervisor_starttime), 10,
                           "the docker watcher to exit", interval=0.05)
            except WaitTimeout:
                pass  # it would not go: the stack is taken down below all the same
        st = read_state(state_dir) or st
        if st.status == "running":
            from . import docker_engine
            docker_engine.down(st)
            st = st.model_copy(update={"status": "stopped"})
        st = st.model_copy(update={"supervisor_pid": None})
        _write_state(state_dir, st)
        registry.unregister(st.stack_id)
        return st
    pid = st.supervisor_pid if st else (proc.pid if proc else None)
    if proc is None and st and not supervisor_alive(st):
        pid = None
    if pid is None and proc is not None and proc.poll() is None:
        pid = proc.pid
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        def gone() -> bool:
            if proc is not None and proc.pid == pid:
                return proc.poll() is not None
            return not pid_alive(pid)
        try:
            wait_until(gone, timeout, "the stack supervisor to stop", interval=0.05)
        except WaitTimeout:
            os.kill(pid, signal.SIGKILL)  # it would not stop: clean up behind it
            if proc is not None:
                proc.wait()
    elif proc is not None:
        proc.wait()
    st = read_state(state_dir)
    if st:
        _cleanup_leftovers(st)
        registry.unregister(st.stack_id)
        if st.status not in ("stopped", "failed") or st.supervisor_pid:
            st = st.model_copy(update={"status": "stopped", "supervisor_pid": None, "services": {
                n: s.model_copy(update={"pid": None, "status": "stopped"}) for n, s in st.services.items()}})
            _write_state(state_dir, st)
    return st


def _write_state(state_dir: Path, st: StackState) -> None:
    """``st`` back to state.json, with the keys its writer wrote and those changed since."""
    write_json_atomic(state_dir / "state.json", checked(st.model_dump(exclude_unset=True)))


def stop_all_stacks(timeout: float = 30, say: Callable[[str], None] = print) -> int:
    """Stop every stack edgebench started on this machine: each registered stack (a stale
    entry's leftovers are cleaned from its state directory), then any stack cgroup no entry
    explains and no live supervisor owns. ``say`` gets one line per thing it stopped, or
    left running, or that there was nothing; returns how many things it named."""
    stopped = 0
    for e in registry.entries():
        alive = registry.entry_alive(e)
        st = read_state(e["state_dir"])
        stop_stack(e["state_dir"], timeout=timeout)
        registry.unregister(e["stack_id"])
        names = ", ".join(st.services if st else ()) or "no service"
        say(f"stopped stack {e['stack_id']} ({names}; state {e['state_dir']})"
            + ("" if alive else " - its supervisor was already gone: cleaned what it left"))
        stopped += 1
    known = {e["stack_id"] for e in registry.entries()}
    for name, info in registry.unexplained_cgroups(known).items():
        stopped += 1
        if info["supervisor"]:
            say(f"left running: cgroup {name} belongs to a live supervisor (pid {info['supervisor']}) "
                f"that is not registered here (another checkout); stop it there")
            continue
        ok = cgroup_limits.remove_paths(info["paths"])
        say(f"removed leftover cgroup {name}" + (f" and killed pids {info['pids']}" if info["pids"] else "")
            + ("" if ok else " (NOT removed: still busy)"))
    if not stopped:
        say("no stack running: nothing to stop")
    return stopped
