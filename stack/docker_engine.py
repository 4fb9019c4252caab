"""Docker engine: runs the stack with ``docker compose`` (v2 plugin) or ``docker-compose``
(1.28 or newer), against whatever daemon ``DOCKER_HOST`` names.

Instead of an override file (the ``!override`` tag needs Compose 2.24), every stack gets
one fully resolved compose file, ``<state-dir>/compose.yml``: the user's file
interpolated, relative paths made absolute, port/env/argument/context overrides applied,
image builds on the host's network. No ``--wait`` (Compose 1.x has none): ``up`` polls
each container, its health endpoint and then runs the compose healthcheck's own test
command in the container once (``docker exec``), so a test command the image lacks is
one line at start, not an ``unhealthy`` ten seconds later.

Each container's cgroup is read from the container itself: ``docker inspect`` gives
its host pid, ``/proc/<pid>/cgroup`` its groups, ``/proc/self/mountinfo`` where they
are mounted. Where none is readable (Docker Desktop, rootless), counters come from
``docker stats`` and ``state.json`` says ``"counters_source": "docker stats"``.

A watcher process (``python -m stack.docker_engine --state-dir DIR``, started by ``up``,
never by hand) follows ``docker events`` for the
project: it keeps pids, restart counts (RestartCount), OOM kills (``oom`` events) and
health in ``state.json`` current, and tears the stack down when its owner is gone,
as the native supervisor does. The command builders are pure and unit-tested.
"""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from plumbing.cgroup_counters import Counters
from plumbing.files import write_json_atomic
from plumbing.process import proc_start_time
from plumbing.wait import WaitTimeout, wait_until

from .compose import Compose, _interpolate_tree
from .images import StackError, adapter_for, service_port
from .state import ServiceState, StackState, checked, parse_state, read_state

MIN_V1 = (1, 28)  # profiles arrived in docker-compose 1.28
COMPOSE_NEEDED = "docker-compose >= 1.28 or the docker compose v2 plugin"
BUILD_ENV = "EDGEBENCH_DOCKER_BUILD"


def builds_images(environ: dict | None = None) -> bool:
    """Whether ``up`` builds the images the compose file builds (``--build``): yes, unless
    $EDGEBENCH_DOCKER_BUILD is 0, where the images the engine has are used as they are
    (loaded with ``docker load`` on a machine that cannot build them, e.g. without network)."""
    value = (os.environ if environ is None else environ).get(BUILD_ENV, "1")
    if value not in ("0", "1"):
        raise StackError(f"{BUILD_ENV}={value!r}: write 1 (build the images, the default) or 0 (use the "
                         f"images the Docker engine has)")
    return value == "1"


def engine_available(timeout: float = 5.0) -> bool:
    if not shutil.which("docker"):
        return False
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                           timeout=timeout, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and bool(r.stdout.strip())


def parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def pick_compose(plugin_version: str | None, v1_version: str | None) -> list[str]:
    """The compose command to use, from the versions each answered (None: not installed).
    Pure; raises StackError with the version needed."""
    if plugin_version and parse_version(plugin_version) and parse_version(plugin_version) >= (2,):
        return ["docker", "compose"]
    if v1_version:
        v = parse_version(v1_version)
        if v and v >= MIN_V1:
            return ["docker-compose"]
        raise StackError(f"docker-compose {v1_version.strip()} cannot run the stack (no profiles); "
                         f"fix: install {COMPOSE_NEEDED}")
    raise StackError(f"neither `docker compose` nor `docker-compose` is installed; fix: install {COMPOSE_NEEDED} "
                     f"(`make os-packages`) or use --engine native")


def _version_of(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        r = subprocess.run(cmd + ["version", "--short"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def compose_base() -> list[str]:
    """``docker compose`` if the v2 plugin answers, else ``docker-compose`` >= 1.28."""
    return pick_compose(_version_of(["docker", "compose"]), _version_of(["docker-compose"]))


def project_name(stack_id: str) -> str:
    return f"edgebench-{stack_id}"


# ------------------------------------------------------------------ resolved compose file

def _abs_volume(v, project_dir: Path):
    if isinstance(v, str):
        parts = v.split(":")
        if len(parts) >= 2 and parts[0].startswith((".", "~")):
            parts[0] = str((project_dir / os.path.expanduser(parts[0])).resolve())
        return ":".join(parts)
    if isinstance(v, dict) and v.get("type") == "bind" and v.get("source"):
        return {**v, "source": str((project_dir / os.path.expanduser(v["source"])).resolve())}
    return v


def resolved_doc(compose: Compose, raw: dict, env: dict | None = None, ports: dict | None = None,
                 contexts: dict | None = None, extra_args: dict | None = None,
                 build_args: dict | None = None, environ: dict | None = None) -> dict:
    """The compose document this stack runs: ``raw`` (the user's YAML) interpolated, paths
    absolute, overrides applied. Pure (``environ`` defaults to os.environ)."""
    def err(path, msg):
        raise StackError(f"{compose.path}: {'.'.join(path)}: {msg}; fix: set the variable or quote '$' as '$$'")

    doc = _interpolate_tree(raw, dict(os.environ if environ is None else environ), (), err)
    doc.pop("version", None)
    pdir = compose.project_dir
    for name, spec in doc["services"].items():
        svc = compose.all_services[name]
        if svc.build is not None:
            b = spec.get("build")
            b = {"context": b} if isinstance(b, str) else dict(b or {})
            b["context"] = str((contexts or {}).get(name) or svc.build["context"])
            b["network"] = "host"  # pip in the build reaches the index as this machine does
            if build_args:
                b["args"] = {**(b.get("args") or {}), **build_args}
            spec["build"] = b
        if spec.get("volumes"):
            spec["volumes"] = [_abs_volume(v, pdir) for v in spec["volumes"]]
        if ports and name in ports and service_port(svc):
            spec["ports"] = [f"127.0.0.1:{int(ports[name])}:{service_port(svc)}"]
        if env and env.get(name):
            e = spec.get("environment") or {}
            if isinstance(e, list):
                e = dict(x.split("=", 1) if "=" in x else (x, "") for x in e)
            spec["environment"] = {**{k: str(v) for k, v in e.items()},
                                   **{k: str(v) for k, v in env[name].items()}}
        if extra_args and extra_args.get(name):
            spec["command"] = list(svc.command or []) + list(extra_args[name])
    return doc


def base_args(base: list[str], compose_file: str, project: str, profiles=()) -> list[str]:
    args = list(base) + ["-f", str(compose_file), "-p", project]
    for p in profiles:
        args += ["--profile", p]
    return args


def up_cmd(base, compose_file, project, services, profiles=(), build=False) -> list[str]:
    """No ``--wait``: docker-compose 1.x lacks it; ``up`` polls health itself."""
    return base_args(base, compose_file, project, profiles) + ["up", "-d"] + (["--build"] if build else []) \
        + list(services)


def down_cmd(base, compose_file, project, profiles=()) -> list[str]:
    """``-v``: the project's named volumes (collector data) go with it."""
    return base_args(base, compose_file, project, profiles) + ["down", "-v", "--remove-orphans", "--timeout", "10"]


def ps_cmd(base, compose_file, project, service=None) -> list[str]:
    return base_args(base, compose_file, project) + ["ps", "-q"] + ([service] if service else [])


def stats_cmd(container_ids: list[str]) -> list[str]:
    return ["docker", "stats", "--no-stream", "--format", "{{json .}}"] + list(container_ids)


def events_cmd(project: str, since: float) -> list[str]:
    return ["docker", "events", "--since", f"{since:.3f}", "--format", "{{json .}}",
            "--filter", "type=container", "--filter", f"label=com.docker.compose.project={project}"]


# ------------------------------------------------------------------ cgroups of a container

V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
                  "perf_event", "hugetlb", "pids", "rdma", "misc"}


def parse_mountinfo(text: str) -> list[dict]:
    """cgroup mounts of /proc/self/mountinfo: [{"root", "mount", "version", "controllers"}]."""
    out = []
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        f, p = pre.split(), post.split()
        if len(f) < 5 or len(p) < 3 or p[0] not in ("cgroup", "cgroup2"):
            continue
        opts = set(p[2].split(","))
        ctl = sorted(opts & V1_CONTROLLERS) if p[0] == "cgroup" else []
        out.append({"root": f[3], "mount": f[4], "version": 2 if p[0] == "cgroup2" else 1, "controllers": ctl})
    return out


def cgroups_from_proc(proc_cgroup: str, mounts: list[dict]) -> dict:
    """A process's cgroup directories, from /proc/<pid>/cgroup and the cgroup mounts: v1
    {"memory", "cpu", "cpuacct"} (all three or nothing), v2 {"unified"}. Pure."""
    def on_disk(m: dict, path: str) -> str | None:
        root = m["root"].rstrip("/")
        if root and not (path == root or path.startswith(root + "/")):
            return None
        return m["mount"].rstrip("/") + path[len(root):]

    v1: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        ctls, _, path = rest.partition(":")
        if hid == "0" and ctls == "":
            m = next((m for m in mounts if m["version"] == 2), None)
            d = on_disk(m, path) if m else None
            if d and not v1:
                return {"unified": d}
            continue
        for c in ctls.split(","):
            if c in ("memory", "cpu", "cpuacct"):
                m = next((m for m in mounts if m["version"] == 1 and c in m["controllers"]), None)
                d = on_disk(m, path) if m else None
                if d:
                    v1[c] = d
    return v1 if set(v1) == {"memory", "cpu", "cpuacct"} else {}


def container_cgroups(pid: int | None) -> dict:
    """The container's cgroup directories that exist here ({} if none is readable)."""
    if not pid:
        return {}
    try:
        proc = Path(f"/proc/{pid}/cgroup").read_text()
        mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return {}
    cg = cgroups_from_proc(proc, mounts)
    return cg if cg and all(os.path.isdir(d) for d in cg.values()) else {}


# ------------------------------------------------------------------ docker calls

def _run(cmd: list[str], timeout: float, hint: str = "see `docker logs <container>`") -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StackError(f"`{' '.join(cmd[:4])} ...` did not finish within {timeout:g}s; fix: check the Docker engine") from None
    if r.returncode != 0:
        lines = [x for x in r.stderr.strip().splitlines() if x.strip() and "IPv4 forwarding" not in x]
        raise StackError(f"`{' '.join(cmd[:4])} ...` failed: {(lines or ['no output'])[-1].strip()}; fix: {hint}")
    return r.stdout


def inspect(ids: list[str]) -> list[dict]:
    ids = [i for i in ids if i]
    if not ids:
        return []
    r = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=120)
    try:
        return json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return []


def container_facts(info: dict) -> dict:
    """What state.json keeps of ``docker inspect``. Pure."""
    st = info.get("State") or {}
    pid = st.get("Pid") or None
    return {"container_id": info.get("Id"), "pid": pid, "status": st.get("Status") or "?",
            "health": ((st.get("Health") or {}).get("Status")), "restarts": int(info.get("RestartCount") or 0),
            "oom_killed": bool(st.get("OOMKilled")), "exit_code": st.get("ExitCode"),
            "volumes": {m["Destination"]: m["Source"] for m in info.get("Mounts") or []
                        if m.get("Type") == "volume" and m.get("Source")}}


def docker_stats_reader(name: str, svc: ServiceState, state: StackState) -> Counters | None:
    """A ResourceSampler reader for a docker service without a readable cgroup."""
    if state.engine != "docker" or svc.cgroups or not svc.container_id:
        return None
    try:
        d = next(iter(parse_stats(_run(stats_cmd([svc.container_id]), 30)).values()), None)
    except StackError:
        return None
    if d is None:
        return None
    return Counters(mem_bytes=d["mem_bytes"], mem_limit_bytes=d["mem_limit_bytes"] or None,
                    source="docker-stats")


_SIZE = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
         "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not m:
        return 0
    return int(float(m.group(1)) * _SIZE.get(m.group(2).lower() or "b", 1))


def parse_stats(text: str) -> dict[str, dict]:
    """``docker stats --no-stream --format '{{json .}}'`` lines -> {name: {mem_bytes, mem_limit_bytes, cpu_percent}}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        d = json.loads(line)
        used, _, limit = d.get("MemUsage", "0B / 0B").partition("/")
        out[d.get("Name") or d.get("Container")] = {
            "id": d.get("ID") or d.get("Container"), "mem_bytes": _size(used), "mem_limit_bytes": _size(limit),
            "cpu_percent": float(d.get("CPUPerc", "0%").rstrip("%") or 0), "pids": int(d.get("PIDs", 0) or 0)}
    return out


def stats(state: StackState) -> dict:
    ids = [s.container_id for s in state.services.values() if s.container_id]
    return parse_stats(_run(stats_cmd(ids), 30)) if ids else {}


# ------------------------------------------------------------------ up / down

def _healthcheck_argv(svc) -> list[str] | None:
    hc = svc.healthcheck
    if not hc:
        return None
    return list(hc["test"]) if hc.get("test") else ["/bin/sh", "-c", hc["shell"]]


def _check_in_container(cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        r = subprocess.run(["docker", "exec", cid, *argv], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return r.returncode, (r.stderr or r.stdout).strip().splitlines()[-1:][0] if (r.stderr or r.stdout).strip() else ""


def up(compose: Compose, state_dir: Path, stack_id: str, services: list[str], profiles, env, ports,
       timeout: float, cgroup_version: int | None, contexts: dict | None = None,
       extra_args: dict | None = None) -> dict:
    """Start with compose, wait until healthy and return the state dict (the caller writes
    it). On any failure the project is taken down before the error is raised."""
    from .images_offline import base_build_arg, check_missing, python_base_tag

    base = compose_base()
    project = project_name(stack_id)
    build = builds_images() and any(compose.all_services[n].build is not None for n in services)
    bargs = {"BASE_IMAGE": b} if build and (b := base_build_arg()) else None
    doc = resolved_doc(compose, compose.document(), env, ports, contexts, extra_args, bargs)
    cfile = state_dir / "compose.yml"
    cfile.write_text("# written by edgebench for this stack: " + str(compose.path) + " resolved\n"
                     + yaml.safe_dump(doc, sort_keys=False))
    # the images compose pulls: a missing one is named only if `up` fails (no check on the way)
    pulled = [s.image for n in services if (s := compose.all_services[n]).build is None and s.image]
    pulled += [python_base_tag()] if build and bargs is None else []
    state = {"engine": "docker", "stack_id": stack_id, "project": project, "compose_file": str(compose.path),
             "resolved_compose_file": str(cfile), "profiles": list(profiles), "compose_cmd": base,
             "supervisor_pid": None, "status": "starting", "cgroup_version": cgroup_version,
             "limits_enforced": True, "cgroup_view": "own", "started_at": time.time(), "services": {}}
    try:
        try:
            _run(up_cmd(base, cfile, project, services, profiles, build), timeout + 600,
                 hint=f"see `{' '.join(base)} -p {project} logs`")
        except StackError as e:
            check_missing(pulled, str(e).partition(" failed: ")[2].rpartition("; fix:")[0] or str(e))
            raise
        for name in services:
            cid = _run(ps_cmd(base, cfile, project, name), 120).strip().splitlines()
            state["services"][name] = _service_state(compose.all_services[name], (ports or {}).get(name),
                                                     cid[0] if cid else None)
        deadline = time.monotonic() + timeout
        for name, s in state["services"].items():
            _wait_container_healthy(compose, state, name, s, timeout, deadline)
            s["health"], s["health_checked_pid"] = "healthy", s["pid"]
        refresh(state)
        for s in state["services"].values():
            s["health"] = "healthy" if s["health"] in (None, "starting") else s["health"]
        if any(not s["cgroups"] for s in state["services"].values()):
            state["counters_source"] = "docker stats"
            state["counters_note"] = ("no container cgroup is readable here (Docker Desktop or rootless?): memory "
                                      "from `docker stats`, no CPU, throttling or OOM counters")
        else:
            state["counters_source"] = "cgroup"
        state.update(status="running", healthy_at=time.time())
        checked(state)    # a key state.json's model does not know: refused before the stack is handed over
    except BaseException:
        try:
            _run(down_cmd(base, cfile, project, profiles), 120)
        except StackError:
            pass
        raise
    return state

def _service_state(svc, host_port: int | None, container_id: str | None) -> dict:
    """A started container's entry in state.json, before its health is known."""
    hp = host_port or next((p.host_port for p in svc.ports if p.host_port), None)
    ad = adapter_for(svc)
    url = f"http://127.0.0.1:{hp}" if hp else None
    return {"container_id": container_id, "pid": None, "status": "starting",
            "health": "starting", "url": url, "health_url": (url + ad.health_path) if url and ad else None,
            "host_port": hp, "container_port": service_port(svc), "mem_limit_bytes": svc.mem_limit,
            "cpus": svc.cpus, "cgroups": {}, "restarts": 0, "oom_kills": 0, "log": None,
            "healthcheck_argv": _healthcheck_argv(svc)}



def refresh(state: dict, oom_events: dict | None = None) -> dict:
    """Update each service's pid, cgroups, status, health, restarts and OOM kills from
    ``docker inspect`` (``oom_events``: OOM kills counted from ``docker events``)."""
    svcs = state["services"]
    by_id = {s["container_id"]: n for n, s in svcs.items() if s.get("container_id")}
    for info in inspect(list(by_id)):
        name = by_id.get(info.get("Id"))
        if name is None:
            continue
        s, f = svcs[name], container_facts(info)
        if f["pid"] != s.get("pid"):
            s["pid_starttime"] = proc_start_time(f["pid"]) if f["pid"] else None
            s["cgroups"] = container_cgroups(f["pid"]) or s.get("cgroups") or {}
        s.update(pid=f["pid"], status=f["status"], restarts=f["restarts"], exit_code=f["exit_code"],
                 volumes=f["volumes"])
        if f["health"] == "starting" and s.get("health_checked_pid") == f["pid"]:
            s["health"] = "healthy"  # up ran the test in this very process's container: passed
        elif f["health"]:
            s["health"] = f["health"]
        oom = (oom_events or {}).get(name, 0)
        s["oom_kills"] = max(int(s.get("oom_kills") or 0), oom, 1 if f["oom_killed"] else 0)
    state["updated_at"] = time.time()
    return state


def down(state: StackState) -> None:
    _run(down_cmd(state.compose_cmd, state.resolved_compose_file or state.compose_file,
                  state.project, state.profiles or ()), 120)


# ------------------------------------------------------------------ the watcher

def _wait_container_healthy(compose: Compose, state: dict, name: str, s: dict, timeout: float,
                            deadline: float) -> None:
    """Wait, until ``deadline`` (monotonic, shared by every service of the stack), for one
    container to run and answer its health URL, then for its compose healthcheck to pass
    inside it. Raises StackError: exited, not healthy, or a healthcheck the image lacks."""
    from .native import http_ok

    def answering() -> bool:
        refresh(state)
        if s["status"] == "running" and (not s["health_url"] or http_ok(s["health_url"])):
            return True
        if s["status"] in ("exited", "dead") and compose.all_services[name].restart == "no":
            raise StackError(f"service '{name}' exited (code {s.get('exit_code')}); "
                             f"fix: see `docker logs {s['container_id']}`")
        return False
    try:
        wait_until(answering, max(0.0, deadline - time.monotonic()), f"service '{name}' to be healthy", interval=0.2)
    except WaitTimeout:
        raise StackError(f"service '{name}' not healthy at {s['health_url']} after {timeout:g}s "
                         f"(container {s['status']}); fix: see `docker logs {s['container_id']}`") from None
    argv = s["healthcheck_argv"]
    if not argv:
        return
    last = {"code": None, "out": ""}

    def check_passes() -> bool:
        code, out = last["code"], last["out"] = _check_in_container(s["container_id"], argv, 60)
        if code in (126, 127) or (code != 0 and "executable file not found" in out):
            raise StackError(f"{compose.path}: service '{name}': healthcheck.test: {argv[0]} is not in "
                             f"the image ({out}); fix: use a test command the image has")
        return code == 0
    try:
        wait_until(check_passes, max(0.0, deadline - time.monotonic()), f"the healthcheck of service '{name}'",
                   interval=0.5)
    except WaitTimeout:
        raise StackError(f"service '{name}': healthcheck {' '.join(argv)} still fails after "
                         f"{timeout:g}s (exit {last['code']}: {last['out']}); "
                         f"fix: see `docker logs {s['container_id']}`") from None


def spawn_watcher(state_dir: Path, owner_pid: int | None) -> subprocess.Popen:
    """Start the watcher (this module's ``__main__``) detached; it follows the stack until it is down."""
    repo = Path(__file__).resolve().parent.parent
    penv = dict(os.environ)
    penv["PYTHONPATH"] = str(repo) + (os.pathsep + penv["PYTHONPATH"] if penv.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "stack.docker_engine", "--state-dir", str(state_dir)]
    if owner_pid:
        argv += ["--owner", str(owner_pid)]
    with open(state_dir / "watcher.log", "ab") as log:
        return subprocess.Popen(argv, cwd=str(repo), env=penv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def watch(state_dir: Path, owner_pid: int | None = None) -> int:
    """Follow ``docker events`` for the stack in ``state_dir``: keep state.json current,
    append events.jsonl, and take the stack down if the owner process is gone."""
    state_file = state_dir / "state.json"
    state = read_state(state_dir).model_dump(exclude_unset=True)    # the watcher rewrites it as a dict
    # the owner's start time as the starter recorded it: the owner may be gone before this runs
    owner_start = state.get("owner_starttime") if owner_pid == state.get("owner_pid") else None
    if owner_pid and owner_start is None:
        owner_start = proc_start_time(owner_pid)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    names = {s["container_id"]: n for n, s in state["services"].items() if s.get("container_id")}
    ooms: dict[str, int] = {n: int(s.get("oom_kills") or 0) for n, s in state["services"].items()}
    ev = subprocess.Popen(events_cmd(state["project"], state.get("started_at") or time.time()),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    log = open(state_dir / "events.jsonl", "a", buffering=1)

    def write():
        cur = read_state(state_dir)
        if cur is None or cur.status != "running":
            return False
        state.update({k: v for k, v in cur.model_dump(exclude_unset=True).items() if k not in ("services",)})
        write_json_atomic(state_file, checked(refresh(state, ooms), state_file))
        return True

    def handle(line: bytes) -> bool:
        """One docker event: count it, log it, refresh state.json; False once stopped."""
        event = _stack_event(line, names)
        if event is None:
            return True
        name, action, detail = event
        if action == "oom":
            ooms[name] = ooms.get(name, 0) + 1
        log.write(json.dumps({"t": time.time(), "service": name, "event": action, "detail": detail}) + "\n")
        return write()

    pending = b""
    try:
        while not stop["now"]:
            if owner_pid and proc_start_time(owner_pid) != owner_start:
                _tear_down_for_gone_owner(state, state_file, owner_pid)
                return 0
            ready, _, _ = select.select([ev.stdout], [], [], 0.2)
            if not ready:
                continue
            # the raw pipe, not readline(): lines a buffered reader took early would wait
            # there, unseen by select, until Docker's next event
            chunk = os.read(ev.stdout.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if not all(handle(line) for line in lines if line.strip()):
                break
    finally:
        ev.terminate()
        ev.wait()
        log.close()
    return 0


def _stack_event(line: bytes, names: dict[str, str]) -> tuple[str, str, object] | None:
    """(service, action, exit code) of one docker event line about the stack's containers;
    None for unreadable lines, other containers and exec/attach/top noise."""
    try:
        e = json.loads(line)
    except json.JSONDecodeError:
        return None
    action = (e.get("Action") or e.get("status") or "").split(":")[0]
    name = names.get(e.get("id") or e.get("Actor", {}).get("ID"))
    if name is None or action in ("exec_create", "exec_start", "exec_die", "attach", "top"):
        return None
    return name, action, (e.get("Actor") or {}).get("Attributes", {}).get("exitCode")


def _tear_down_for_gone_owner(state: dict, state_file: Path, owner_pid: int) -> None:
    """The owner process is gone: take the stack down, record why, leave the registry."""
    down(parse_state(state, state_file))
    state.update(status="stopped", supervisor_pid=None,
                 stop_reason=f"owner process {owner_pid} is gone; stack torn down")
    write_json_atomic(state_file, checked(state, state_file))
    from . import registry
    registry.unregister(state.get("stack_id"))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(prog="python -m stack.docker_engine",
                                 description="internal: the docker stack's watcher, started by up")
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--owner", type=int, default=None, help="tear the stack down when this pid is gone")
    a = ap.parse_args()
    sys.exit(watch(a.state_dir, a.owner))
