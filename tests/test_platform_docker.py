"""The Docker lane: edgebench's Docker engine end to end on a private Docker daemon.

One daemon (tests/platforms/docker_daemon.py) and one set of images (stack/images_offline.py where
no registry answers) per session; every test runs real containers under the compose
file's limits and checks what the kernel, Docker and edgebench each say.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from plumbing.cgroup_counters import read_cgroups
from plumbing.wait import wait_until
from stack.api import StackError, start_stack
from stack.state import read_state

pytestmark = [pytest.mark.platform, pytest.mark.slow]

MiB = 1 << 20
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, timeout=5):
    with _opener.open(url, timeout=timeout) as r:
        return r.read()


def answers(url) -> bool:
    try:
        return bool(get(url))
    except OSError:  # refused or reset while the container restarts
        return False


def docker(*args, timeout=60):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def project_containers(project):
    r = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
    return r.stdout.split()


@pytest.fixture(scope="session")
def docker_lane(tmp_path_factory):
    """A private dockerd with the stack's images; skipped with one line if impossible."""
    from stack import docker_engine, images_offline
    from tests.platforms import docker_daemon

    why = docker_daemon.missing_requirement()
    if why:
        pytest.skip(why)
    try:
        docker_engine.compose_base()
    except StackError as e:
        pytest.skip(str(e))
    mp = pytest.MonkeyPatch()
    if not os.environ.get("EDGEBENCH_RUNTIME_DIR"):
        mp.setenv("EDGEBENCH_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
    d = docker_daemon.DockerDaemon()
    try:
        d.start()
    except StackError as e:
        pytest.skip(f"cannot start a private dockerd: {e}")
    mp.setenv("DOCKER_HOST", d.host)
    try:
        t0 = time.monotonic()
        try:
            images_offline.build_all(images_offline.REPO_ROOT / "docker-compose.yml", log=lambda *_: None)
        except StackError as e:
            pytest.skip(f"image build impossible: {e}")
        yield {"daemon": d, "images_s": time.monotonic() - t0}
    finally:
        d.stop()
        mp.undo()
    # after containers ran: nothing of the daemon is left mounted or on disk
    assert not d.dir.exists() and str(d.dir) not in open("/proc/self/mountinfo").read()


def compose_with(tmp_path, repo_root, env=None, mem="40m", cpus=1, healthcheck=None):
    """A one-service compose file for the real sensor service."""
    svc = {"build": {"context": str(repo_root)}, "image": "edgebench/sensor-service:local",
           "command": ["python", "-m", "service"],
           "environment": {"SENSOR_HOST": "0.0.0.0", "SENSOR_PORT": "8000", **(env or {})},
           "ports": ["127.0.0.1:8000:8000"], "restart": "always", "mem_limit": mem, "memswap_limit": mem,
           "cpus": cpus}
    if healthcheck:
        svc["healthcheck"] = {"test": healthcheck, "interval": "10s"}
    p = tmp_path / "docker-compose.yml"
    p.write_text(yaml.safe_dump({"services": {"sensor-service": svc}}, sort_keys=False))
    return p


def stack_cli(*args, timeout=600):
    """The front door, bin/edgebench (as `make up|status|down` call it)."""
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_up_limits_health_status_down(docker_lane, repo_root, tmp_path, free_ports):
    """`edgebench up --engine docker` (as `make up ENGINE=docker`): the container reads 50 MB /
    0.5 CPU from its own cgroup, edgebench finds the same cgroup from the host, Docker's
    healthcheck passes with the compose file's own test command, status shows live
    figures, down leaves no container, volume, watcher or registry entry."""
    sport, vport = free_ports(2)
    state_dir = tmp_path / "state"
    out = stack_cli("up", "--engine", "docker", "--state-dir", state_dir, "--port", f"sensor-service={sport}",
                    "--port", f"victoriametrics={vport}")
    assert out.returncode == 0, out.stderr
    st = read_state(state_dir)
    try:
        assert st.engine == "docker" and st.counters_source == "cgroup"
        svc, vm = st.services["sensor-service"], st.services["victoriametrics"]
        cid = svc.container_id
        # inside: the container's own view of its cgroup
        inside = docker("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout.split() == [str(50 * MiB), "50000", "100000"]
        # outside: the cgroup edgebench located from the container's pid
        c = read_cgroups(svc.cgroups)
        assert (c.mem_limit_bytes, c.cpus) == (50 * MiB, 0.5)
        assert svc.pid in c.pids and cid in svc.cgroups["memory"]
        cv = read_cgroups(vm.cgroups)
        assert (cv.mem_limit_bytes, cv.cpus) == (150 * MiB, 0.5) and vm.pid in cv.pids
        assert get(f"http://127.0.0.1:{sport}/healthz") and get(f"http://127.0.0.1:{vport}/health")
        # the fallback where no container cgroup is readable: docker stats, same limit
        from stack.docker_engine import docker_stats_reader
        unreadable = svc.model_copy(update={"cgroups": {}})
        ds = docker_stats_reader("sensor-service", unreadable, st)
        assert ds.source == "docker-stats" and ds.mem_limit_bytes == 50 * MiB and 0 < ds.mem_bytes < 50 * MiB
        # Docker's own healthcheck (first run one interval after start) passes with the same test
        wait_until(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip() == "healthy",
                   40, "docker health healthy")
        assert svc.health == "healthy"
        # the watcher is alive and follows the stack
        assert st.supervisor_pid and os.path.exists(f"/proc/{st.supervisor_pid}")
        status = stack_cli("status", "--state-dir", state_dir)
        assert status.returncode == 0, status.stderr
        line = next(x for x in status.stdout.splitlines() if x.startswith("sensor-service"))
        assert "running" in line and "healthy" in line and "50.0M" in line and str(svc.pid) in line
        assert "M " in line.split("http://")[1]  # a live memory figure, not "-"
        allst = stack_cli("status")
        assert st.stack_id in allst.stdout
    finally:
        out = stack_cli("down", "--state-dir", state_dir)
    assert out.returncode == 0, out.stderr
    assert project_containers(st.project) == []
    assert docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={st.project}").stdout == ""
    wait_until(lambda: not os.path.exists(f"/proc/{st.supervisor_pid}"), 10, "watcher gone")
    assert read_state(state_dir).status == "stopped"
    assert st.stack_id not in stack_cli("status").stdout


def test_oom_kill_counted_and_restarted(docker_lane, repo_root, tmp_path, free_ports):
    """The real service leaking 4 MB per scrape under 40 MB: the kernel OOM-kills it in its
    container, Docker restarts it, and edgebench counts both (docker events + inspect)."""
    compose = compose_with(tmp_path, repo_root, {"SENSOR_LEAK_BYTES_PER_SCRAPE": "4000000"})
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    with start_stack(compose, state_dir, ports={"sensor-service": port}, engine="docker", timeout=60) as h:
        s0 = h.service("sensor-service")
        assert read_cgroups(s0.cgroups).mem_limit_bytes == 40 * MiB
        for _ in range(60):  # bounded: each scrape retains 4 MB until the kernel steps in
            try:
                get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                break
        s = wait_until(lambda: (lambda x: x if x.restarts >= 1 and x.oom_kills >= 1
                                and x.status == "running" else None)(h.service("sensor-service")),
                       60, "OOM kill and restart recorded")
        assert s.pid != s0.pid and os.path.exists(f"/proc/{s.pid}")
        info = json.loads(docker("inspect", s.container_id).stdout)[0]
        assert info["RestartCount"] >= 1
        def kinds():
            return [json.loads(x)["event"] for x in (state_dir / "events.jsonl").read_text().splitlines()]
        wait_until(lambda: "oom" in kinds() and "die" in kinds() and kinds().count("start") >= 2, 30,
                   "the oom, die and second start events in events.jsonl")
        # the restarted process is back in a cgroup with the same limit, and serves
        assert s.pid in read_cgroups(s.cgroups).pids
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30, "healthz after restart")
        project = h.state().project
    assert project_containers(project) == []


def test_cpu_quota_throttles(docker_lane, repo_root, tmp_path, free_ports):
    """A busy loop in the 0.5-CPU container: cpu.stat's nr_throttled grows and the group
    gets at most about half a CPU, read from the cgroup edgebench located. Four loops of
    0.5 s CPU time each (not wall time: a busy shared machine only makes them longer)
    want far more than the quota."""
    compose = compose_with(tmp_path, repo_root, mem="50m", cpus=0.5)
    (port,) = free_ports(1)
    with start_stack(compose, tmp_path / "state", ports={"sensor-service": port}, engine="docker") as h:
        s = h.service("sensor-service")
        before = read_cgroups(s.cgroups)
        t0 = time.monotonic()
        loop = "python -c 'import time\nwhile time.process_time() < 0.5: pass'"
        r = docker("exec", s.container_id, "sh", "-c", f"{loop} & {loop} & {loop} & {loop}; wait", timeout=120)
        wall = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        after = read_cgroups(s.cgroups)
        assert after.throttled_periods - before.throttled_periods >= 3
        assert after.nr_periods > before.nr_periods
        used = after.cpu_seconds - before.cpu_seconds
        assert used >= 2.0 and used <= 0.5 * wall + 0.3, (used, wall)


def test_healthcheck_command_missing_from_image(docker_lane, repo_root, tmp_path, free_ports):
    """A healthcheck test the image lacks is one line at start, and nothing is left."""
    compose = compose_with(tmp_path, repo_root, healthcheck=["CMD", "curl-not-here", "-f", "http://127.0.0.1:8000/"])
    (port,) = free_ports(1)
    before = docker("ps", "-aq").stdout.split()
    with pytest.raises(StackError) as ei:
        start_stack(compose, tmp_path / "state", ports={"sensor-service": port}, engine="docker")
    msg = str(ei.value)
    assert "\n" not in msg and "healthcheck.test: curl-not-here is not in the image" in msg and "fix:" in msg
    assert docker("ps", "-aq").stdout.split() == before  # the failed start was taken down


def test_missing_image_named_with_the_offline_command(docker_lane, tmp_path):
    """An image the engine lacks and cannot pull: `up` fails in one line naming
    `make images-offline` and the image, found from compose's own failure (no image
    check on the way up), and nothing is left."""
    p = tmp_path / "docker-compose.yml"
    p.write_text("services:\n  victoriametrics:\n    image: victoriametrics/victoria-metrics:v0.0.1-absent\n"
                 "    ports: ['127.0.0.1:8428:8428']\n    mem_limit: 150m\n    cpus: 0.5\n")
    before = docker("ps", "-aq").stdout.split()
    out = stack_cli("up", "--engine", "docker", "-f", p, "--state-dir", tmp_path / "state",
                    "--port", "victoriametrics=1", timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "victoriametrics/victoria-metrics:v0.0.1-absent" in line, line
    assert "fix: run `make images-offline`" in line, line
    assert docker("ps", "-aq").stdout.split() == before


def test_owner_gone_tears_the_stack_down(docker_lane, repo_root, tmp_path, free_ports):
    """A stack whose owner is SIGKILLed is taken down by its watcher, as native's supervisor does."""
    compose = compose_with(tmp_path, repo_root, mem="50m", cpus=0.5)
    (port,) = free_ports(1)
    state_dir = tmp_path / "state"
    code = (f"import sys, time; sys.path.insert(0, {str(repo_root)!r})\n"
            f"from stack.api import start_stack\n"
            f"start_stack({str(compose)!r}, {str(state_dir)!r}, ports={{'sensor-service': {port}}}, engine='docker')\n"
            f"print('up', flush=True)\ntime.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "up"
        st = read_state(state_dir)
        assert project_containers(st.project)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    wait_until(lambda: read_state(state_dir).status == "stopped", 60, "watcher takes the stack down")
    assert "owner process" in read_state(state_dir).stop_reason
    assert project_containers(st.project) == []


def _edgebench(cmd, results, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgebench", cmd, "--engine", "docker", "--duration", "8",
                           "--warmup", "4", "--scenarios", "optimized-vm", "--results", str(results)],
                          capture_output=True, text=True, timeout=timeout)


def test_short_bench_complete_report(docker_lane, tmp_path):
    """`make bench ENGINE=docker`: a complete scenario with the same figures a native run has."""
    out = _edgebench("bench", tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (run,) = [d for d in tmp_path.iterdir() if d.is_dir() and not d.is_symlink()]
    sc = json.loads((run / "optimized-vm" / "scenario.json").read_text())
    assert sc["status"] == "complete" and sc["engine"] == "docker" and sc["counters_source"] == "cgroup"
    assert sc["limits"]["sensor-service"] == {"mem_limit_bytes": 50 * MiB, "cpus": 0.5}
    s = json.loads((run / "summary.json").read_text())["scenarios"]["optimized-vm"]
    for key in ("cpu_ms_per_scrape", "service_mem_peak_mb", "service_mem_steady_mb", "collector_mem_peak_mb",
                "throttled_ratio", "collector_up_ratio", "throughput_rps"):
        assert s[key] is not None, key
    assert s["collector_up_ratio"] > 0.5 and s["oom_kills_total"] == 0
    assert all("tracemalloc" in m or "profile" in m for m in s["missing"]), s["missing"]
    assert (run / "report" / "report.html").stat().st_size > 0


def test_short_profile(docker_lane, tmp_path):
    """`make profile ENGINE=docker`: py-spy attached to the container's host pid,
    memory-profiler and a tracemalloc capture taken inside the container."""
    out = _edgebench("profile", tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (run,) = [d for d in tmp_path.iterdir() if d.is_dir() and not d.is_symlink()]
    prof = run / "optimized-vm" / "profile"
    meta = json.loads((prof / "profile_meta.json").read_text())
    assert meta["errors"] == []
    assert meta["pids"][0]["formats"]["raw"]["samples"] > 100
    for f in ("flamegraph.svg", "top_functions.csv", "memory.dat", "allocation_peak.csv"):
        assert (prof / f).stat().st_size > 0, f
    assert "service/" in (prof / "top_functions.csv").read_text()


def test_private_daemon_is_stopped_and_removed(tmp_path):
    """The daemon module itself: started, answering, then gone with its containerd."""
    from tests.platforms.docker_daemon import DockerDaemon, missing_requirement
    if missing_requirement():
        pytest.skip(missing_requirement())
    d = DockerDaemon(timeout=60).start()
    pid = d.proc.pid
    kids = [p for p in os.listdir("/proc") if p.isdigit()
            and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(pid)]
    assert d.answers() and kids  # dockerd and its containerd
    d.stop()
    assert not os.path.exists(f"/proc/{pid}") and not any(os.path.exists(f"/proc/{k}") for k in kids)
    assert not d.dir.exists() and shutil.which("dockerd")
