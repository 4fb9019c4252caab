"""The native engine on this host's cgroup v1: the {native} x {cgroup v1} cell of the platform
matrix (docs/stack.md#platforms), the same checks as the cgroup v2 lane
(tests/test_platform_cgroup2.py) against the v1 files: `edgebench up` enforces the compose
limits and each service reads them as its own; a real OOM kill is counted and a restart
follows; a throttled baseline shows in `cpu.stat`; the kernel's peak is read and reset; a
short bench writes a complete report."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plumbing.cgroup_counters import PEAK_SINCE_RESET, PeakMark, detect_version, read_cgroups
from stack.api import start_stack
from stack.compose import load_compose
from stack.state import read_state
from tests.conftest import restarted_and_healthy
from tests.platforms.cgroup2_checks import LEAK_COMPOSE, _hammer, cli, get

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.platform, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="native x cgroup v1: needs root to create cgroups; "
                                 "fix: run make test-platforms as root"),
              pytest.mark.skipif(detect_version() != 1, reason="native x cgroup v1: this host does not mount "
                                 "cgroup v1 (the v2 cell covers it); nothing to install")]


def v1_file(cgroups: dict, controller: str, name: str) -> str:
    return Path(cgroups[controller], name).read_text().strip()


def inside(pid: int, path: str) -> str:
    """A file as the service itself reads it: its own mount namespace's /sys/fs/cgroup."""
    return Path(f"/proc/{pid}/root{path}").read_text().strip()


def test_make_up_enforces_the_compose_limits_and_each_service_reads_its_own(tmp_path):
    state_dir = tmp_path / "up"
    up = cli("up", "--engine", "native", "--state-dir", state_dir)
    try:
        assert up["rc"] == 0, up["stderr"]
        st = read_state(state_dir)
        assert st.engine == "native" and st.limits_enforced is True and st.cgroup_view == "own"
        compose = load_compose(REPO / "docker-compose.yml")
        for name, s in st.services.items():
            svc, cg = compose.services[name], s.cgroups
            assert int(v1_file(cg, "memory", "memory.limit_in_bytes")) == svc.mem_limit
            assert int(v1_file(cg, "cpu", "cpu.cfs_quota_us")) == int(svc.cpus * 100000)
            assert int(v1_file(cg, "cpu", "cpu.cfs_period_us")) == 100000
            assert str(s.pid) in v1_file(cg, "memory", "cgroup.procs").split()
            assert int(inside(s.pid, "/sys/fs/cgroup/memory/memory.limit_in_bytes")) == svc.mem_limit
            assert int(inside(s.pid, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")) == int(svc.cpus * 100000)
        status = cli("status", "--state-dir", state_dir)
        assert status["rc"] == 0 and "limits_enforced=True" in status["stdout"]
    finally:
        down = cli("down", "--state-dir", state_dir)
    assert down["rc"] == 0, down["stderr"]
    left = [p for c in ("memory", "cpu", "cpuacct")
            for p in Path(f"/sys/fs/cgroup/{c}").glob(f"edgebench-{st.stack_id}-*")]
    assert left == []


def test_a_real_oom_kill_is_counted_and_a_restart_follows(tmp_path, free_ports):
    (port,) = free_ports(1)
    compose = tmp_path / "oom-compose.yml"
    compose.write_text(textwrap.dedent(LEAK_COMPOSE.format(repo=REPO)))
    with start_stack(compose, tmp_path / "oom", ports={"sensor-service": port}, engine="native", timeout=60) as h:
        s0 = h.service("sensor-service")
        for _ in range(60):  # bounded: each scrape retains 4 MB until the kernel steps in
            try:
                get(f"http://127.0.0.1:{port}/metrics", timeout=20)
            except OSError:
                break
        s = restarted_and_healthy(h, "sensor-service", 60, "a restart after the OOM kill")
        oom_control = v1_file(s.cgroups, "memory", "memory.oom_control")
        assert s.oom_kills >= 1 and s.cgroups == s0.cgroups and s.pid != s0.pid
        assert int(dict(line.split() for line in oom_control.splitlines())["oom_kill"]) >= 1
        assert read_cgroups(s.cgroups).oom_kills >= 1
        events = [json.loads(x) for x in (tmp_path / "oom" / "events.jsonl").read_text().splitlines()]
        assert any(e["event"] == "oom_kill" for e in events) and any(e["event"] == "restart" for e in events)


def test_a_throttled_baseline_shows_in_cpu_stat_and_the_peak_is_read_and_reset(tmp_path, free_ports):
    (port,) = free_ports(1)
    with start_stack(REPO / "docker-compose.yml", tmp_path / "thr", services=["sensor-service"],
                     env={"sensor-service": {"SENSOR_VARIANT": "baseline"}}, ports={"sensor-service": port},
                     engine="native", timeout=60) as h:
        cg = h.service("sensor-service").cgroups
        c0 = read_cgroups(cg)
        mark = PeakMark(cg)
        assert mark.reset() is not None and mark.not_reset_because is None
        assert mark.scope() == PEAK_SINCE_RESET
        _hammer(f"http://127.0.0.1:{port}/metrics", 6)
        c1 = read_cgroups(cg)
        peak = mark.read()
        mark.close()
    periods, throttled = c1.nr_periods - c0.nr_periods, c1.throttled_periods - c0.throttled_periods
    assert periods > 0 and throttled / periods > 0.5   # the baseline's 2,000,000-iteration loop per scrape
    assert 5 * 2**20 < peak <= 50 * 2**20             # since the reset, under the limit


def test_a_short_bench_writes_a_complete_report(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edgebench", "bench", "--engine", "native", "--duration", "8",
                          "--warmup", "2", "--scenarios", "optimized-vm", "--results", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    run = next(p for p in tmp_path.iterdir() if p.name.endswith("-bench"))
    summary = json.loads((run / "summary.json").read_text())
    s = summary["scenarios"]["optimized-vm"]
    assert s["engine"] == "native" and s["cgroup_version"] == 1 and s["cgroup_view"] == "own"
    assert s["cpu_ms_per_request"] > 0 and s["service_mem_peak_mb"] > 5 and s["requests"] > 0
    report = run / "report"
    assert (report / "OPTIMIZATION_SUMMARY.md").read_text().startswith("# Optimization summary")
    assert (report / "report.html").stat().st_size > 10_000
    assert len(list(report.glob("*.png"))) >= 6
