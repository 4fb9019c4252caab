"""Reading docker-compose.yml: the single source of truth for the stack's limits.

``load_compose(path, profiles=(), env=None)`` parses, interpolates and validates a
compose file and returns a :class:`Compose`. Anything inconsistent or malformed is
refused with one :class:`ComposeError` whose message is a single line naming the
file, the service, the field and the fix. Pure: no processes, no network.
"""
from __future__ import annotations

import copy
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import Field, model_validator

from plumbing.durations import parse_duration
from plumbing.errors import EdgebenchError
from plumbing.schema import Model, ValidationError, load_model, refusal_parts

RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


class ComposeError(EdgebenchError, ValueError):
    """A compose file that cannot be used; ``str()`` is one line: file, service, field, fix."""

    def __init__(self, file: str | os.PathLike, service: str | None, field: str | None,
                 problem: str, fix: str):
        self.file = str(file)
        self.service = service
        self.field = field
        self.problem = problem
        self.fix = fix
        where = self.file
        if service:
            where += f": service '{service}'"
        if field:
            where += f": {field}"
        msg = f"{where}: {problem}; fix: {fix}"
        super().__init__(" ".join(msg.split()))  # guarantee a single line


@dataclass(frozen=True)
class Port:
    container_port: int
    host_port: int | None = None  # None: an ephemeral port is chosen
    host_ip: str = ""
    protocol: str = "tcp"


@dataclass(frozen=True)
class Volume:
    kind: str  # "bind" | "volume"
    source: str | None  # host path (bind, absolute) or volume name (volume; None = anonymous)
    target: str  # path inside the container
    read_only: bool = False


@dataclass
class Service:
    name: str
    image: str | None = None
    build: dict | None = None  # {"context": abs path, "dockerfile": ..., "args": {...}}
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    ports: list[Port] = field(default_factory=list)
    restart: str = "no"
    restart_max_retries: int | None = None  # on-failure:N
    mem_limit: int | None = None  # bytes
    memswap_limit: int | None = None  # bytes; -1 = unlimited swap
    cpus: float | None = None
    volumes: list[Volume] = field(default_factory=list)
    profiles: tuple[str, ...] = ()
    depends_on: list[str] = field(default_factory=list)
    healthcheck: dict | None = None

    def limits(self) -> dict:
        return {"mem_limit_bytes": self.mem_limit, "memswap_limit_bytes": self.memswap_limit,
                "cpus": self.cpus}


@dataclass
class Compose:
    path: Path
    project_dir: Path
    services: dict[str, Service]  # active ones (profiles applied), file order
    all_services: dict[str, Service]
    volumes: dict[str, dict]
    profiles: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict)   # the document as written (x-* aside), not interpolated

    def document(self) -> dict:
        """A copy of the document as written: what a derived compose file starts from."""
        return copy.deepcopy(self.raw)

    def select(self, names: list[str] | tuple[str, ...] | None = None) -> list[Service]:
        """Services to start, in dependency order. Like ``docker compose up NAMES``: a
        named service is started even if its profile is not active, and what it
        depends on is started too. ``None`` means every active service."""
        if not names:
            wanted = list(self.services)
        else:
            wanted = list(names)
        for n in wanted:
            if n not in self.all_services:
                raise ComposeError(self.path, n, None, "no such service in the file",
                                   f"use one of: {', '.join(self.all_services)}")
        order: list[str] = []
        seen: set[str] = set()

        def visit(n: str, stack: tuple[str, ...]):
            if n in order:
                return
            if n in stack:
                raise ComposeError(self.path, n, "depends_on",
                                   f"dependency cycle {' -> '.join(stack + (n,))}",
                                   "remove one of the dependencies")
            for d in self.all_services[n].depends_on:
                visit(d, stack + (n,))
            if n not in seen:
                seen.add(n)
                order.append(n)

        for n in wanted:
            visit(n, ())
        return [self.all_services[n] for n in order]


# --------------------------------------------------------------------- units

_MEM_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_MEM_UNITS = {"": 1, "b": 1,
              "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
              "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
              "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
              "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_bytes(value: Any) -> int:
    """Compose/docker byte value (binary multiples, like docker's go-units RAMInBytes):
    ``50M`` = ``50m`` = ``50MB`` = ``50MiB`` = 52428800, ``0.5GB``, ``1g``, ints are bytes.
    Raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != int(value):
            raise ValueError(f"{value!r} is not a whole number of bytes")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size")
    m = _MEM_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a size")
    num, unit = m.groups()
    mult = _MEM_UNITS.get(unit.lower())
    if mult is None:
        raise ValueError(f"unknown unit {unit!r} in {value!r}")
    return int(float(num) * mult)


def parse_cpus(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of CPUs")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number of CPUs") from None
    raise ValueError(f"{value!r} is not a number of CPUs")


# ------------------------------------------------------------- interpolation

_VAR_RE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_BRACED_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", re.S)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``${VAR?err}``,
    ``${VAR:+alt}``, ``$VAR``, ``$$`` (a literal ``$``). Unset ``${VAR}`` is empty, like compose.
    Raises ValueError."""
    if "$" not in text:
        return text

    def repl(m: re.Match) -> str:
        if m.group(1):
            return "$"
        if m.group(3):
            return env.get(m.group(3), "")
        inner = m.group(2)
        bm = _BRACED_RE.match(inner)
        if not bm:
            raise ValueError(f"invalid interpolation '${{{inner}}}'")
        name, op, arg = bm.groups()
        val = env.get(name)
        if op is None:
            return val or ""
        arg = interpolate(arg, env)
        if op == ":-":
            return val if val else arg
        if op == "-":
            return val if val is not None else arg
        if op == ":+":
            return arg if val else ""
        if op == "+":
            return arg if val is not None else ""
        if op in (":?", "?"):
            if (op == ":?" and not val) or val is None:
                raise ValueError(f"required variable {name} is not set ({arg or 'no message'})")
            return val
        raise ValueError(f"invalid interpolation '${{{inner}}}'")  # pragma: no cover

    if text.count("${") > text.count("}"):
        raise ValueError(f"unterminated '${{' in {text!r}")
    return _VAR_RE.sub(repl, text)


def _interpolate_tree(node: Any, env: Mapping[str, str], path: tuple, err) -> Any:
    if isinstance(node, str):
        try:
            return interpolate(node, env)
        except ValueError as e:
            err(path, str(e))
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, path + (str(k),), err) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env, path + (str(i),), err) for i, v in enumerate(node)]
    return node


# -------------------------------------------------------------------- loading

def load_compose(path: str | os.PathLike, profiles=(), env: Mapping[str, str] | None = None) -> Compose:
    """Parse and validate ``path``. ``profiles``: active profiles (plus ``COMPOSE_PROFILES``
    from ``env``). ``env``: interpolation variables (default: ``os.environ``)."""
    path = Path(path)
    fname = str(path)
    env = dict(os.environ if env is None else env)
    cfg = load_model(path, ComposeFile, lambda r: ComposeError(fname, None, r.where or None, r.problem, r.fix),
                     needs="services", shape_fix="add a top-level 'services:' mapping with at least one service",
                     missing_fix="pass the path of an existing docker-compose.yml")
    raw = {k: v for k, v in cfg.model_dump(exclude_unset=True).items() if v is not None}

    def err(p: tuple, msg: str):
        svc = p[1] if len(p) > 1 and p[0] == "services" else None
        fld = ".".join(p[2:] if svc else p) or None
        raise ComposeError(fname, svc, fld, msg,
                           "quote a literal '$' as '$$' or set the variable / give a default ${VAR:-x}")

    doc = _interpolate_tree(raw, env, (), err)
    project_dir = path.resolve().parent

    vols = doc.get("volumes") or {}
    if not isinstance(vols, dict):
        raise ComposeError(fname, None, "volumes", "top-level 'volumes' is not a mapping",
                           "write 'volumes:' as a mapping of name to options, e.g. 'vmdata: {}'")
    vols = {str(k): (v or {}) for k, v in vols.items()}

    active = set(profiles or ())
    if env.get("COMPOSE_PROFILES"):
        active |= {p.strip() for p in env["COMPOSE_PROFILES"].split(",") if p.strip()}

    all_services: dict[str, Service] = {}
    for name, spec in doc["services"].items():
        name = str(name)
        if not isinstance(spec, dict):
            raise ComposeError(fname, name, None, "service definition is not a mapping",
                               "indent the service's keys under its name")
        all_services[name] = _parse_service(fname, project_dir, name, spec, vols)
    _check_between_services(fname, all_services)

    services = {n: s for n, s in all_services.items() if not s.profiles or active & set(s.profiles)}
    _check_active_dependencies(fname, services, all_services)
    return Compose(path=path, project_dir=project_dir, services=services, all_services=all_services,
                   volumes=vols, profiles=tuple(sorted(active)), raw=raw)


def _check_between_services(fname: str, all_services: dict[str, Service]) -> None:
    """What no single service shows: every dependency names another service, and no two
    services publish the same host port."""
    for s in all_services.values():
        for d in s.depends_on:
            if d not in all_services:
                raise ComposeError(fname, s.name, "depends_on", f"unknown service '{d}'",
                                   f"use one of: {', '.join(n for n in all_services if n != s.name)}")
            if d == s.name:
                raise ComposeError(fname, s.name, "depends_on", "a service cannot depend on itself",
                                   f"remove '{d}' from depends_on")
    seen: dict[tuple, str] = {}
    for s in all_services.values():
        for p in s.ports:
            if p.host_port is None:
                continue
            key = (p.host_port, p.protocol)
            if key in seen and seen[key] != s.name:
                raise ComposeError(fname, s.name, "ports",
                                   f"host port {p.host_port} is also published by '{seen[key]}'",
                                   "publish a different host port")
            seen[key] = s.name


def _check_active_dependencies(fname: str, services: dict[str, Service], all_services: dict[str, Service]) -> None:
    """An active service must not need one its profiles leave out."""
    for s in services.values():
        for d in s.depends_on:
            if d not in services:
                raise ComposeError(fname, s.name, "depends_on",
                                   f"'{d}' is only enabled with profile(s) {', '.join(all_services[d].profiles)}",
                                   f"activate the profile (--profile {all_services[d].profiles[0]}) or drop the dependency")


# Limits Docker would enforce that edgebench's engines do not: the compose file is the single
# source of the limits, so one of these is refused rather than silently dropped.
UNENFORCED_LIMITS = ("pids_limit", "cpuset", "cpu_shares", "cpu_quota", "cpu_period", "cpu_count",
                     "cpu_percent", "cpu_rt_runtime", "cpu_rt_period", "mem_reservation", "mem_swappiness",
                     "oom_kill_disable", "oom_score_adj", "ulimits", "shm_size", "blkio_config",
                     "storage_opt", "device_cgroup_rules", "cgroup_parent")
ENFORCED_RESOURCES = {"memory", "cpus"}
# Service keys of the compose specification that edgebench neither reads nor needs: none sets
# a limit, so they are left to Docker (the native engine runs without them). Any other key
# that the service model below does not name is refused: a typo such as `mem_limt` must not
# leave a service without its limit.
IGNORED_SERVICE_KEYS = frozenset((
    "annotations", "attach", "cap_add", "cap_drop", "cgroup", "configs", "container_name",
    "credential_spec", "develop", "devices", "dns", "dns_opt", "dns_search", "domainname", "driver_opts",
    "expose", "external_links", "extra_hosts", "gpus", "group_add", "hostname", "init", "ipc", "isolation",
    "labels", "label_file", "links", "logging", "mac_address", "network_mode", "networks", "platform",
    "post_start", "pre_stop", "privileged", "pull_policy", "read_only", "runtime", "secrets", "security_opt",
    "stdin_open", "stop_grace_period", "stop_signal", "sysctls", "tmpfs", "tty", "user", "userns_mode", "uts",
    "volumes_from", "working_dir"))


class ComposeFile(Model):
    """The top level of a compose file (``x-*`` extension keys aside): ``include`` or a typo
    would bring in or hide services, so any other key is refused. The sections stay as
    written (``Any``): load_compose interpolates and checks them service by service."""
    version: Any = None          # obsolete, ignored as docker compose does
    name: Any = None
    services: Annotated[dict[str, Any], Field(min_length=1)]
    volumes: Any = None
    networks: Any = None         # networks, configs, secrets: Docker's; no limit among them
    configs: Any = None
    secrets: Any = None

    @model_validator(mode="before")
    @classmethod
    def _without_extensions(cls, data: Any) -> Any:
        """``x-*`` keys hold YAML anchors for people; the engines ignore them."""
        return {k: v for k, v in data.items() if not str(k).startswith("x-")} if isinstance(data, dict) else data


class _Limits(Model):
    memory: Any = None
    cpus: Any = None


class _Resources(Model):
    limits: _Limits | None = None


class _Deploy(Model):
    """``deploy``: only ``resources.limits`` sets anything edgebench runs with; the rest is
    Docker Swarm's (placement, update and rollback policies) and sets no limit."""
    resources: _Resources | None = None
    replicas: Any = None
    mode: Any = None
    endpoint_mode: Any = None
    labels: Any = None
    placement: Any = None
    restart_policy: Any = None
    rollback_config: Any = None
    update_config: Any = None


class _HealthcheckSpec(Model):
    test: Any = None
    interval: Any = None
    timeout: Any = None
    retries: Any = None
    start_period: Any = None
    start_interval: Any = None       # Docker's own faster checks while starting; sets no limit
    disable: Any = None


class ServiceSpec(Model):
    """The keys of a compose service edgebench reads, as the file writes them (values are
    parsed by the functions below, one per seam, with their own one-line refusals)."""
    image: Any = None
    build: Any = None
    command: Any = None
    entrypoint: Any = None
    environment: Any = None
    ports: Any = None
    restart: Any = None
    mem_limit: Any = None
    memswap_limit: Any = None
    cpus: Any = None
    deploy: _Deploy | None = None
    volumes: Any = None
    profiles: Any = None
    depends_on: Any = None
    healthcheck: _HealthcheckSpec | None = None


def _refuse_unenforced(fail, spec: dict) -> None:
    """One line for a limit the engines would drop (and for env_file, whose variables
    the native engine would not see, and for keys that would bring in or multiply what
    edgebench does not read)."""
    for key in UNENFORCED_LIMITS:
        if key in spec:
            fail(key, "is a limit edgebench does not enforce (only mem_limit, memswap_limit and cpus are)",
                 f"remove '{key}' or enforce it in stack/cgroup_limits.py and the Docker engine first")
    if "env_file" in spec:
        fail("env_file", "is not read by edgebench's native engine",
             "move its variables into 'environment:'")
    if "extends" in spec:
        fail("extends", "is not read by edgebench: the keys it brings in (limits included) would be lost",
             "write the service's keys out in full")
    if spec.get("scale") not in (None, 1):
        fail("scale", f"{spec['scale']!r} copies: edgebench runs one process per service",
             "remove 'scale' (or set it to 1)")
    deploy = spec.get("deploy") or {}
    if not isinstance(deploy, dict):
        fail("deploy", "is not a mapping", "write 'deploy: {resources: {limits: {memory: 50M}}}'")
    if deploy.get("replicas") not in (None, 1):
        fail("deploy.replicas", f"{deploy['replicas']!r} copies: edgebench runs one process per service",
             "remove 'deploy.replicas' (or set it to 1)")
    resources = deploy.get("resources") or {}
    if isinstance(resources, dict):
        for key in resources:
            if key != "limits":
                fail(f"deploy.resources.{key}", "is not enforced by edgebench (only deploy.resources.limits is)",
                     f"remove 'deploy.resources.{key}'")
        limits = resources.get("limits") or {}
        for key in (limits if isinstance(limits, dict) else {}):
            if key not in ENFORCED_RESOURCES:
                fail(f"deploy.resources.limits.{key}", "is a limit edgebench does not enforce "
                     "(only memory and cpus are)", f"remove 'deploy.resources.limits.{key}'")


def _service_spec(fail, spec: dict) -> ServiceSpec:
    """The keys of ``spec`` checked: a limit edgebench would drop or an unknown key is refused;
    keys the compose spec allows that set no limit (IGNORED_SERVICE_KEYS, x-*) are left out."""
    _refuse_unenforced(fail, spec)
    read = {k: v for k, v in spec.items()
            if k not in IGNORED_SERVICE_KEYS and k not in ("scale",) and not str(k).startswith("x-")}
    try:
        return ServiceSpec.model_validate(read)
    except ValidationError as e:
        r = refusal_parts(e, ServiceSpec)
        fail(r.where or None, r.problem, r.fix)


def _parse_service(fname: str, project_dir: Path, name: str, spec: dict, vols: dict) -> Service:
    def fail(fld: str | None, problem: str, fix: str):
        raise ComposeError(fname, name, fld, problem, fix)

    sp = _service_spec(fail, spec)
    s = Service(name=name)
    s.image, s.build = _image_and_build(fail, project_dir, sp.image, sp.build)
    s.command = _argv(fail, "command", sp.command)
    s.entrypoint = _argv(fail, "entrypoint", sp.entrypoint)
    if sp.environment is not None:
        s.environment = _environment(fail, sp.environment)
    s.ports = _ports(fail, sp.ports)
    s.restart, s.restart_max_retries = _restart(fail, sp.restart)
    s.mem_limit, s.memswap_limit, s.cpus = _limits(fail, sp)
    vl = sp.volumes or []
    if not isinstance(vl, list):
        fail("volumes", "is not a list", "write 'volumes: [\"./host:/container:ro\"]'")
    s.volumes = [_parse_volume(fail, project_dir, v, vols) for v in vl]
    s.profiles = _profiles(fail, sp.profiles)
    s.depends_on = _depends_on(fail, sp.depends_on)
    s.healthcheck = _parse_healthcheck(
        fail, sp.healthcheck.model_dump(exclude_unset=True) if sp.healthcheck is not None else None)
    return s


def _image_and_build(fail, project_dir: Path, image: Any, build: Any) -> tuple[str | None, dict | None]:
    if image is None and build is None:
        fail("image", "neither 'image' nor 'build' is set",
             "add 'image: <name:tag>' or 'build: <context dir>'")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        fail("image", f"{image!r} is not an image name", "write 'image: name:tag'")
    if build is None:
        return image.strip(), None
    if isinstance(build, str):
        build = {"context": build}
    if not isinstance(build, dict):
        fail("build", f"{build!r} is neither a path nor a mapping",
             "write 'build: .' or 'build: {context: .}'")
    ctx = build.get("context", ".")
    if not isinstance(ctx, str):
        fail("build.context", f"{ctx!r} is not a path", "write 'context: <dir>'")
    ctx_path = (project_dir / os.path.expanduser(ctx)).resolve()
    if not ctx_path.is_dir():
        fail("build.context", f"directory {ctx_path} does not exist",
             "point 'context' at the directory that holds the service's sources")
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(a.split("=", 1) if "=" in a else (a, "") for a in map(str, args))
    return (image.strip() if image is not None else None,
            {"context": str(ctx_path), "dockerfile": build.get("dockerfile", "Dockerfile"),
             "args": {str(k): ("" if v is None else str(v)) for k, v in args.items()}})


def _argv(fail, key: str, v: Any) -> list[str] | None:
    """``command`` / ``entrypoint``: a shell-like string or a list, as an argv."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as e:
            fail(key, f"cannot split the string ({e})", "balance the quotes or use the list form")
    if isinstance(v, list) and all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v):
        return [str(x) for x in v]
    fail(key, f"{v!r} is neither a string nor a list of strings", f"write '{key}: [\"prog\", \"arg\"]'")


def _environment(fail, envv: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(envv, list):
        for item in envv:
            if not isinstance(item, str) or not item or item.startswith("="):
                fail("environment", f"{item!r} is not 'KEY=value'", "write each entry as 'KEY=value'")
            if "=" in item:
                k, v = item.split("=", 1)
                out[k] = v
            elif item in os.environ:
                out[item] = os.environ[item]
    elif isinstance(envv, dict):
        for k, v in envv.items():
            if isinstance(v, bool):
                fail(f"environment.{k}", f"{v!r} is a boolean", f"quote it: {k}: \"{str(v).lower()}\"")
            if v is None:
                if k in os.environ:
                    out[str(k)] = os.environ[str(k)]
                continue
            if not isinstance(v, (str, int, float)):
                fail(f"environment.{k}", f"{v!r} is not a string or number", "quote the value")
            out[str(k)] = str(v)
    else:
        fail("environment", "is neither a list nor a mapping",
             "write 'environment: {KEY: value}' or '- KEY=value' items")
    return out


def _ports(fail, ports: Any) -> list[Port]:
    ports = ports or []
    if not isinstance(ports, list):
        fail("ports", "is not a list", 'write \'ports: ["127.0.0.1:8000:8000"]\'')
    return [_parse_port(fail, p) for p in ports]


def _restart(fail, r: Any) -> tuple[str, int | None]:
    """The policy and, for on-failure:N, its retry count."""
    if r is None or r is False:  # YAML 1.1 reads a bare `no` as false
        r = "no"
    if not isinstance(r, str):
        fail("restart", f"{r!r} is not a restart policy", f"use one of: {', '.join(RESTART_POLICIES)}")
    base, _, count = r.partition(":")
    if base not in RESTART_POLICIES or (count and base != "on-failure"):
        fail("restart", f"unknown policy {r!r}", f"use one of: {', '.join(RESTART_POLICIES)} (or on-failure:N)")
    if count and not count.isdigit():
        fail("restart", f"bad retry count in {r!r}", "write 'on-failure:3'")
    return base, int(count) if count else None


def _limits(fail, sp: ServiceSpec) -> tuple[int | None, int | None, float | None]:
    """mem_limit, memswap_limit and cpus, from either spelling (``mem_limit``/``cpus`` or
    ``deploy.resources.limits``), which must agree where both are given."""
    lim = sp.deploy.resources.limits if sp.deploy and sp.deploy.resources and sp.deploy.resources.limits \
        else _Limits()

    def mem(fld: str, v):
        try:
            b = parse_bytes(v)
        except ValueError as e:
            fail(fld, str(e), "use bytes or a number with b, k, m or g (e.g. 50m, 512MB, 0.5GB)")
        if b < 0 and not (fld == "memswap_limit" and b == -1):
            fail(fld, f"{v!r} is negative", "use a positive size (e.g. 50m)" +
                 (" or -1 for unlimited swap" if fld == "memswap_limit" else ""))
        return b

    def cpu(fld: str, v):
        try:
            c = parse_cpus(v)
        except ValueError as e:
            fail(fld, str(e), "write a decimal number of CPUs, e.g. cpus: '0.5'")
        if c < 0:
            fail(fld, f"{v!r} is negative", "use a positive number of CPUs, e.g. 0.5")
        return c

    m1 = mem("mem_limit", sp.mem_limit) if sp.mem_limit is not None else None
    m2 = mem("deploy.resources.limits.memory", lim.memory) if lim.memory is not None else None
    if m1 is not None and m2 is not None and m1 != m2:
        fail("mem_limit", f"mem_limit {sp.mem_limit!r} ({m1} bytes) disagrees with "
             f"deploy.resources.limits.memory {lim.memory!r} ({m2} bytes)",
             "keep one spelling or make both the same")
    mem_limit = m1 if m1 is not None else m2
    if mem_limit == 0:
        mem_limit = None  # docker: 0 = unlimited
    c1 = cpu("cpus", sp.cpus) if sp.cpus is not None else None
    c2 = cpu("deploy.resources.limits.cpus", lim.cpus) if lim.cpus is not None else None
    if c1 is not None and c2 is not None and abs(c1 - c2) > 1e-9:
        fail("cpus", f"cpus {sp.cpus!r} disagrees with deploy.resources.limits.cpus {lim.cpus!r}",
             "keep one spelling or make both the same")
    cpus = c1 if c1 is not None else c2
    if cpus == 0:
        cpus = None  # docker: 0 = unlimited
    if cpus is not None and cpus < 0.01:
        fail("cpus", f"{cpus} is below docker's minimum 0.01", "use at least 0.01 CPUs")
    memswap = None
    if sp.memswap_limit is not None:
        memswap = mem("memswap_limit", sp.memswap_limit)
        if mem_limit is None:
            fail("memswap_limit", "is set without a memory limit",
                 "also set mem_limit (or deploy.resources.limits.memory)")
        if memswap != -1 and memswap < mem_limit:
            fail("memswap_limit", f"{sp.memswap_limit!r} ({memswap} bytes) is below the memory limit "
                 f"({mem_limit} bytes)",
                 "memswap_limit is memory+swap: make it >= mem_limit (equal = no swap) or -1")
    return mem_limit, memswap, cpus


def _profiles(fail, pr: Any) -> tuple[str, ...]:
    pr = pr or []
    if isinstance(pr, str) or not isinstance(pr, list) or not all(isinstance(p, str) for p in pr):
        fail("profiles", f"{pr!r} is not a list of names", 'write \'profiles: ["prometheus"]\'')
    return tuple(pr)


def _depends_on(fail, dep: Any) -> list[str]:
    dep = dep or []
    if isinstance(dep, dict):
        dep = list(dep)
    if not isinstance(dep, list) or not all(isinstance(d, str) for d in dep):
        fail("depends_on", f"{dep!r} is not a list of service names", "write 'depends_on: [other-service]'")
    return dep


# Docker's healthcheck defaults (docker run reference / compose spec).
HEALTHCHECK_DEFAULTS = {"interval_s": 30.0, "timeout_s": 30.0, "retries": 3, "start_period_s": 0.0}


def _parse_healthcheck(fail, hc: Any) -> dict | None:
    """Normalise a compose ``healthcheck``: ``{"test": argv | None, "shell": str | None,
    "interval_s", "timeout_s", "retries", "start_period_s"}``; None when absent or disabled."""
    if hc is None:
        return None
    if not isinstance(hc, dict):
        fail("healthcheck", f"{hc!r} is not a mapping", "write 'healthcheck: {test: [...], interval: 10s}'")
    if hc.get("disable") is True:
        return None
    test = hc.get("test")
    out: dict[str, Any] = {"test": None, "shell": None}
    if isinstance(test, str) and test.strip():
        out["shell"] = test
    elif isinstance(test, list) and test and all(isinstance(t, str) for t in test):
        kind = test[0]
        if kind == "NONE":
            return None
        if kind == "CMD" and len(test) > 1:
            out["test"] = list(test[1:])
        elif kind == "CMD-SHELL" and len(test) == 2:
            out["shell"] = test[1]
        else:
            fail("healthcheck.test", f"{test!r} is not a test command",
                 'write ["CMD", "prog", "arg", ...], ["CMD-SHELL", "command line"] or ["NONE"]')
    else:
        fail("healthcheck.test", f"{test!r} is not a test command",
             'write test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/healthz"]')
    for key in ("interval", "timeout", "start_period"):
        if hc.get(key) is None:
            out[key + "_s"] = HEALTHCHECK_DEFAULTS[key + "_s"]
            continue
        try:
            out[key + "_s"] = parse_duration(hc[key])
        except ValueError as e:
            fail(f"healthcheck.{key}", str(e), "write a duration with its unit, e.g. 10s, 1m30s or 500ms")
        if key != "start_period" and out[key + "_s"] <= 0:
            fail(f"healthcheck.{key}", f"{hc[key]!r} is not positive", "use a positive duration, e.g. 10s")
    retries = hc.get("retries", HEALTHCHECK_DEFAULTS["retries"])
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        fail("healthcheck.retries", f"{retries!r} is not a positive whole number", "write e.g. retries: 3")
    out["retries"] = retries
    return out


def _port_num(fail, text: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text or ""):
        fail("ports", f"{what} {text!r} is not a port number",
             'write "HOST_PORT:CONTAINER_PORT", e.g. "127.0.0.1:8000:8000"')
    n = int(text)
    if not 1 <= n <= 65535:
        fail("ports", f"{what} {n} is out of range", "use a port between 1 and 65535")
    return n


class _PortLong(Model):
    """A port in the long syntax (``mode``, ``name`` and ``app_protocol`` are Docker's own)."""
    target: Any = None
    published: Any = None
    host_ip: Any = None
    protocol: Any = None
    mode: Any = None
    name: Any = None
    app_protocol: Any = None


class _VolumeLong(Model):
    """A volume in the long syntax (``bind``/``volume`` options and ``consistency`` are Docker's)."""
    type: Any = None
    source: Any = None
    target: Any = None
    read_only: Any = None
    bind: Any = None
    volume: Any = None
    consistency: Any = None


def _known_long_syntax(fail, fld: str, v: dict, model: type[Model]) -> None:
    try:
        model.model_validate(v)
    except ValidationError as e:
        r = refusal_parts(e, model)
        fail(fld, r.problem, r.fix)


def _parse_port(fail, p: Any) -> Port:
    if isinstance(p, dict):  # long syntax
        _known_long_syntax(fail, "ports", p, _PortLong)
        tgt = p.get("target")
        pub = p.get("published")
        return Port(container_port=_port_num(fail, str(tgt) if tgt is not None else "", "target"),
                    host_port=_port_num(fail, str(pub), "published") if pub not in (None, "") else None,
                    host_ip=str(p.get("host_ip") or ""), protocol=str(p.get("protocol") or "tcp"))
    if isinstance(p, bool) or not isinstance(p, (str, int)):
        fail("ports", f"{p!r} is not a port mapping", 'write "127.0.0.1:8000:8000"')
    text = str(p).strip()
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        if proto not in ("tcp", "udp", "sctp"):
            fail("ports", f"unknown protocol {proto!r} in {p!r}", "use /tcp or /udp")
    if "-" in text:
        fail("ports", f"port range {p!r} is not supported by edgebench", "publish single ports")
    if text.startswith("["):  # [::1]:8000:8000
        m = re.fullmatch(r"\[([^\]]+)\]:(\d*):(\d+)", text)
        if not m:
            fail("ports", f"{p!r} is not a port mapping", 'write "[::1]:8000:8000"')
        ip, host, cont = m.groups()
    else:
        parts = text.split(":")
        if len(parts) == 1:
            ip, host, cont = "", "", parts[0]
        elif len(parts) == 2:
            ip, (host, cont) = "", parts
        elif len(parts) == 3:
            ip, host, cont = parts
            if not ip:
                fail("ports", f"empty host address in {p!r}", 'write "127.0.0.1:8000:8000" or "8000:8000"')
        else:
            fail("ports", f"{p!r} is not a port mapping", 'write "127.0.0.1:8000:8000", "8000:8000" or "8000"')
    return Port(container_port=_port_num(fail, cont, "container port"),
                host_port=_port_num(fail, host, "host port") if host else None,
                host_ip=ip, protocol=proto)


def _parse_volume(fail, project_dir: Path, v: Any, vols: dict) -> Volume:
    if isinstance(v, dict):  # long syntax
        _known_long_syntax(fail, "volumes", v, _VolumeLong)
        kind = v.get("type", "volume")
        src = v.get("source")
        tgt = v.get("target")
        ro = bool(v.get("read_only", False))
        if kind not in ("bind", "volume"):
            fail("volumes", f"volume type {kind!r} is not supported", "use type: bind or type: volume")
    elif isinstance(v, str):
        parts = v.split(":")
        ro = False
        if len(parts) >= 2 and parts[-1] in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z", "cached",
                                              "delegated", "consistent", "nocopy"):
            ro = "ro" in parts[-1].split(",")
            if len(parts) > 2:
                parts = parts[:-1]
        if len(parts) == 1:
            src, tgt = None, parts[0]
        elif len(parts) == 2:
            src, tgt = parts
        else:
            fail("volumes", f"{v!r} is not 'SOURCE:TARGET[:ro]'", 'write "./host/path:/container/path:ro"')
        kind = "volume"
        if src is not None and (src.startswith((".", "/", "~")) ):
            kind = "bind"
    else:
        fail("volumes", f"{v!r} is not a volume", 'write "./host/path:/container/path[:ro]" or "name:/path"')
    if not isinstance(tgt, str) or not tgt.startswith("/"):
        fail("volumes", f"target {tgt!r} in {v!r} is not an absolute container path",
             "make the part after ':' an absolute path")
    if kind == "bind":
        if not src:
            fail("volumes", f"bind mount {v!r} has no source", "give the host path before ':'")
        src = str((project_dir / os.path.expanduser(src)).resolve())
    elif src is not None:
        if src not in vols:
            fail("volumes", f"named volume '{src}' is not declared",
                 f"add '{src}: {{}}' under the top-level 'volumes:' (or use ./{src} for a bind mount)")
    return Volume(kind=kind, source=src, target=tgt.rstrip("/") or "/", read_only=ro)
