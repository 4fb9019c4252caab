"""Docker engine: drives ``docker compose`` (v2 plugin, or the v1 ``docker-compose``).

Port and environment overrides go into ``<state-dir>/compose.override.yml`` (ports use
compose's ``!override`` tag so the file's own mapping is replaced, not added to).
The command builders are pure and unit-tested; running them needs a Docker engine.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from .compose import Compose
from .images import StackError, adapter_for, service_port


def engine_available(timeout: float = 5.0) -> bool:
    if not shutil.which("docker"):
        return False
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                           timeout=timeout, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and bool(r.stdout.strip())


def compose_base() -> list[str]:
    """``docker compose`` if the plugin answers, else ``docker-compose``."""
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if r.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StackError("neither `docker compose` nor `docker-compose` is installed; fix: run `make os-packages` "
                     "or use --engine native")


def project_name(stack_id: str) -> str:
    return f"edgebench-{stack_id}"


def override_doc(compose: Compose, services: list[str], env: dict | None, ports: dict | None,
                 contexts: dict | None = None) -> dict:
    out: dict = {}
    for name in services:
        svc = compose.all_services[name]
        entry: dict = {}
        if contexts and contexts.get(name):
            entry["build"] = {"context": str(contexts[name])}
        if env and env.get(name):
            entry["environment"] = {k: str(v) for k, v in env[name].items()}
        if ports and name in ports and service_port(svc):
            entry["ports"] = OverrideList([f"127.0.0.1:{int(ports[name])}:{service_port(svc)}"])
        if entry:
            out[name] = entry
    return {"services": out} if out else {}


class OverrideList(list):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(OverrideList, lambda d, v: d.represent_sequence("!override", list(v)))


def dump_override(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False)


def base_args(base: list[str], compose_file: str, override: str | None, project: str,
              profiles=()) -> list[str]:
    args = list(base) + ["-f", str(compose_file)]
    if override:
        args += ["-f", str(override)]
    args += ["-p", project]
    for p in profiles:
        args += ["--profile", p]
    return args


def up_cmd(base, compose_file, override, project, services, profiles=(), wait=True, timeout=30) -> list[str]:
    cmd = base_args(base, compose_file, override, project, profiles) + ["up", "-d"]
    if wait:
        cmd += ["--wait", "--wait-timeout", str(int(timeout))]
    return cmd + list(services)


def down_cmd(base, compose_file, override, project, profiles=()) -> list[str]:
    return base_args(base, compose_file, override, project, profiles) + ["down", "--remove-orphans",
                                                                          "--timeout", "10"]


def ps_cmd(base, compose_file, override, project, service=None) -> list[str]:
    return base_args(base, compose_file, override, project) + ["ps", "-q"] + ([service] if service else [])


def stats_cmd(container_ids: list[str]) -> list[str]:
    return ["docker", "stats", "--no-stream", "--format", "json"] + list(container_ids)


def cgroup_paths(container_id: str, version: int | None, root: str = "/sys/fs/cgroup") -> dict:
    if version == 1:
        out = {c: f"{root}/{c}/docker/{container_id}" for c in ("memory", "cpu", "cpuacct")}
    elif version == 2:
        out = {"unified": f"{root}/system.slice/docker-{container_id}.scope"}
    else:
        return {}
    return {k: v for k, v in out.items() if Path(v).is_dir()}


_SIZE = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
         "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not m:
        return 0
    return int(float(m.group(1)) * _SIZE.get(m.group(2).lower() or "b", 1))


def parse_stats(text: str) -> dict[str, dict]:
    """``docker stats --no-stream --format json`` lines -> {name: {mem_bytes, mem_limit_bytes, cpu_percent}}."""
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


def _run(cmd: list[str], timeout: float) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StackError(f"`{' '.join(cmd)}` did not finish within {timeout:g}s; fix: check the Docker engine") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"`{' '.join(cmd[:4])} ...` failed: {last}; fix: see `docker compose logs`")
    return r.stdout


def up(compose: Compose, state_dir: Path, stack_id: str, services: list[str], profiles, env, ports,
       timeout: float, cgroup_version: int | None, contexts: dict | None = None) -> dict:
    """Start with docker compose and return the state dict (the caller writes it)."""
    from .native import http_ok

    base = compose_base()
    project = project_name(stack_id)
    override = None
    doc = override_doc(compose, services, env, ports, contexts)
    if doc:
        override = state_dir / "compose.override.yml"
        override.write_text(dump_override(doc))
    wait = base[:2] == ["docker", "compose"]
    build = ["--build"] if contexts else []
    _run(up_cmd(base, compose.path, override, project, services, profiles, wait, timeout) + build,
         timeout + 300)
    svc_state = {}
    for name in services:
        svc = compose.all_services[name]
        hp = (ports or {}).get(name) or next((p.host_port for p in svc.ports if p.host_port), None)
        ad = adapter_for(svc)
        url = f"http://127.0.0.1:{hp}" if hp else None
        cid = _run(ps_cmd(base, compose.path, override, project, name), 30).strip().splitlines()
        cid = cid[0] if cid else None
        svc_state[name] = {"container_id": cid, "pid": None, "status": "running", "health": "starting",
                           "url": url, "health_url": (url + ad.health_path) if url and ad else None,
                           "host_port": hp, "mem_limit_bytes": svc.mem_limit, "cpus": svc.cpus,
                           "cgroups": cgroup_paths(cid, cgroup_version) if cid else {},
                           "restarts": 0, "oom_kills": 0, "log": None}
    deadline = time.time() + timeout
    for name, s in svc_state.items():  # docker-compose v1 has no --wait
        while s["health_url"] and not http_ok(s["health_url"]):
            if time.time() > deadline:
                raise StackError(f"service '{name}' not healthy at {s['health_url']} after {timeout:g}s; "
                                 f"fix: see `docker compose -p {project} logs {name}`")
            time.sleep(0.2)
        s["health"] = "healthy"
    return {"engine": "docker", "stack_id": stack_id, "project": project, "compose_file": str(compose.path),
            "override_file": str(override) if override else None, "profiles": list(profiles),
            "compose_cmd": base, "supervisor_pid": None, "status": "running",
            "cgroup_version": cgroup_version, "limits_enforced": True, "started_at": time.time(),
            "healthy_at": time.time(), "services": svc_state}


def down(state: dict) -> None:
    _run(down_cmd(state["compose_cmd"], state["compose_file"], state.get("override_file"), state["project"],
                  state.get("profiles", ())), 120)


def stats(state: dict) -> dict:
    ids = [s["container_id"] for s in state["services"].values() if s.get("container_id")]
    return parse_stats(_run(stats_cmd(ids), 30)) if ids else {}
