"""Image -> local program adapters for the native engine, and the rewrite of a compose
service into a native process plan (command, env, cwd, listen address, health URL).

Rewrites, so that what the compose file says for containers holds on the host:
- listen addresses forced to ``127.0.0.1:<host port>``;
- a mounted config file that mentions ``<service>:<container port>`` is copied into
  ``<state-dir>/config/`` with ``127.0.0.1:<host port>`` instead;
- a flag whose value is (under) a mounted container path points at the host path
  (bind -> host path, named volume -> ``<state-dir>/volumes/<name>``).
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from plumbing.errors import EdgebenchError

from .compose import Compose, Service
from .scrape_config import ScrapeConfigError, scrape_settings


class StackError(EdgebenchError, RuntimeError):
    """A stack that cannot be started/stopped; ``str()`` is one line naming the fix."""


@dataclass(frozen=True)
class Adapter:
    binary: str | None  # None: the compose command itself (build: services)
    listen_flag: str | None  # e.g. "-httpListenAddr"
    health_path: str
    python: bool = False  # replace a leading python in the command with sys.executable


ADAPTERS: list[tuple[str, Adapter]] = [
    ("victoriametrics/victoria-metrics:*", Adapter("/usr/bin/victoria-metrics", "-httpListenAddr", "/health")),
    ("victoriametrics/victoria-metrics", Adapter("/usr/bin/victoria-metrics", "-httpListenAddr", "/health")),
    ("prom/prometheus:*", Adapter("/usr/bin/prometheus", "--web.listen-address", "/-/ready")),
    ("prom/prometheus", Adapter("/usr/bin/prometheus", "--web.listen-address", "/-/ready")),
]
BUILD_ADAPTER = Adapter(None, None, "/healthz", python=True)


def adapter_for(svc: Service) -> Adapter | None:
    if svc.build is not None:
        return BUILD_ADAPTER
    for pattern, ad in ADAPTERS:
        if fnmatch.fnmatchcase(svc.image or "", pattern):
            return ad
    return None


@dataclass
class NativePlan:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    host_port: int
    url: str
    health_url: str
    volumes: dict[str, str]  # container path -> host path
    mem_limit: int | None
    memswap_limit: int | None
    cpus: float | None
    restart: str
    restart_max_retries: int | None
    depends_on: list[str] = field(default_factory=list)
    healthcheck: dict | None = None  # compose healthcheck: argv run in the service's cgroup

    def to_json(self) -> dict:
        return dict(self.__dict__)


def service_port(svc: Service) -> int | None:
    """The container port the service listens on (its first published tcp port)."""
    for p in svc.ports:
        if p.protocol == "tcp":
            return p.container_port
    return None


def host_ports(compose: Compose, overrides: dict[str, int] | None, free_port) -> dict[str, int]:
    """Host port per service: override > compose's published port > a free one."""
    out = {}
    overrides = overrides or {}
    for name, svc in compose.all_services.items():
        if name in overrides:
            out[name] = int(overrides[name])
            continue
        hp = next((p.host_port for p in svc.ports if p.protocol == "tcp" and p.host_port), None)
        out[name] = hp if hp else free_port()
    return out


def _rewrite_hosts(text: str, compose: Compose, ports: dict[str, int]) -> str:
    for name, svc in compose.all_services.items():
        cport = service_port(svc)
        if cport is None or name not in ports:
            continue
        text = re.sub(rf"(?<![\w.-]){re.escape(name)}:{cport}(?!\d)", f"127.0.0.1:{ports[name]}", text)
    return text


def _healthcheck(compose: Compose, svc: Service, host_port: int, python: bool, check_binary: bool) -> dict | None:
    """The compose healthcheck as Docker runs it, translated for a native process: its own
    loopback at the container port becomes 127.0.0.1:<host port>; ``python`` in a built
    service is the venv's Python; CMD-SHELL runs under /bin/sh."""
    hc = svc.healthcheck
    if not hc:
        return None
    argv = list(hc["test"]) if hc.get("test") else ["/bin/sh", "-c", hc["shell"]]
    cport = service_port(svc)
    if cport is not None:
        own = rf"(?:127\.0\.0\.1|localhost|0\.0\.0\.0):{cport}(?!\d)"
        argv = [re.sub(own, f"127.0.0.1:{host_port}", a) for a in argv]
    if python and re.fullmatch(r"python(\d+(\.\d+)?)?", os.path.basename(argv[0])):
        argv[0] = sys.executable
    elif check_binary and not shutil.which(argv[0]):
        raise StackError(f"{compose.path}: service '{svc.name}': healthcheck.test: {argv[0]} is not "
                         f"installed here; fix: install it or use a test command this machine has (e.g. wget)")
    return {"argv": argv, **{k: hc[k] for k in ("interval_s", "timeout_s", "retries", "start_period_s")}}


def _map_path(value: str, vols: dict[str, str]) -> str | None:
    for target in sorted(vols, key=len, reverse=True):
        if value == target or value.startswith(target.rstrip("/") + "/"):
            return vols[target] + value[len(target):]
    return None


def _rewrite_arg(arg: str, vols: dict[str, str]) -> str:
    if arg.startswith("-") and "=" in arg:
        flag, val = arg.split("=", 1)
        mapped = _map_path(val, vols)
        return f"{flag}={mapped}" if mapped is not None else arg
    mapped = _map_path(arg, vols)
    return mapped if mapped is not None else arg


def plan_service(compose: Compose, svc: Service, state_dir: Path, ports: dict[str, int],
                 env_override: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 check_binary: bool = True, context: str | os.PathLike | None = None) -> NativePlan:
    """Turn a compose service into a native process plan; writes rewritten config copies
    and creates named-volume directories under ``state_dir``. ``context`` replaces a built
    service's build context (the gate runs a git ref's service from its worktree).
    Raises StackError."""
    ad = adapter_for(svc)
    if ad is None:
        raise StackError(f"{compose.path}: service '{svc.name}': image: no native adapter for "
                         f"'{svc.image}'; fix: use --engine docker or add the image to stack/images.py")
    host_port = ports[svc.name]
    vols = _host_volumes(compose, svc, ad, state_dir, ports)
    if ad.binary is not None:
        argv, cwd = _binary_argv(compose, svc, ad, vols, ports, host_port, check_binary), str(state_dir)
    else:
        argv, cwd = _built_argv(compose, svc, ad, vols, ports, check_binary), str(context or svc.build["context"])
    argv += list(extra_args or [])
    url = f"http://127.0.0.1:{host_port}"
    return NativePlan(name=svc.name, argv=argv, env=_environment(compose, svc, ports, env_override, host_port),
                      cwd=cwd, host_port=host_port, url=url,
                      health_url=url + ad.health_path, volumes=vols, mem_limit=svc.mem_limit,
                      memswap_limit=svc.memswap_limit, cpus=svc.cpus, restart=svc.restart,
                      restart_max_retries=svc.restart_max_retries, depends_on=list(svc.depends_on),
                      healthcheck=_healthcheck(compose, svc, host_port, ad.python, check_binary))


def _host_volumes(compose: Compose, svc: Service, ad: Adapter, state_dir: Path,
                  ports: dict[str, int]) -> dict[str, str]:
    """Container path -> host path: a bind mount's source (a config file that names other
    services is copied into ``state_dir/config`` with their host ports), a named volume's
    directory under ``state_dir/volumes``."""
    vols: dict[str, str] = {}
    for v in svc.volumes:
        if v.kind == "bind":
            vols[v.target] = _bind_source(compose, svc, ad, Path(v.source), state_dir, ports)
        else:
            name = v.source or f"{svc.name}-anon-{len(vols)}"
            d = state_dir / "volumes" / name
            d.mkdir(parents=True, exist_ok=True)
            vols[v.target] = str(d)
    return vols


def _bind_source(compose: Compose, svc: Service, ad: Adapter, src: Path, state_dir: Path,
                 ports: dict[str, int]) -> str:
    if not src.exists():
        raise StackError(f"{compose.path}: service '{svc.name}': volumes: host path {src} does not "
                         f"exist; fix: create it or correct the bind mount")
    if ad.binary is not None and src.is_file() and src.suffix in (".yml", ".yaml"):
        try:  # a collector's scrape config: refused here, not in the collector's log
            scrape_settings(src)
        except ScrapeConfigError as e:
            raise StackError(f"service '{svc.name}': volumes: {e}") from None
    if not src.is_file():
        return str(src)
    try:
        text = src.read_text()
    except (UnicodeDecodeError, OSError):
        return str(src)
    new = _rewrite_hosts(text, compose, ports)
    if new == text:
        return str(src)
    cdir = state_dir / "config" / svc.name
    cdir.mkdir(parents=True, exist_ok=True)
    dst = cdir / src.name
    dst.write_text(new)
    return str(dst)


def _binary_argv(compose: Compose, svc: Service, ad: Adapter, vols: dict[str, str], ports: dict[str, int],
                 host_port: int, check_binary: bool) -> list[str]:
    """An image's command run by the host binary: paths and host names rewritten, the
    listen flag forced to ``127.0.0.1:<host port>``."""
    if check_binary and not os.access(ad.binary, os.X_OK):
        raise StackError(f"service '{svc.name}': {ad.binary} (for image {svc.image}) is not installed; "
                         f"fix: run `make os-packages`")
    cmd = list(svc.entrypoint or []) + list(svc.command or [])
    args = [_rewrite_hosts(_rewrite_arg(a, vols), compose, ports) for a in cmd]
    listen = f"127.0.0.1:{host_port}"
    found = False
    for i, a in enumerate(args):
        if a == ad.listen_flag or a.startswith(ad.listen_flag + "="):
            if a == ad.listen_flag and i + 1 < len(args):
                args[i + 1] = listen
            else:
                args[i] = f"{ad.listen_flag}={listen}"
            found = True
    if not found:
        args.append(f"{ad.listen_flag}={listen}")
    return [ad.binary] + args


def _built_argv(compose: Compose, svc: Service, ad: Adapter, vols: dict[str, str], ports: dict[str, int],
                check_binary: bool) -> list[str]:
    """A built service's own command, run from its build context (``python``: this venv's)."""
    cmd = list(svc.entrypoint or []) + list(svc.command or [])
    if not cmd:
        raise StackError(f"{compose.path}: service '{svc.name}': command: not set; fix: give the "
                         f"command the image would run, e.g. command: [\"python\", \"-m\", \"service\"]")
    argv = [_rewrite_hosts(_rewrite_arg(a, vols), compose, ports) for a in cmd]
    if ad.python and re.fullmatch(r"python(\d+(\.\d+)?)?", os.path.basename(argv[0])):
        argv[0] = sys.executable
    elif check_binary and not shutil.which(argv[0]):
        raise StackError(f"service '{svc.name}': command: {argv[0]} is not installed; fix: install it "
                         f"or change the command")
    return argv


def _environment(compose: Compose, svc: Service, ports: dict[str, int], env_override: dict[str, str] | None,
                 host_port: int) -> dict[str, str]:
    """Only what the service adds: the supervisor lays it over its own environment."""
    env = {k: _rewrite_hosts(v, compose, ports) for k, v in svc.environment.items()}
    if env_override:
        env.update({k: str(v) for k, v in env_override.items()})
    if svc.build is not None:
        env["SENSOR_HOST"] = "127.0.0.1"
        env["SENSOR_PORT"] = str(host_port)
    return env
