"""Python API for the orchestrator: start_stack / stop_stack / read_state / wait_healthy.

``start_stack`` parses and validates the compose file and checks ports and binaries in
the caller's process (so bad input fails at once with one line), then spawns the same
detached supervisor as ``python -m stack up`` and waits until every service answers its
health endpoint.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping

from plumbing.files import write_json_atomic

from . import cgroup_limits, registry
from .compose import Compose, ComposeError, load_compose  # noqa: F401  (re-exported)
from .images import StackError, host_ports, plan_service
from .native import http_ok, pid_alive, proc_start_time, signal_group, tail

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMPOSE = REPO_ROOT / "docker-compose.yml"
DEFAULT_STATE_DIR = REPO_ROOT / ".edgebench" / "stack"

__all__ = ["start_stack", "stop_stack", "read_state", "wait_healthy", "StackHandle", "StackError",
           "ComposeError", "DEFAULT_STATE_DIR", "DEFAULT_COMPOSE", "choose_engine"]


def read_state(state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> dict | None:
    p = Path(state_dir) / "state.json"
    for _ in range(3):
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # never happens with atomic writes; be tolerant anyway
            time.sleep(0.05)
    return None


def supervisor_alive(state: dict | None) -> bool:
    return bool(state) and pid_alive(state.get("supervisor_pid"), state.get("supervisor_starttime"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on host:port (SO_REUSEADDR: TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def choose_engine(engine: str = "auto") -> str:
    if engine not in ("auto", "native", "docker"):
        raise StackError(f"engine {engine!r} is unknown; fix: use auto, native or docker")
    if engine != "auto":
        if engine == "docker":
            from .docker_engine import engine_available
            if not engine_available():
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

    def state(self) -> dict:
        return read_state(self.state_dir) or {}

    def service(self, name: str) -> dict:
        return self.state()["services"][name]

    def url(self, name: str) -> str:
        return self.service(name)["url"]

    def pid(self, name: str) -> int | None:
        return self.service(name).get("pid")

    @property
    def stack_id(self) -> str:
        return self.state().get("stack_id")

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
                ports: Mapping[str, int] | None = None, engine: str = "auto", timeout: float = 30,
                extra_args: Mapping[str, list[str]] | None = None, stop_grace: float = 10.0,
                contexts: Mapping[str, str | os.PathLike] | None = None,
                detach: bool = False) -> StackHandle:
    """Start ``compose_path``'s services (``services``: a subset, plus what they depend on;
    ``profiles``: compose profiles to activate) with per-service ``env`` overrides, host
    ``ports`` overrides, ``extra_args`` appended to a service's command and ``contexts``
    replacing a built service's build context (another checkout of it); return once
    every service is healthy. Raises ComposeError / StackError (one line each).

    The stack belongs to the calling process: its supervisor tears it down as soon as this
    process is gone, however it died. ``detach=True`` (`make up`) makes a stack that lives
    until `make down`."""
    state_dir = Path(state_dir).resolve()
    compose = load_compose(compose_path, profiles=tuple(profiles))
    selected = compose.select(list(services) if services else None)
    old = read_state(state_dir)
    if supervisor_alive(old) or (old and old.get("engine") == "docker" and old.get("status") == "running"):
        raise StackError(f"a stack is already running in {state_dir} (supervisor pid {old.get('supervisor_pid')}); "
                         f"fix: python -m stack down --state-dir {state_dir}")
    if old and old.get("status") not in ("stopped", "failed", None):
        _cleanup_leftovers(old)  # a supervisor that died hard: remove what it left
    state_dir.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in selected]
    for n in list(env or {}) + list(ports or {}) + list(extra_args or {}) + list(contexts or {}):
        if n not in compose.all_services:
            raise StackError(f"override for unknown service '{n}'; fix: use one of {', '.join(compose.all_services)}")
    engine = choose_engine(engine)
    stack_id = secrets.token_hex(4)
    if engine == "docker":
        from . import docker_engine
        state = docker_engine.up(compose, state_dir, stack_id, names, tuple(profiles), env, ports, timeout,
                                 cgroup_limits.detect_version(), contexts, extra_args)
        state["state_dir"] = str(state_dir)
        state["owner_pid"] = None if detach else os.getpid()
        state["owner_starttime"] = None if detach else proc_start_time(os.getpid())
        (state_dir / "events.jsonl").write_text("")
        write_json_atomic(state_dir / "state.json", state)
        try:  # the watcher keeps state.json current and owns the stack like a supervisor
            watcher = docker_engine.spawn_watcher(state_dir, state["owner_pid"])
            state.update(supervisor_pid=watcher.pid, supervisor_starttime=proc_start_time(watcher.pid))
            write_json_atomic(state_dir / "state.json", state)
            registry.register(stack_id, state_dir, "docker", watcher.pid, state["owner_pid"],
                              str(compose.path.resolve()))
        except BaseException:
            stop_stack(state_dir)
            raise
        return StackHandle(state_dir)

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
    plans = [plan_service(compose, s, state_dir, hp, (env or {}).get(s.name), (extra_args or {}).get(s.name),
                          context=(contexts or {}).get(s.name))
             for s in selected]
    why = cgroup_limits.probe()
    if why is not None:  # the supervisor will run unconfined: say so before anything starts
        print(f"edgebench stack: warning: {why}; the services will run UNCONFINED: memory and CPU limits "
              f"are NOT enforced (run as root with cgroups mounted, or use --engine docker)",
              file=sys.stderr, flush=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    (state_dir / "events.jsonl").write_text("")
    try:
        (state_dir / "state.json").unlink()
    except FileNotFoundError:
        pass
    write_json_atomic(state_dir / "plan.json", {
        "stack_id": stack_id, "compose_file": str(compose.path.resolve()), "profiles": list(profiles),
        "timeout": timeout, "stop_grace": stop_grace, "services": [p.to_json() for p in plans],
        "owner_pid": None if detach else os.getpid(),
        "owner_starttime": None if detach else proc_start_time(os.getpid())})
    penv = dict(os.environ)
    penv["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + penv["PYTHONPATH"] if penv.get("PYTHONPATH") else "")
    with open(state_dir / "supervisor.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stack", "supervise", "--state-dir", str(state_dir)],
                                cwd=str(REPO_ROOT), env=penv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    handle = StackHandle(state_dir, proc)
    try:
        state = wait_healthy(state_dir, timeout + 15, proc=proc)
    except BaseException:
        stop_stack(state_dir, proc=proc)
        raise
    return handle


def wait_healthy(state_dir: str | os.PathLike = DEFAULT_STATE_DIR, timeout: float = 30,
                 proc: subprocess.Popen | None = None) -> dict:
    """Wait until the supervisor reports every service healthy, then confirm each health URL
    answers. Raises StackError with the supervisor's one-line reason on failure/timeout."""
    state_dir = Path(state_dir)
    deadline = time.monotonic() + timeout
    while True:
        st = read_state(state_dir)
        if st and st.get("status") == "running":
            if all(http_ok(s["health_url"], 2) for s in st["services"].values() if s.get("health_url")):
                return st
        if st and st.get("status") == "failed":
            raise StackError(st.get("error") or "the stack failed to start")
        dead = proc.poll() is not None if proc is not None else (st is not None and not supervisor_alive(st))
        if dead:
            st = read_state(state_dir)
            if st and st.get("error"):
                raise StackError(st["error"])
            raise StackError(f"the stack supervisor exited during start-up: "
                             f"{tail(state_dir / 'supervisor.log', 2) or 'no output'}; fix: see {state_dir}/supervisor.log")
        if time.monotonic() > deadline:
            bad = [n for n, s in ((st or {}).get("services") or {}).items() if s.get("health") != "healthy"]
            raise StackError(f"services not healthy after {timeout:g}s: {', '.join(bad) or '?'}; "
                             f"fix: see the logs in {state_dir}/logs")
        time.sleep(0.05)


def _cleanup_leftovers(state: dict) -> None:
    """What a supervisor killed with SIGKILL leaves: service processes and cgroups."""
    for s in (state.get("services") or {}).values():
        if s.get("pid") and pid_alive(s["pid"], s.get("pid_starttime")):
            signal_group(s["pid"], signal.SIGKILL)
        if s.get("cgroups"):
            cgroup_limits.remove_paths(s["cgroups"])


def stop_stack(state_dir: str | os.PathLike = DEFAULT_STATE_DIR, timeout: float = 30,
               proc: subprocess.Popen | None = None) -> dict | None:
    """Stop the stack recorded in ``state_dir``: SIGTERM to the supervisor, wait for it to
    stop every service and remove its cgroups. Idempotent. Returns the final state."""
    state_dir = Path(state_dir)
    st = read_state(state_dir)
    if st and st.get("engine") == "docker":
        wpid = st.get("supervisor_pid")
        if wpid and pid_alive(wpid, st.get("supervisor_starttime")):  # the watcher first: it writes state.json
            try:
                os.kill(wpid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while pid_alive(wpid, st.get("supervisor_starttime")) and time.monotonic() < deadline:
                time.sleep(0.05)
        st = read_state(state_dir) or st
        if st.get("status") == "running":
            from . import docker_engine
            docker_engine.down(st)
            st["status"] = "stopped"
        st["supervisor_pid"] = None
        write_json_atomic(state_dir / "state.json", st)
        registry.unregister(st.get("stack_id"))
        return st
    pid = st.get("supervisor_pid") if st else (proc.pid if proc else None)
    if proc is None and st and not supervisor_alive(st):
        pid = None
    if pid is None and proc is not None and proc.poll() is None:
        pid = proc.pid
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.pid == pid:
                if proc.poll() is not None:
                    break
            elif not pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)  # it would not stop: clean up behind it
            if proc is not None:
                proc.wait()
    elif proc is not None:
        proc.wait()
    st = read_state(state_dir)
    if st:
        _cleanup_leftovers(st)
        registry.unregister(st.get("stack_id"))
        if st.get("status") not in ("stopped", "failed") or st.get("supervisor_pid"):
            st["status"] = "stopped"
            st["supervisor_pid"] = None
            for s in st.get("services", {}).values():
                s.update(pid=None, status="stopped")
            write_json_atomic(state_dir / "state.json", st)
    return st
