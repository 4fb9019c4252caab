"""Compose parser: pure tests (no processes), and one slow check against docker-compose's own reading."""
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from stack import docker_engine
from stack.compose import ComposeError, interpolate, load_compose, parse_bytes, parse_cpus
from stack.images import StackError, plan_service

MiB = 1 << 20


def write(tmp_path, body: str, name="docker-compose.yml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def one(tmp_path, svc_body: str, extra: str = "", env=None):
    """A file with one service 'app' whose keys are svc_body (indented by the helper)."""
    body = "services:\n  app:\n" + textwrap.indent(textwrap.dedent(svc_body), "    ") + textwrap.dedent(extra)
    return load_compose(write(tmp_path, body), env=env or {}).all_services["app"]


def refused(tmp_path, svc_body: str, extra: str = "", env=None) -> ComposeError:
    with pytest.raises(ComposeError) as ei:
        one(tmp_path, svc_body, extra, env)
    e = ei.value
    msg = str(e)
    assert "\n" not in msg
    assert str(tmp_path / "docker-compose.yml") in msg
    assert "fix:" in msg
    return e


# ------------------------------------------------------------ the real file

def test_repo_compose_file(repo_root):
    c = load_compose(repo_root / "docker-compose.yml", env={})
    assert list(c.services) == ["sensor-service", "victoriametrics"]  # prometheus is behind a profile
    s = c.services["sensor-service"]
    assert (s.mem_limit, s.memswap_limit, s.cpus) == (50 * MiB, 50 * MiB, 0.5)
    assert s.command == ["python", "-m", "service"]
    assert s.environment["SENSOR_VARIANT"] == "optimized"
    assert s.environment["SENSOR_PORT"] == "8000"
    assert s.build["context"] == str(repo_root)
    assert s.build["args"] == {"SENSOR_VARIANT": "optimized"}
    assert s.restart == "always"
    assert [(p.host_ip, p.host_port, p.container_port) for p in s.ports] == [("127.0.0.1", 8000, 8000)]
    vm = c.services["victoriametrics"]
    assert (vm.mem_limit, vm.cpus) == (150 * MiB, 0.5)
    assert vm.depends_on == ["sensor-service"]
    assert [(v.kind, v.source, v.target, v.read_only) for v in vm.volumes] == [
        ("bind", str(repo_root / "stack" / "scrape.yml"), "/etc/victoriametrics/scrape.yml", True),
        ("volume", "vmdata", "/storage", False)]
    c2 = load_compose(repo_root / "docker-compose.yml", profiles=["prometheus"], env={"SENSOR_VARIANT": "baseline"})
    assert list(c2.services) == ["sensor-service", "victoriametrics", "prometheus"]
    assert c2.services["sensor-service"].environment["SENSOR_VARIANT"] == "baseline"
    assert c2.services["prometheus"].mem_limit == 150 * MiB
    # a named service is started even without its profile, with what it depends on
    assert [s.name for s in c.select(["prometheus"])] == ["sensor-service", "prometheus"]
    assert [s.name for s in c.select(["victoriametrics"])] == ["sensor-service", "victoriametrics"]


def test_compose_profiles_from_env(repo_root):
    c = load_compose(repo_root / "docker-compose.yml", env={"COMPOSE_PROFILES": "prometheus"})
    assert "prometheus" in c.services


# ------------------------------------------------------------ units

@pytest.mark.parametrize("value,expected", [
    ("50M", 50 * MiB), ("50m", 50 * MiB), ("50MB", 50 * MiB), ("50mb", 50 * MiB), ("50MiB", 50 * MiB),
    ("50 MB", 50 * MiB), ("0.5GB", 512 * MiB), ("0.5g", 512 * MiB), ("1g", 1 << 30), ("1G", 1 << 30),
    ("1gb", 1 << 30), ("512k", 512 << 10), ("512KB", 512 << 10), ("100b", 100), ("100B", 100),
    ("1.5m", int(1.5 * MiB)), (52428800, 52428800), ("52428800", 52428800), (1024, 1024), ("1t", 1 << 40),
])
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("bad", ["50X", "50mbit", "fifty", "", "5 0m", "1.2.3m", True, [50]])
def test_parse_bytes_refuses(bad):
    with pytest.raises(ValueError):
        parse_bytes(bad)


@pytest.mark.parametrize("value,expected", [("0.5", 0.5), (0.5, 0.5), (1, 1.0), ("1.25", 1.25), (" 2 ", 2.0)])
def test_parse_cpus(value, expected):
    assert parse_cpus(value) == expected


@pytest.mark.parametrize("field", ["mem_limit: {v}", "deploy: {{resources: {{limits: {{memory: {v}}}}}}}"])
@pytest.mark.parametrize("v,expected", [("50M", 50 * MiB), ("50m", 50 * MiB), ("50MB", 50 * MiB),
                                        ("0.5GB", 512 * MiB), ("1g", 1 << 30), ("52428800", 52428800)])
def test_memory_both_spellings(tmp_path, field, v, expected):
    s = one(tmp_path, f"image: x\n{field.format(v=v)}\n")
    assert s.mem_limit == expected


@pytest.mark.parametrize("field", ["cpus: {v}", "deploy: {{resources: {{limits: {{cpus: {v}}}}}}}"])
@pytest.mark.parametrize("v", ["'0.5'", "0.5", '"0.50"'])
def test_cpus_both_spellings(tmp_path, field, v):
    assert one(tmp_path, f"image: x\n{field.format(v=v)}\n").cpus == 0.5


def test_both_spellings_agreeing(tmp_path):
    s = one(tmp_path, """\
        image: x
        mem_limit: 50m
        cpus: 0.5
        deploy:
          resources:
            limits: {memory: 50M, cpus: '0.5'}
        """)
    assert (s.mem_limit, s.cpus) == (50 * MiB, 0.5)


def test_memswap_forms(tmp_path):
    s = one(tmp_path, "image: x\nmem_limit: 50m\nmemswap_limit: 100m\n")
    assert s.memswap_limit == 100 * MiB
    s = one(tmp_path, "image: x\nmem_limit: 50m\nmemswap_limit: -1\n")
    assert s.memswap_limit == -1
    s = one(tmp_path, "image: x\nmem_limit: 50m\n")
    assert s.memswap_limit is None


# ------------------------------------------------------------ refusals, one per cause

@pytest.mark.parametrize("body,field,words", [
    ("image: x\nmem_limit: 50X\n", "mem_limit", "unknown unit"),
    ("image: x\ndeploy: {resources: {limits: {memory: 12parsecs}}}\n", "deploy.resources.limits.memory",
     "unknown unit"),
    ("image: x\nmem_limit: 50m\ndeploy: {resources: {limits: {memory: 60m}}}\n", "mem_limit", "disagrees"),
    ("image: x\ncpus: 0.5\ndeploy: {resources: {limits: {cpus: '1'}}}\n", "cpus", "disagrees"),
    ("image: x\nmem_limit: 50m\nmemswap_limit: 40m\n", "memswap_limit", "below the memory limit"),
    ("image: x\nmemswap_limit: 40m\n", "memswap_limit", "without a memory limit"),
    ("image: x\ncpus: -0.5\n", "cpus", "negative"),
    ("image: x\ndeploy: {resources: {limits: {cpus: '-1'}}}\n", "deploy.resources.limits.cpus", "negative"),
    ("image: x\ncpus: half\n", "cpus", "not a number"),
    ("image: x\nmem_limit: -5m\n", "mem_limit", "negative"),
    ("command: [python]\n", "image", "neither 'image' nor 'build'"),
    ("image: x\ndepends_on: [ghost]\n", "depends_on", "unknown service 'ghost'"),
    ("image: x\nports: ['abc:8000']\n", "ports", "not a port number"),
    ("image: x\nports: ['70000:8000']\n", "ports", "out of range"),
    ("image: x\nports: ['1.2.3.4:1:2:3']\n", "ports", "not a port mapping"),
    ("image: x\nports: ['8000:8000/xyz']\n", "ports", "unknown protocol"),
    ("image: x\nports: '8000:8000'\n", "ports", "not a list"),
    ("image: x\nrestart: sometimes\n", "restart", "unknown policy"),
    ("image: x\nrestart: on-failure:many\n", "restart", "bad retry count"),
    ("image: x\nvolumes: ['data:/data']\n", "volumes", "not declared"),
    ("image: x\nvolumes: ['./x:relative']\n", "volumes", "absolute container path"),
    ("image: x\nenvironment: {DEBUG: true}\n", "environment.DEBUG", "boolean"),
    ("image: x\nenvironment: [\"=x\"]\n", "environment", "KEY=value"),
    ("image: x\ncommand: {a: b}\n", "command", "neither a string nor a list"),
    ("image: x\ncommand: \"echo 'unbalanced\"\n", "command", "cannot split"),
    ("build: ./no-such-dir\n", "build.context", "does not exist"),
    ("image: x\nenvironment: {A: '${NOPE:?set NOPE}'}\n", "environment.A", "required variable NOPE"),
    ("image: x\nenvironment: {A: '${BROKEN'}\n", "environment.A", "unterminated"),
    ("image: x\nprofiles: prometheus\n", "profiles", "not a list"),
    # a limit the engines would drop is refused, never silently ignored
    ("image: x\npids_limit: 100\n", "pids_limit", "does not enforce"),
    ("image: x\ncpuset: '0'\n", "cpuset", "does not enforce"),
    ("image: x\nmem_reservation: 20m\n", "mem_reservation", "does not enforce"),
    ("image: x\nulimits: {nofile: 1024}\n", "ulimits", "does not enforce"),
    ("image: x\nenv_file: .env\n", "env_file", "environment:"),
    ("image: x\ndeploy: {resources: {reservations: {memory: 20m}}}\n", "deploy.resources.reservations",
     "only deploy.resources.limits"),
    ("image: x\ndeploy: {resources: {limits: {pids: 50}}}\n", "deploy.resources.limits.pids",
     "only memory and cpus"),
])
def test_refusals(tmp_path, body, field, words):
    e = refused(tmp_path, body)
    assert e.service == "app"
    assert e.field == field
    assert f"service 'app': {field}:" in str(e)
    assert words in str(e)


def test_refuse_bad_yaml(tmp_path):
    p = write(tmp_path, "services:\n  app:\n    image: x\n   ports: [\n")
    with pytest.raises(ComposeError) as ei:
        load_compose(p, env={})
    msg = str(ei.value)
    assert msg.startswith(str(p) + ": invalid YAML at line ")
    assert "fix:" in msg and "\n" not in msg


@pytest.mark.parametrize("body", ["", "services: []\n", "version: '3'\n", "services:\n  app: nope\n"])
def test_refuse_not_compose(tmp_path, body):
    with pytest.raises(ComposeError) as ei:
        load_compose(write(tmp_path, body), env={})
    assert "fix:" in str(ei.value)


def test_refuse_missing_file(tmp_path):
    with pytest.raises(ComposeError, match="cannot read the file"):
        load_compose(tmp_path / "nope.yml")


def test_refuse_duplicate_host_port(tmp_path):
    p = write(tmp_path, """\
        services:
          a: {image: x, ports: ["8000:8000"]}
          b: {image: y, ports: ["127.0.0.1:8000:80"]}
        """)
    with pytest.raises(ComposeError, match="service 'b': ports: host port 8000 is also published by 'a'"):
        load_compose(p, env={})


def test_refuse_dependency_on_inactive_profile(tmp_path):
    p = write(tmp_path, """\
        services:
          a: {image: x, depends_on: [b]}
          b: {image: y, profiles: [extra]}
        """)
    with pytest.raises(ComposeError, match="--profile extra"):
        load_compose(p, env={})
    assert list(load_compose(p, profiles=["extra"], env={}).services) == ["a", "b"]


def test_select_unknown_service(repo_root):
    c = load_compose(repo_root / "docker-compose.yml", env={})
    with pytest.raises(ComposeError, match="service 'nope': no such service"):
        c.select(["nope"])


# ------------------------------------------------------------ forms

def test_command_string_and_list(tmp_path):
    assert one(tmp_path, "image: x\ncommand: python -m service --port '80 80'\n").command == \
        ["python", "-m", "service", "--port", "80 80"]
    assert one(tmp_path, "image: x\ncommand: [python, -m, service, 8000]\n").command == \
        ["python", "-m", "service", "8000"]


def test_environment_list_and_dict_with_interpolation(tmp_path):
    env = {"HOST_VAR": "from-host", "EMPTY": ""}
    s = one(tmp_path, """\
        image: x
        environment:
          - A=${HOST_VAR}
          - B=${MISSING:-dflt}
          - C=${EMPTY:-dflt}
          - D=${EMPTY-dflt}
          - E=$$LITERAL
          - F=$HOST_VAR/x
          - G=${MISSING}
          - H=a=b
        """, env=env)
    assert s.environment == {"A": "from-host", "B": "dflt", "C": "dflt", "D": "", "E": "$LITERAL",
                             "F": "from-host/x", "G": "", "H": "a=b"}
    s = one(tmp_path, """\
        image: x
        environment:
          PORT: 8000
          RATIO: 0.5
          NAME: ${HOST_VAR:-x}
          ALT: ${HOST_VAR:+set}
        """, env=env)
    assert s.environment == {"PORT": "8000", "RATIO": "0.5", "NAME": "from-host", "ALT": "set"}


def test_interpolate_function():
    env = {"A": "1"}
    assert interpolate("${A}-${B:-2}-${A:?x}-$$-${B-3}", env) == "1-2-1-$-3"
    with pytest.raises(ValueError, match="required variable B"):
        interpolate("${B?need B}", env)
    with pytest.raises(ValueError, match="invalid interpolation"):
        interpolate("${A B}", env)


def test_interpolation_reaches_limits(tmp_path):
    s = one(tmp_path, "image: x\nmem_limit: ${MEM:-50m}\ncpus: ${CPUS:-0.25}\n", env={"CPUS": "1.5"})
    assert (s.mem_limit, s.cpus) == (50 * MiB, 1.5)


@pytest.mark.parametrize("spec,expected", [
    ("'127.0.0.1:8000:8000'", ("127.0.0.1", 8000, 8000, "tcp")),
    ("'8000:8000'", ("", 8000, 8000, "tcp")),
    ("'18000:8000'", ("", 18000, 8000, "tcp")),
    ("'8000'", ("", None, 8000, "tcp")),
    ("8000", ("", None, 8000, "tcp")),
    ("'9000:9000/udp'", ("", 9000, 9000, "udp")),
    ("'[::1]:8000:8000'", ("::1", 8000, 8000, "tcp")),
    ("{target: 8000, published: 18000, host_ip: 127.0.0.1}", ("127.0.0.1", 18000, 8000, "tcp")),
])
def test_port_forms(tmp_path, spec, expected):
    p = one(tmp_path, f"image: x\nports: [{spec}]\n").ports[0]
    assert (p.host_ip, p.host_port, p.container_port, p.protocol) == expected


@pytest.mark.parametrize("value,policy,retries", [
    ("no", "no", None), ("'no'", "no", None), ("always", "always", None), ("on-failure", "on-failure", None),
    ("on-failure:3", "on-failure", 3), ("unless-stopped", "unless-stopped", None)])
def test_restart_policies(tmp_path, value, policy, retries):
    s = one(tmp_path, f"image: x\nrestart: {value}\n")
    assert (s.restart, s.restart_max_retries) == (policy, retries)
    assert one(tmp_path, "image: x\n").restart == "no"


def test_volume_forms(tmp_path):
    (tmp_path / "conf").mkdir()
    s = one(tmp_path, """\
        image: x
        volumes:
          - ./conf:/etc/conf:ro
          - ./conf:/etc/conf2
          - data:/data
          - /abs/path:/abs
          - /anonymous
          - {type: bind, source: ./conf, target: /long, read_only: true}
          - {type: volume, source: data, target: /long-data}
        """, extra="volumes:\n  data:\n")
    got = [(v.kind, v.source, v.target, v.read_only) for v in s.volumes]
    assert got == [("bind", str(tmp_path / "conf"), "/etc/conf", True),
                   ("bind", str(tmp_path / "conf"), "/etc/conf2", False),
                   ("volume", "data", "/data", False),
                   ("bind", "/abs/path", "/abs", False),
                   ("volume", None, "/anonymous", False),
                   ("bind", str(tmp_path / "conf"), "/long", True),
                   ("volume", "data", "/long-data", False)]


def test_depends_on_long_form(tmp_path):
    p = write(tmp_path, """\
        services:
          a: {image: x, depends_on: {b: {condition: service_healthy}}}
          b: {image: y}
        """)
    c = load_compose(p, env={})
    assert c.services["a"].depends_on == ["b"]
    assert [s.name for s in c.select(["a"])] == ["b", "a"]


# ------------------------------------------------------------ native plan (rewrites), pure

def test_native_plan_rewrites(repo_root, tmp_path):
    c = load_compose(repo_root / "docker-compose.yml", profiles=["prometheus"], env={})
    ports = {"sensor-service": 18000, "victoriametrics": 18428, "prometheus": 19090}
    vm = plan_service(c, c.services["victoriametrics"], tmp_path, ports, check_binary=False)
    assert vm.argv[0] == "/usr/bin/victoria-metrics"
    assert f"-promscrape.config={tmp_path}/config/victoriametrics/scrape.yml" in vm.argv
    assert f"-storageDataPath={tmp_path}/volumes/vmdata" in vm.argv
    assert "-httpListenAddr=127.0.0.1:18428" in vm.argv and "-httpListenAddr=:8428" not in vm.argv
    assert vm.health_url == "http://127.0.0.1:18428/health"
    scrape = (tmp_path / "config" / "victoriametrics" / "scrape.yml").read_text()
    assert '"127.0.0.1:18000"' in scrape and "sensor-service:8000" not in scrape
    prom = plan_service(c, c.services["prometheus"], tmp_path, ports, check_binary=False)
    assert "--web.listen-address=127.0.0.1:19090" in prom.argv
    assert f"--storage.tsdb.path={tmp_path}/volumes/promdata" in prom.argv
    assert prom.health_url == "http://127.0.0.1:19090/-/ready"
    svc = plan_service(c, c.services["sensor-service"], tmp_path, ports,
                       env_override={"SENSOR_VARIANT": "baseline"})
    import sys
    assert svc.argv == [sys.executable, "-m", "service"]
    assert svc.cwd == str(repo_root)
    assert (svc.env["SENSOR_HOST"], svc.env["SENSOR_PORT"], svc.env["SENSOR_VARIANT"]) == \
        ("127.0.0.1", "18000", "baseline")
    assert svc.health_url == "http://127.0.0.1:18000/healthz"
    assert (svc.mem_limit, svc.cpus) == (50 * MiB, 0.5)


def test_native_plan_missing_binary_and_unknown_image(repo_root, tmp_path, monkeypatch):
    from stack import images
    c = load_compose(repo_root / "docker-compose.yml", env={})
    monkeypatch.setattr(images, "ADAPTERS", [(pat, images.Adapter("/nonexistent/victoria-metrics", ad.listen_flag,
                                                                  ad.health_path))
                                             for pat, ad in images.ADAPTERS])
    with pytest.raises(StackError) as ei:
        plan_service(c, c.services["victoriametrics"], tmp_path, {"victoriametrics": 1, "sensor-service": 2})
    assert "/nonexistent/victoria-metrics" in str(ei.value) and "make os-packages" in str(ei.value)
    p = write(tmp_path, "services:\n  db: {image: postgres:16}\n", "other.yml")
    c2 = load_compose(p, env={})
    with pytest.raises(StackError, match="no native adapter for 'postgres:16'"):
        plan_service(c2, c2.services["db"], tmp_path, {"db": 5432})


# ------------------------------------------------------------ docker engine command lines, pure

def test_docker_command_lines(repo_root):
    base = ["docker", "compose"]
    assert docker_engine.up_cmd(base, "dc.yml", "edgebench-ab12", ["sensor-service", "victoriametrics"],
                                ["prometheus"], build=True) == [
        "docker", "compose", "-f", "dc.yml", "-p", "edgebench-ab12", "--profile", "prometheus",
        "up", "-d", "--build", "sensor-service", "victoriametrics"]
    assert docker_engine.up_cmd(["docker-compose"], "dc.yml", "p", []) == [
        "docker-compose", "-f", "dc.yml", "-p", "p", "up", "-d"]  # no --wait: 1.x lacks it
    assert docker_engine.down_cmd(base, "dc.yml", "p") == [
        "docker", "compose", "-f", "dc.yml", "-p", "p", "down", "-v", "--remove-orphans", "--timeout", "10"]
    assert docker_engine.ps_cmd(base, "dc.yml", "p", "victoriametrics") == [
        "docker", "compose", "-f", "dc.yml", "-p", "p", "ps", "-q", "victoriametrics"]
    assert docker_engine.stats_cmd(["abc", "def"]) == ["docker", "stats", "--no-stream", "--format", "{{json .}}",
                                                       "abc", "def"]
    assert docker_engine.events_cmd("p", 12.5)[-2:] == ["--filter", "label=com.docker.compose.project=p"]


def test_a_missing_image_is_one_line_naming_make_images_offline():
    from stack.images_offline import _tag, missing_refusal
    e = missing_refusal(["victoriametrics/victoria-metrics:v0.0.1-absent", "prom/prometheus"],
                        "pull access denied for victoriametrics/victoria-metrics")
    msg = str(e)
    assert isinstance(e, StackError) and "\n" not in msg
    assert msg.startswith("image(s) victoriametrics/victoria-metrics:v0.0.1-absent, prom/prometheus are not in")
    assert "(docker: pull access denied" in msg and msg.endswith(
        "fix: run `make images-offline` (builds them without a registry) or `docker load` them")
    # RepoTags spell an untagged reference with :latest, a registry port is not a tag
    assert _tag("prom/prometheus") == "prom/prometheus:latest"
    assert _tag("localhost:5000/vm") == "localhost:5000/vm:latest"
    assert _tag("python:3.11.11-alpine3.21") == "python:3.11.11-alpine3.21"


def test_docker_compose_version_pick():
    assert docker_engine.pick_compose("2.29.1", "1.29.2") == ["docker", "compose"]
    assert docker_engine.pick_compose(None, "1.29.2") == ["docker-compose"]
    assert docker_engine.pick_compose(None, "docker-compose version 1.28.0, build x") == ["docker-compose"]
    with pytest.raises(StackError, match=r"docker-compose 1.25.0 cannot run the stack.*>= 1.28"):
        docker_engine.pick_compose(None, "1.25.0")
    with pytest.raises(StackError, match="neither `docker compose` nor `docker-compose`"):
        docker_engine.pick_compose(None, None)


def test_docker_resolved_compose_file(repo_root):
    """One plain compose file per stack: overrides applied in place, no !override tag,
    paths absolute, builds on the host network, the offline base as a build argument."""
    c = load_compose(repo_root / "docker-compose.yml", env={})
    raw = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    doc = docker_engine.resolved_doc(c, raw, {"sensor-service": {"SENSOR_VARIANT": "baseline"}},
                                     {"sensor-service": 18000}, {"sensor-service": "/tmp/other"},
                                     {"victoriametrics": ["-search.latencyOffset=1s"]},
                                     {"BASE_IMAGE": "edgebench/python-offline:bookworm"}, environ={})
    text = yaml.safe_dump(doc)
    assert "!override" not in text and "${" not in text
    svc, vm = doc["services"]["sensor-service"], doc["services"]["victoriametrics"]
    assert svc["ports"] == ["127.0.0.1:18000:8000"]
    assert svc["environment"]["SENSOR_VARIANT"] == "baseline" and svc["environment"]["SENSOR_PORT"] == "8000"
    assert svc["build"] == {"context": "/tmp/other", "args": {"SENSOR_VARIANT": "optimized",
                                                              "BASE_IMAGE": "edgebench/python-offline:bookworm"},
                            "network": "host"}
    assert vm["ports"] == ["127.0.0.1:8428:8428"]  # not overridden: as written
    assert vm["volumes"][0] == f"{repo_root}/stack/scrape.yml:/etc/victoriametrics/scrape.yml:ro"
    assert vm["command"][-1] == "-search.latencyOffset=1s" and vm["command"][0].startswith("-promscrape.config=")
    assert yaml.safe_load(text) == doc


def test_docker_container_cgroups_from_proc():
    mountinfo = (
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu\n"
        "32 25 0:28 / /sys/fs/cgroup/cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpuacct\n"
        "33 25 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
        "22 1 0:20 / /proc rw - proc proc rw\n")
    mounts = docker_engine.parse_mountinfo(mountinfo)
    assert [m["controllers"] for m in mounts] == [["memory"], ["cpu"], ["cpuacct"], []]
    proc = "12:memory:/docker/abc\n11:cpu:/docker/abc\n10:cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    assert docker_engine.cgroups_from_proc(proc, mounts) == {
        "memory": "/sys/fs/cgroup/memory/docker/abc", "cpu": "/sys/fs/cgroup/cpu/docker/abc",
        "cpuacct": "/sys/fs/cgroup/cpuacct/docker/abc"}
    # co-mounted cpu,cpuacct; a mount whose root is a sub-tree (a cgroup namespace)
    co = docker_engine.parse_mountinfo(
        "30 25 0:26 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "31 25 0:27 /docker /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n")
    assert docker_engine.cgroups_from_proc("4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n", co) == {
        "memory": "/sys/fs/cgroup/memory/x", "cpu": "/sys/fs/cgroup/cpu,cpuacct/x",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/x"}
    assert docker_engine.cgroups_from_proc("4:memory:/elsewhere/x\n3:cpu,cpuacct:/docker/x\n", co) == {}
    v2 = docker_engine.parse_mountinfo("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert docker_engine.cgroups_from_proc("0::/system.slice/docker-abc.scope\n", v2) == {
        "unified": "/sys/fs/cgroup/system.slice/docker-abc.scope"}
    assert docker_engine.cgroups_from_proc("0::/x\n", []) == {}  # nothing mounted: docker stats


def test_docker_inspect_facts():
    f = docker_engine.container_facts({
        "Id": "abc", "RestartCount": 2, "State": {"Status": "running", "Pid": 42, "OOMKilled": True, "ExitCode": 137,
                                                  "Health": {"Status": "healthy"}},
        "Mounts": [{"Type": "volume", "Source": "/d/v/_data", "Destination": "/storage"},
                   {"Type": "bind", "Source": "/x", "Destination": "/etc/x"}]})
    assert f == {"container_id": "abc", "pid": 42, "status": "running", "health": "healthy", "restarts": 2,
                 "oom_killed": True, "exit_code": 137, "volumes": {"/storage": "/d/v/_data"}}


def test_dockerfile_base_is_a_build_argument(repo_root):
    from stack.images_offline import dockerfile_bases
    assert dockerfile_bases(repo_root / "Dockerfile") == ["python:3.11.11-alpine3.21"]
    assert "ARG BASE_IMAGE=" in (repo_root / "Dockerfile").read_text()


def test_docker_stats_parsing():
    out = docker_engine.parse_stats(
        '{"BlockIO":"0B / 0B","CPUPerc":"12.50%","Container":"abc","ID":"abc","MemPerc":"50.00%",'
        '"MemUsage":"25MiB / 50MiB","Name":"edgebench-x-sensor-service-1","NetIO":"0B / 0B","PIDs":"5"}\n')
    assert out == {"edgebench-x-sensor-service-1": {"id": "abc", "mem_bytes": 25 * MiB,
                                                    "mem_limit_bytes": 50 * MiB, "cpu_percent": 12.5, "pids": 5}}


# ------------------------------------------------------------ supervisor policy, pure

def test_restart_backoff_like_docker():
    from stack.supervisor import next_backoff
    delays, d = [], 0.0
    for _ in range(12):
        d = next_backoff(d, up_for=0.5)
        delays.append(d)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0  # capped
    assert next_backoff(25.6, up_for=10.0) == 0.1  # reset after 10 s up


@pytest.mark.parametrize("policy,code,restarts,retries,expected", [
    ("always", 0, 5, None, True), ("unless-stopped", 1, 0, None, True), ("no", 1, 0, None, False),
    ("on-failure", 0, 0, None, False), ("on-failure", 1, 0, None, True), ("on-failure", -9, 0, None, True),
    ("on-failure", 1, 3, 3, False), ("on-failure", 1, 2, 3, True)])
def test_restart_policy(policy, code, restarts, retries, expected):
    from stack.supervisor import should_restart
    assert should_restart(policy, code, restarts, retries) is expected


# ---------------------------------------------------------------------------
# healthcheck fields and the scrape config: bad input is one line naming file, field, fix
# ---------------------------------------------------------------------------

def _compose_with_healthcheck(tmp_path, hc_yaml: str):
    p = tmp_path / "docker-compose.yml"
    p.write_text("services:\n  svc:\n    image: victoriametrics/victoria-metrics:v1.79.5\n"
                 "    healthcheck:\n" + "".join(f"      {line}\n" for line in hc_yaml.splitlines()))
    return p


@pytest.mark.parametrize("hc, field, fix", [
    ("test: 42", "healthcheck.test", '["CMD"'),
    ('test: ["SHELL", "x"]', "healthcheck.test", "CMD-SHELL"),
    ('test: ["CMD", "true"]\ninterval: 10', "healthcheck.interval", "10s"),
    ('test: ["CMD", "true"]\ntimeout: 3 seconds', "healthcheck.timeout", "unit"),
    ('test: ["CMD", "true"]\nretries: -1', "healthcheck.retries", "retries: 3"),
    ('test: ["CMD", "true"]\ninterval: 0s', "healthcheck.interval", "positive"),
])
def test_bad_healthcheck_is_one_line(tmp_path, hc, field, fix):
    with pytest.raises(ComposeError) as e:
        load_compose(_compose_with_healthcheck(tmp_path, hc))
    msg = str(e.value)
    assert "\n" not in msg and "docker-compose.yml" in msg and field in msg and fix in msg and "svc" in msg


def test_healthcheck_normalised_with_docker_defaults(tmp_path):
    svc = load_compose(_compose_with_healthcheck(tmp_path, 'test: ["CMD-SHELL", "wget -q -O- x"]\nstart_period: 1m30s'))
    hc = svc.services["svc"].healthcheck
    assert hc["shell"] == "wget -q -O- x" and hc["test"] is None
    assert (hc["interval_s"], hc["timeout_s"], hc["retries"], hc["start_period_s"]) == (30.0, 30.0, 3, 90.0)
    assert load_compose(_compose_with_healthcheck(tmp_path, 'test: ["NONE"]')).services["svc"].healthcheck is None
    assert load_compose(_compose_with_healthcheck(tmp_path, 'disable: true')).services["svc"].healthcheck is None


def test_native_healthcheck_targets_the_host_port(tmp_path):
    from pathlib import Path as P
    compose = load_compose(P(__file__).resolve().parents[1] / "docker-compose.yml")
    svc = compose.services["sensor-service"]
    plan = plan_service(compose, svc, tmp_path, {"sensor-service": 18123, "victoriametrics": 18428})
    # the compose file's own test, with only its loopback address moved to the host port
    want = [("http://127.0.0.1:18123" + a[len("http://127.0.0.1:8000"):]) if a.startswith("http://127.0.0.1:8000")
            else a for a in svc.healthcheck["test"]]
    if want[0].startswith("python"):
        want[0] = sys.executable
    assert plan.healthcheck["argv"] == want
    assert any("127.0.0.1:18123/healthz" in a for a in want)


from plumbing.durations import parse_duration  # noqa: E402
from stack.scrape_config import ScrapeConfigError, scrape_settings  # noqa: E402


def test_the_repository_scrape_config_is_valid():
    from pathlib import Path as P
    s = scrape_settings(P(__file__).resolve().parents[1] / "stack" / "scrape.yml")
    assert (s.interval_s, s.timeout_s, s.jobs) == (5, 4, ("sensor",))
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5 and parse_duration("1d") == 86400


@pytest.mark.parametrize("text, field, fix", [
    ("global: [\n", None, "YAML"),
    ("global:\n  scrape_interval: 5\nscrape_configs: [{job_name: a}]\n", "global.scrape_interval", "5s"),
    ("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\nscrape_configs: [{job_name: a}]\n",
     "global.scrape_timeout", "at most"),
    ("global:\n  scrape_interval: 5s\n", "scrape_configs", "at least one job"),
    ("scrape_configs:\n  - metrics_path: /metrics\n", "scrape_configs[0]", "'job_name' is missing"),
    ("scrape_configs:\n  - {job_name: a, scrape_intreval: 5s}\n", "scrape_configs[0]",
     "unknown key 'scrape_intreval' (known: job_name, metrics_path, scheme, params, scrape_interval,"),
    ("global: {scrape_interval: 5s, timeout: 4s}\nscrape_configs: [{job_name: a}]\n", "global",
     "unknown key 'timeout' (known: scrape_interval, scrape_timeout, evaluation_interval)"),
    ("scrape_configs:\n  - {job_name: a, honor_labels: 'yes'}\n", "scrape_configs[0].honor_labels",
     "input should be a valid boolean"),
    ("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [sensor-service]\n",
     "scrape_configs[0].static_configs[0].targets", "host:port"),
])
def test_bad_scrape_config_is_one_line(tmp_path, text, field, fix):
    p = tmp_path / "scrape.yml"
    p.write_text(text)
    with pytest.raises(ScrapeConfigError) as e:
        scrape_settings(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and fix in msg and (field is None or field in msg)


def test_bad_scrape_config_refused_before_the_collector_starts(tmp_path):
    bad = tmp_path / "scrape.yml"
    bad.write_text("global:\n  scrape_interval: five\nscrape_configs: [{job_name: a}]\n")
    p = tmp_path / "docker-compose.yml"
    p.write_text(f"services:\n  vm:\n    image: victoriametrics/victoria-metrics:v1.79.5\n"
                 f"    volumes:\n      - {bad}:/etc/victoriametrics/scrape.yml:ro\n")
    compose = load_compose(p)
    with pytest.raises(StackError) as e:
        plan_service(compose, compose.services["vm"], tmp_path, {"vm": 18428}, check_binary=False)
    assert "scrape_interval" in str(e.value) and "vm" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------
# the service model: unknown keys are refused, keys the spec allows that set no limit are not
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("body,field,words", [
    # a typo would leave the service without its limit
    ("image: x\nmem_limt: 50m\n", None, "unknown key 'mem_limt' (known: image, build, command, entrypoint, "
     "environment, ports, restart, mem_limit, memswap_limit, cpus, deploy, volumes, profiles, depends_on, "
     "healthcheck); fix: fix the spelling or remove it"),
    ("image: x\nhealthcheck: {test: [CMD, 'true'], intervl: 10s}\n", "healthcheck",
     "unknown key 'intervl' (known: test, interval, timeout, retries, start_period, start_interval, disable)"),
    ("image: x\ndeploy: {resources: {limits: {memory: 50m}}, replica: 2}\n", "deploy",
     "unknown key 'replica' (known: resources, replicas,"),
    ("image: x\ndeploy: {resources: {limits: 5}}\n", "deploy.resources.limits",
     "5 is not valid: input should be a valid dictionary"),
    ("image: x\ndeploy: {replicas: 2}\n", "deploy.replicas", "edgebench runs one process per service"),
    ("image: x\nscale: 3\n", "scale", "edgebench runs one process per service"),
    ("image: x\nextends: {service: base}\n", "extends", "limits included"),
    ("image: x\ncgroup_parent: robot.slice\n", "cgroup_parent", "does not enforce"),
    ("image: x\nports: [{target: 80, publised: 8080}]\n", "ports",
     "unknown key 'publised' (known: target, published, host_ip, protocol, mode, name, app_protocol)"),
    ("image: x\nvolumes: [{type: bind, source: ., target: /d, readonly: true}]\n", "volumes",
     "unknown key 'readonly' (known: type, source, target, read_only,"),
])
def test_unknown_or_unread_service_keys_are_refused(tmp_path, body, field, words):
    e = refused(tmp_path, body)
    assert e.service == "app" and e.field == field
    assert words in str(e)


def test_keys_the_spec_allows_that_set_no_limit_are_ignored(tmp_path):
    s = one(tmp_path, "image: x\nmem_limit: 50m\nstop_signal: SIGINT\nlabels: {a: b}\nx-note: kept for people\n"
                      "deploy: {replicas: 1, resources: {limits: {cpus: '0.5'}}}\nscale: 1\n")
    assert (s.mem_limit, s.cpus) == (50 * MiB, 0.5)


@pytest.mark.parametrize("top,words", [
    ("include: [other.yml]\n", "unknown key 'include' (known: version, name, services, volumes, networks,"),
    ("service: {}\n", "unknown key 'service'"),
])
def test_unknown_top_level_keys_are_refused(tmp_path, top, words):
    p = write(tmp_path, "services:\n  app: {image: x}\n" + top)
    with pytest.raises(ComposeError) as ei:
        load_compose(p, env={})
    assert words in str(ei.value) and "\n" not in str(ei.value) and str(p) in str(ei.value)
    assert list(load_compose(write(tmp_path, "services:\n  app: {image: x}\nx-common: {a: 1}\n"),
                             env={}).services) == ["app"]


DOCKER_COMPOSE = "/usr/bin/docker-compose"


def _limits_and_ports(compose) -> dict:
    return {n: ((s.mem_limit, s.memswap_limit, s.cpus),
                sorted((p.host_ip, p.host_port, p.container_port, p.protocol) for p in s.ports))
            for n, s in compose.all_services.items()}


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(DOCKER_COMPOSE), reason="docker-compose is not installed")
def test_reader_agrees_with_docker_compose_config(repo_root, tmp_path):
    """docker-compose's own `config` (interpolation, normalised ports; every service, whatever
    its profile) is the reference: its output, read back, gives the limits and ports our
    reader gives the file."""
    argv = [DOCKER_COMPOSE, "-f", str(repo_root / "docker-compose.yml"), "config"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert out.returncode == 0, out.stderr
    reference = yaml.safe_load(out.stdout)
    assert reference["services"]["sensor-service"]["mem_limit"] == "50m"   # as written, not resolved
    ours = load_compose(repo_root / "docker-compose.yml", env={})
    theirs = load_compose(write(tmp_path, out.stdout, "resolved.yml"), env={})
    assert set(reference["services"]) == set(ours.all_services) == set(theirs.all_services)
    assert _limits_and_ports(ours) == _limits_and_ports(theirs)
    for name, svc in reference["services"].items():
        mine = ours.all_services[name]
        assert (parse_bytes(svc["mem_limit"]), parse_bytes(svc["memswap_limit"]), float(svc["cpus"])) == \
            (mine.mem_limit, mine.memswap_limit, mine.cpus)
        assert [f"{p.host_ip}:{p.host_port}:{p.container_port}/{p.protocol}" for p in mine.ports] == svc["ports"]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(DOCKER_COMPOSE), reason="docker-compose is not installed")
def test_reader_agrees_with_docker_compose_on_the_deploy_spelling_and_interpolation(tmp_path):
    """The other spelling of the limits, interpolated, and ports docker-compose rewrites into
    the long syntax: read back, its output gives what our reader gives the file."""
    p = write(tmp_path, """\
        services:
          app:
            image: x
            memswap_limit: 128m
            deploy:
              resources:
                limits: {memory: "${MEM:-64M}", cpus: "0.25"}
            ports: ["${PORT:-9000}:80", "127.0.0.1::81/udp"]
        """)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MEM": "96M"}
    out = subprocess.run([DOCKER_COMPOSE, "-f", str(p), "config"], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stderr
    limits = yaml.safe_load(out.stdout)["services"]["app"]["deploy"]["resources"]["limits"]
    ours = load_compose(p, env=env)
    theirs = load_compose(write(tmp_path, out.stdout, "resolved.yml"), env={})
    assert _limits_and_ports(ours) == _limits_and_ports(theirs) == {
        "app": ((96 * MiB, 128 * MiB, 0.25), [("", 9000, 80, "tcp"), ("127.0.0.1", None, 81, "udp")])}
    assert (parse_bytes(limits["memory"]), float(limits["cpus"])) == (96 * MiB, 0.25)


def test_docker_build_can_be_turned_off_for_loaded_images():
    """EDGEBENCH_DOCKER_BUILD=0: up uses the images the engine has (a machine that cannot build)."""
    assert docker_engine.builds_images({}) is True
    assert docker_engine.builds_images({"EDGEBENCH_DOCKER_BUILD": "1"}) is True
    assert docker_engine.builds_images({"EDGEBENCH_DOCKER_BUILD": "0"}) is False
    with pytest.raises(StackError, match=r"^EDGEBENCH_DOCKER_BUILD='no': write 1 \(build the images"):
        docker_engine.builds_images({"EDGEBENCH_DOCKER_BUILD": "no"})
