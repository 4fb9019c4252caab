"""The native stack for real: real processes, real cgroup limits, real VictoriaMetrics.

Needs root and a cgroup file system (v1 or v2); skipped otherwise.
"""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request

import pytest

from plumbing.wait import wait_until
from stack import cgroup_limits
from stack.api import StackError, start_stack, stop_stack
from stack.compose import load_compose
from stack.native import pid_alive
from stack.state import read_state
from tests.conftest import restarted_and_healthy
from tests.platforms.cgroup2_checks import LEAK_COMPOSE

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0 or cgroup_limits.detect_version() is None,
                                reason="needs root and a cgroup file system")]

CG_ROOT = "/sys/fs/cgroup"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, timeout=3):
    with _opener.open(url, timeout=timeout) as r:
        return r.read()


def cgroup_dirs(stack_id):
    return glob.glob(f"{CG_ROOT}/*/edgebench-{stack_id}*") + glob.glob(f"{CG_ROOT}/edgebench-{stack_id}*")


def events(state_dir):
    p = state_dir / "events.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def assert_clean(state_dir, stack_id, pids):
    """No process and no cgroup of the stack remain."""
    wait_until(lambda: not any(pid_alive(p) for p in pids), 10, f"pids {pids} to be gone")
    assert cgroup_dirs(stack_id) == []
    st = read_state(state_dir)
    assert st.status == "stopped" and st.supervisor_pid is None
    assert all(s.pid is None for s in st.services.values())


def stack_pids(st):
    return [st.supervisor_pid] + [s.pid for s in st.services.values()]


def cli(*args, timeout=60, **kw):
    """The front door, bin/edgebench (as `make up|status|down` call it)."""
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def read_cg(path, name):
    return open(os.path.join(path, name)).read().strip()


def assert_limits(svc_state, svc):
    """The cgroup files hold exactly what the compose service declares (docker's settings)."""
    cg = svc_state.cgroups
    pid = str(svc_state.pid)
    if "unified" in cg:
        assert read_cg(cg["unified"], "memory.max") == str(svc.mem_limit)
        swap = svc.memswap_limit - svc.mem_limit if svc.memswap_limit is not None else svc.mem_limit
        if os.path.exists(os.path.join(cg["unified"], "memory.swap.max")):
            assert read_cg(cg["unified"], "memory.swap.max") == str(swap)
        assert read_cg(cg["unified"], "cpu.max") == f"{int(svc.cpus * 100000)} 100000"
        assert pid in read_cg(cg["unified"], "cgroup.procs").split()
        return
    assert set(cg) == {"memory", "cpu", "cpuacct"}
    assert read_cg(cg["memory"], "memory.limit_in_bytes") == str(svc.mem_limit)
    if os.path.exists(os.path.join(cg["memory"], "memory.memsw.limit_in_bytes")):
        assert read_cg(cg["memory"], "memory.memsw.limit_in_bytes") == str(svc.memswap_limit)
    assert read_cg(cg["cpu"], "cpu.cfs_period_us") == "100000"
    assert read_cg(cg["cpu"], "cpu.cfs_quota_us") == str(int(svc.cpus * 100000))
    for c in ("memory", "cpu", "cpuacct"):
        assert pid in read_cg(cg[c], "cgroup.procs").split(), c


def query_up(base_url, job="sensor"):
    """``up`` for a job via the collector's HTTP API. nocache=1: VictoriaMetrics then does not
    shift the query time back by -search.latencyOffset (30 s), so a fresh sample shows."""
    q = urllib.parse.urlencode({"query": f'up{{job="{job}"}}', "nocache": "1"})
    try:
        data = json.loads(get(f"{base_url}/api/v1/query?{q}"))
    except OSError:
        return None
    res = data.get("data", {}).get("result", [])
    return res[0]["value"][1] if res else None


# ------------------------------------------------------------------ tests

def test_native_stack_from_compose_limits_and_scrape(repo_root, tmp_path, free_ports):
    compose = load_compose(repo_root / "docker-compose.yml", profiles=["prometheus"])
    p_svc, p_vm, p_prom = free_ports(3)
    state_dir = tmp_path / "state"
    t0 = time.monotonic()
    with start_stack(repo_root / "docker-compose.yml", state_dir, profiles=["prometheus"],
                     ports={"sensor-service": p_svc, "victoriametrics": p_vm, "prometheus": p_prom},
                     engine="native", timeout=30) as h:
        up_s = time.monotonic() - t0
        st = h.state()
        assert st.engine == "native" and st.status == "running" and st.limits_enforced is True
        assert list(st.services) == ["sensor-service", "victoriametrics", "prometheus"]
        assert up_s < 20
        for name, s in st.services.items():
            assert s.health == "healthy"
            assert_limits(s, compose.services[name])
            assert all(f"edgebench-{st.stack_id}-{name}" == os.path.basename(p) for p in s.cgroups.values())
        assert st.services["sensor-service"].url == f"http://127.0.0.1:{p_svc}"
        assert b"# TYPE sensor_scrape_duration_seconds histogram" in get(f"http://127.0.0.1:{p_svc}/metrics")
        # the mounted scrape config points at the service's loopback port
        assert st.services["victoriametrics"].volumes["/storage"] == str(state_dir / "volumes" / "vmdata")
        wait_until(lambda: query_up(f"http://127.0.0.1:{p_vm}") == "1", 30, "VictoriaMetrics up{job=sensor} == 1")
        wait_until(lambda: query_up(f"http://127.0.0.1:{p_prom}") == "1", 30, "Prometheus up{job=sensor} == 1")
        out = cli("status", "--state-dir", state_dir)
        assert out.returncode == 0, out.stderr
        assert "victoriametrics" in out.stdout and "150.0M" in out.stdout
        pids = stack_pids(st)
    assert_clean(state_dir, st.stack_id, pids)


def test_oom_kill_is_counted_and_restarted(repo_root, tmp_path, free_ports):
    """The real sensor service leaking per scrape, under a 40 MB limit: the kernel OOM-kills
    it, the supervisor counts it and restarts it in the same cgroup."""
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(LEAK_COMPOSE.format(repo=repo_root))
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    with start_stack(compose_file, state_dir, ports={"sensor-service": port}, engine="native", timeout=20) as h:
        st = h.state()
        s0 = st.services["sensor-service"]
        assert_limits(s0, load_compose(compose_file).services["sensor-service"])
        for _ in range(60):  # bounded: each scrape retains 4 MB until the kernel steps in
            try:
                get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except OSError:
                break
        s = restarted_and_healthy(h, "sensor-service", 20, "restart after the OOM kill")
        assert s.oom_kills >= 1
        assert s.pid != s0.pid and pid_alive(s.pid)
        assert s.cgroups == s0.cgroups  # same cgroup across restarts
        oom_control = open(os.path.join(s.cgroups.get("memory") or s.cgroups["unified"],
                                        "memory.oom_control" if "memory" in s.cgroups else "memory.events")).read()
        assert int(oom_control.split("oom_kill ")[1].split()[0]) >= 1  # the kernel's own count
        kinds = [e["event"] for e in events(state_dir)]
        assert "oom_kill" in kinds and "restart" in kinds
        ev = next(e for e in events(state_dir) if e["event"] == "exit")
        assert ev["pid"] == s0.pid and ev["detail"] == {"signal": "SIGKILL"}
        get(f"http://127.0.0.1:{port}/healthz")
        pids = stack_pids(h.state())
    assert_clean(state_dir, st.stack_id, pids)


def test_cli_up_kill_child_restart_then_down(repo_root, tmp_path, free_ports):
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    out = cli("up", "--state-dir", state_dir, "--compose", repo_root / "docker-compose.yml",
              "--services", "sensor-service", "--port", f"sensor-service={port}",
              "--env", "sensor-service:SENSOR_VARIANT=baseline", "--engine", "native")
    assert out.returncode == 0, out.stderr
    st = read_state(state_dir)
    assert list(st.services) == ["sensor-service"]
    first = st.services["sensor-service"].pid
    assert open(f"/proc/{first}/environ").read().split("\0").count("SENSOR_VARIANT=baseline") == 1
    # a second `up` on the same state dir is refused
    again = cli("up", "--state-dir", state_dir, "--services", "sensor-service", "--port", f"sensor-service={port}")
    assert again.returncode == 1 and "already running" in again.stderr
    assert f"fix: bin/edgebench down --state-dir {state_dir}" in again.stderr
    os.kill(first, signal.SIGKILL)  # a child dies: restart: always brings it back
    s = wait_until(lambda: (lambda x: x if x.restarts == 1 and x.health == "healthy" else None)(
        read_state(state_dir).services["sensor-service"]), 15, "restart after SIGKILL")
    assert s.pid != first and s.oom_kills == 0
    kinds = [e["event"] for e in events(state_dir)]
    assert kinds[:2] == ["start", "healthy"] and "exit" in kinds and "restart" in kinds
    st = read_state(state_dir)
    out = cli("down", "--state-dir", state_dir)
    assert out.returncode == 0, out.stderr
    assert_clean(state_dir, st.stack_id, stack_pids(st) + [first])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_supervisor_cleans_up(repo_root, tmp_path, free_ports, sig):
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    h = start_stack(repo_root / "docker-compose.yml", state_dir, services=["sensor-service"],
                    ports={"sensor-service": port}, engine="native", timeout=20)
    try:
        st = h.state()
        assert cgroup_dirs(st.stack_id)
        os.kill(st.supervisor_pid, sig)
        wait_until(lambda: read_state(state_dir).status == "stopped", 15, "supervisor to stop")
        assert_clean(state_dir, st.stack_id, stack_pids(st))
    finally:
        h.stop()  # idempotent
    assert_clean(state_dir, st.stack_id, stack_pids(st))


def test_down_after_supervisor_sigkill(repo_root, tmp_path, free_ports):
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    h = start_stack(repo_root / "docker-compose.yml", state_dir, services=["sensor-service"],
                    ports={"sensor-service": port}, engine="native", timeout=20)
    st = h.state()
    os.kill(st.supervisor_pid, signal.SIGKILL)
    h.stop()  # the supervisor cannot clean up: stop_stack does it from the state file
    assert_clean(state_dir, st.stack_id, stack_pids(st))


def test_busy_port_is_refused_before_anything_starts(repo_root, tmp_path, free_ports):
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(StackError) as ei:
            start_stack(repo_root / "docker-compose.yml", state_dir, services=["sensor-service"],
                        ports={"sensor-service": port}, engine="native")
    msg = str(ei.value)
    assert f"port 127.0.0.1:{port}" in msg and "--port sensor-service=" in msg and "\n" not in msg
    assert not (state_dir / "plan.json").exists() and read_state(state_dir) is None


def _compose_with(tmp_path, command):
    p = tmp_path / "docker-compose.yml"
    p.write_text(textwrap.dedent(f"""\
        services:
          app:
            build: .
            command: {json.dumps(command)}
            ports: ["8000"]
            restart: always
            mem_limit: 30m
            cpus: 0.25
        """))
    return p


def test_health_timeout_is_a_clear_error_and_tears_down(tmp_path):
    compose_file = _compose_with(tmp_path, ["python", "-c", "import time; time.sleep(60)"])
    state_dir = tmp_path / "state"
    t0 = time.monotonic()
    with pytest.raises(StackError) as ei:
        start_stack(compose_file, state_dir, engine="native", timeout=1.5)
    assert time.monotonic() - t0 < 10
    assert "service 'app' not healthy at http://127.0.0.1:" in str(ei.value) and "after 1.5s" in str(ei.value)
    st = read_state(state_dir)
    assert st.status == "failed" and st.supervisor_pid is None
    pid = next(e["pid"] for e in events(state_dir) if e["event"] == "start")
    assert not pid_alive(pid) and cgroup_dirs(st.stack_id) == []


def test_service_exiting_at_start_is_a_clear_error(tmp_path):
    compose_file = _compose_with(tmp_path, ["python", "-c", "import sys; print('boom'); sys.exit(3)"])
    with pytest.raises(StackError, match=r"service 'app' exited \(exit_code 3\) before it became healthy.*boom"):
        start_stack(compose_file, tmp_path / "state", engine="native", timeout=10)
    assert cgroup_dirs(read_state(tmp_path / "state").stack_id) == []


def test_unconfined_without_cgroup_permission(repo_root, free_ports):
    """As an unprivileged user the supervisor cannot create cgroups: it warns, runs the
    service unconfined and says so in the state file."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv not installed")
    # the venv's interpreter may live under root's 0700 home: use a system python of the
    # same version with the venv's packages on PYTHONPATH
    probe = "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"
    py = next((p for p in (f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}", sys.executable)
               if os.path.exists(p) and subprocess.run(
                   ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", p, "-c", probe],
                   capture_output=True, cwd="/").returncode == 0), None)
    if py is None:
        pytest.skip("no Python interpreter that an unprivileged user may run")
    (port,) = free_ports(1)
    state_dir = tempfile.mkdtemp(prefix="edgebench-unconfined-")
    # the stack registry too: an inherited EDGEBENCH_RUNTIME_DIR is root's, which nobody cannot write
    runtime_dir = tempfile.mkdtemp(prefix="edgebench-unconfined-runtime-")
    for d in (state_dir, runtime_dir):
        os.chmod(d, 0o777)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", EDGEBENCH_RUNTIME_DIR=runtime_dir,
               PYTHONPATH=os.pathsep.join([str(repo_root)] + site))
    try:
        up = subprocess.run(nobody + [py, "-m", "edgebench", "up", "--state-dir", state_dir,
                                      "--services", "sensor-service", "--port", f"sensor-service={port}",
                                      "--engine", "native"], cwd=repo_root, env=env, capture_output=True,
                            text=True, timeout=60)
        assert up.returncode == 0, up.stderr
        assert "warning:" in up.stderr and "NOT enforced" in up.stderr
        st = read_state(state_dir)
        assert st.limits_enforced is False
        assert st.services["sensor-service"].cgroups == {}
        assert cgroup_dirs(st.stack_id) == []
        get(f"http://127.0.0.1:{port}/healthz")
        down = subprocess.run(nobody + [py, "-m", "edgebench", "down", "--state-dir", state_dir],
                              cwd=repo_root, env=env, capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert_clean(state_dir, st.stack_id, stack_pids(st))
    finally:
        stop_stack(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(runtime_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# healthcheck in the cgroup, owner death, the registry
# ---------------------------------------------------------------------------

def compose_copy(repo_root, tmp_path, healthcheck=None, **service_changes):
    """The repository's compose file, written beside the test with absolute paths, and the
    sensor service's healthcheck replaced."""
    import yaml
    doc = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    svc = doc["services"]["sensor-service"]
    svc["build"]["context"] = str(repo_root)
    if healthcheck is not None:
        svc["healthcheck"] = healthcheck
    svc.update(service_changes)
    for s in doc["services"].values():
        s["volumes"] = [v.replace("./", f"{repo_root}/", 1) if v.startswith("./") else v
                        for v in s.get("volumes", [])]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def private_registry(tmp_path, monkeypatch):
    """A registry of this test's own: `down` then sees only the stacks it started."""
    d = tmp_path / "runtime"
    monkeypatch.setenv("EDGEBENCH_RUNTIME_DIR", str(d))
    return d


def test_healthcheck_runs_inside_the_service_cgroup(repo_root, tmp_path, free_ports, private_registry):
    (port,) = free_ports(1)
    marker = tmp_path / "hc-cgroup.txt"
    cf = compose_copy(repo_root, tmp_path, healthcheck={
        "test": ["CMD-SHELL", f"{{ cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                              f"cat /sys/fs/cgroup/memory.max; cat /proc/self/cgroup; }} > {marker} && "
                              f"wget -q -O /dev/null http://127.0.0.1:8000/healthz"],
        "interval": "1s", "timeout": "3s", "retries": 2})
    with start_stack(cf, tmp_path / "state", services=["sensor-service"], ports={"sensor-service": port},
                     engine="native", timeout=20) as h:
        st = h.state()
        assert st.services["sensor-service"].health == "healthy"
        hc = wait_until(lambda: (lambda c: c if c.runs >= 3 else None)(
            read_state(h.state_dir).services["sensor-service"].healthcheck), 20, "three checks")
        assert hc.last.ok and hc.last.exit_code == 0 and hc.failures_in_a_row == 0
        assert hc.argv[-1].endswith(f"127.0.0.1:{port}/healthz")   # container port -> host port
        assert 0 < hc.cpu_ms_mean < 2000
        # as in a container: the check reads the service's own limit at /sys/fs/cgroup, and its
        # cgroup namespace is rooted at the service's cgroup ("/"), not at the host's root
        seen = marker.read_text().splitlines()
        assert int(seen[0]) == 50 * 2**20
        assert all(line.rsplit(":", 1)[1] == "/" for line in seen[1:] if line)
        cg = st.services["sensor-service"].cgroups
        assert all(os.path.basename(p) == f"edgebench-{st.stack_id}-sensor-service" for p in cg.values())
        assert (private_registry / "stacks" / f"{st.stack_id}.json").exists()
    assert not (private_registry / "stacks" / f"{st.stack_id}.json").exists()
    assert_clean(tmp_path / "state", st.stack_id, stack_pids(st))


def test_failing_healthcheck_holds_start_up_then_fails_in_one_line(repo_root, tmp_path, free_ports,
                                                                   private_registry):
    (port,) = free_ports(1)
    cf = compose_copy(repo_root, tmp_path, healthcheck={"test": ["CMD", "false"], "interval": "1s",
                                                        "retries": 1})
    with pytest.raises(StackError) as e:
        start_stack(cf, tmp_path / "state", services=["sensor-service"], ports={"sensor-service": port},
                    engine="native", timeout=4)
    assert "sensor-service" in str(e.value) and "\n" not in str(e.value)
    st = read_state(tmp_path / "state")
    assert st.services["sensor-service"].healthcheck.runs >= 2   # it kept trying
    assert st.status == "failed" and st.supervisor_pid is None
    assert cgroup_dirs(st.stack_id) == []


OWNER = textwrap.dedent("""
    import sys
    from stack.api import start_stack
    h = start_stack(sys.argv[1], sys.argv[2], services=["sensor-service"],
                    ports={"sensor-service": int(sys.argv[3])}, engine="native", timeout=20)
    print(h.state().stack_id, flush=True)
    sys.stdin.readline()
""")


def test_stack_dies_with_its_owner_however_it_died(repo_root, tmp_path, free_ports, private_registry):
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, repo_root / "docker-compose.yml", state_dir, str(port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=repo_root)
    try:
        stack_id = owner.stdout.readline().strip()
        st = read_state(state_dir)
        assert st.stack_id == stack_id and st.owner_pid == owner.pid
        assert cgroup_dirs(stack_id)
        owner.kill()  # SIGKILL: no handler, no finally
        owner.wait()
        wait_until(lambda: read_state(state_dir).status == "stopped", 15, "the supervisor to tear down")
        st2 = read_state(state_dir)
        assert "owner process" in st2.stop_reason
        assert_clean(state_dir, stack_id, stack_pids(st))
        assert not list((private_registry / "stacks").glob("*.json"))
    finally:
        if owner.poll() is None:
            owner.kill()
        stop_stack(state_dir)


def test_down_all_finds_every_stack_and_cleans_a_stale_one(repo_root, tmp_path, free_ports, private_registry):
    p1, p2 = free_ports(2)
    a = start_stack(repo_root / "docker-compose.yml", tmp_path / "a", services=["sensor-service"],
                    ports={"sensor-service": p1}, engine="native", timeout=20, detach=True)
    b = start_stack(repo_root / "docker-compose.yml", tmp_path / "b", services=["sensor-service"],
                    ports={"sensor-service": p2}, engine="native", timeout=20, detach=True)
    sa, sb = a.state(), b.state()
    try:
        out = cli("status")
        assert out.returncode == 0 and sa.stack_id in out.stdout and sb.stack_id in out.stdout
        os.kill(sb.supervisor_pid, signal.SIGKILL)   # b is now stale
        wait_until(lambda: not pid_alive(sb.supervisor_pid), 10, "supervisor b to die")
        out = cli("status")
        assert "STALE" in out.stdout and sb.stack_id in out.stdout
        out = cli("down")
        assert out.returncode == 0, out.stderr
        assert f"stopped stack {sa.stack_id}" in out.stdout
        assert f"stopped stack {sb.stack_id}" in out.stdout and "already gone" in out.stdout
        assert_clean(tmp_path / "a", sa.stack_id, stack_pids(sa))
        wait_until(lambda: not any(pid_alive(p) for p in stack_pids(sb)), 10, "b's processes")
        assert cgroup_dirs(sb.stack_id) == []
        again = cli("down").stdout   # other checkouts' stacks may run: they are left alone
        assert "stopped stack" not in again and sa.stack_id not in again
    finally:
        a.stop()
        b.stop()


def test_start_timeout_from_the_environment(monkeypatch):
    """A slower machine (the cgroup v2 guest) gives the services longer to be healthy."""
    from stack.api import START_TIMEOUT_ENV, START_TIMEOUT_S, start_timeout
    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    assert start_timeout() == START_TIMEOUT_S == 30
    monkeypatch.setenv(START_TIMEOUT_ENV, "600")
    assert start_timeout() == 600
    for bad in ("0", "-5", "inf", "soon"):
        monkeypatch.setenv(START_TIMEOUT_ENV, bad)
        with pytest.raises(StackError, match=rf"^EDGEBENCH_STACK_START_TIMEOUT_S='{bad}' (is not a (finite )?number|must be > 0 s)"):
            start_timeout()


def test_up_leaves_the_health_wait_to_the_environment():
    """`edgebench up` without --timeout passes None, so start_stack takes
    EDGEBENCH_STACK_START_TIMEOUT_S (the cgroup v2 guest needs minutes; a fixed default hid it)."""
    import argparse

    from edgebench.commands import up
    parser = argparse.ArgumentParser()
    up.add_arguments(parser)
    assert parser.parse_args([]).timeout is None
    assert parser.parse_args(["--timeout", "90"]).timeout == 90
