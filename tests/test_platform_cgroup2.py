"""The native engine on a real cgroup v2 kernel: the {native} x {cgroup v2} cell of the
platform matrix (docs/stack.md#cgroup-v2-lane).

The host keeps its cgroup v1 mounts; the lane boots a QEMU guest with ``cgroup_no_v1=all``
(tests/platforms/guest.py) twice: once running tests/platforms/cgroup2_checks.py, which records what
edgebench's own commands did into JSON that the tests below assert on, and once for a short
``edgebench bench`` whose report comes back on the host. Two more short boots check the
runner's own time limits. Functional only: the guest runs under software emulation, so
its timings say nothing about the host's.
"""
import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from plumbing.process import pid_alive
from stack.compose import load_compose
from tests.platforms import guest

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")
_PROBLEMS = guest.check()

pytestmark = [pytest.mark.platform, pytest.mark.slow,
              pytest.mark.skipif(bool(_PROBLEMS), reason="cgroup v2 guest: " + "; ".join(_PROBLEMS))]


def _run(argv, shares, timeout):
    """One guest run; its output is printed (pytest shows it on failure)."""
    res = guest.run(argv, shares=shares, timeout=timeout)
    print(res.output[-6000:])
    return res


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgroup2-checks")
    res = _run([PY, "-m", "tests.platforms.cgroup2_checks", str(out)], [out], timeout=1800)
    assert res.returncode == 0, res.output[-3000:]
    data = json.loads((out / "checks.json").read_text())
    return res, data


def ok(data, name):
    c = data[name]
    assert c["ok"], c.get("error")
    return c


def test_guest_runs_cgroup_v2_with_memory_cpu_io(checks):
    res, data = checks
    env = ok(data, "environment")
    assert env["detect_version"] == 2 and env["kernel"] == res.kernel_release
    assert {"memory", "cpu", "io"} <= set(res.controllers) and {"memory", "cpu", "io"} <= set(res.subtree_control)
    assert res.kernel_release != os.uname().release or not Path("/sys/fs/cgroup/memory").is_dir()


def test_make_up_enforces_the_compose_limits_in_v2_files(checks):
    up = ok(checks[1], "up")
    assert up["up"]["rc"] == 0, up["up"]["stderr"]
    assert up["state"]["engine"] == "native" and up["state"]["limits_enforced"] is True
    compose = load_compose(REPO / "docker-compose.yml")
    assert set(up["services"]) == {"sensor-service", "victoriametrics"}
    for name, s in up["services"].items():
        svc = compose.services[name]
        assert s["health"] == "healthy" and list(s["cgroups"]) == ["unified"]
        assert s["files"]["memory.max"] == str(svc.mem_limit)                        # 50 MB / 150 MB
        assert s["files"]["cpu.max"] == f"{int(svc.cpus * 100000)} 100000"            # 0.5 CPU
        assert s["files"]["memory.swap.max"] == str(svc.memswap_limit - svc.mem_limit)
        assert str(s["pid"]) in s["files"]["cgroup.procs"].split()
        assert s["counters"]["source"] == "cgroup-v2"
        assert s["counters"]["mem_limit_bytes"] == svc.mem_limit and s["counters"]["cpus"] == svc.cpus
        assert 0 < s["counters"]["mem_bytes"] < svc.mem_limit and s["counters"]["cpu_seconds"] > 0
    assert up["status"]["rc"] == 0 and "cgroup v2 limits_enforced=True" in up["status"]["stdout"]
    assert "50.0M" in up["status"]["stdout"] and "150.0M" in up["status"]["stdout"]
    assert up["down"]["rc"] == 0 and up["left_after_down"] == []


def test_oom_kill_is_counted_from_memory_events_and_restarted(checks):
    oom = ok(checks[1], "oom")
    assert "oom_kill 0" in oom["before"]["memory.events"].splitlines()
    kills = int(oom["after"]["memory.events"].split("oom_kill ")[1].split()[0])
    assert kills >= 1 and oom["after"]["counters_oom_kills"] == kills
    assert oom["after"]["oom_kills"] >= 1 and oom["after"]["restarts"] >= 1
    assert oom["after"]["pid"] != oom["before"]["pid"] and oom["after"]["cgroups_same"]
    kinds = [e["event"] for e in oom["events"]]
    assert "oom_kill" in kinds and "restart" in kinds
    ev = next(e for e in oom["events"] if e["event"] == "exit")
    assert ev["pid"] == oom["before"]["pid"] and ev["detail"] == {"signal": "SIGKILL"}
    assert oom["healthz_after_restart"] == "ok"


def test_throttled_baseline_shows_in_v2_cpu_stat(checks):
    thr = ok(checks[1], "throttle_and_peak")
    assert thr["cpu.max"] == "50000 100000"
    before, after = thr["counters"]["before"], thr["counters"]["after"]
    raw = dict(line.split() for line in thr["cpu.stat"].splitlines())
    # the parsed counters are the file's, read a moment apart (a period may end in between)
    assert 0 <= int(raw["nr_periods"]) - after["nr_periods"] <= 2
    assert 0 <= int(raw["nr_throttled"]) - after["throttled_periods"] <= 2
    assert int(raw["throttled_usec"]) / 1e6 == pytest.approx(after["throttled_seconds"], abs=0.2)
    d_periods = after["nr_periods"] - before["nr_periods"]
    d_thr = after["throttled_periods"] - before["throttled_periods"]
    assert d_periods > 0 and 0.1 < d_thr / d_periods <= 1.0, (d_thr, d_periods)
    assert after["cpu_seconds"] > before["cpu_seconds"]
    assert thr["sampler"]["rows"] > 0 and thr["sampler"]["errors"] == 0
    assert thr["sampler"]["csv_head"][0].endswith("nr_periods,mem_peak_bytes")


def _release_at_least(release: str, major: int, minor: int) -> bool:
    parts = release.split(".")
    return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)


def test_memory_peak_is_read_and_its_scope_said(checks):
    res, data = checks
    thr = ok(data, "throttle_and_peak")
    peak = int(thr["memory.peak"])
    assert peak >= thr["counters"]["after"]["usage_bytes"] > 0
    # read between two reads of the kernel's file (the service still runs: it can grow)
    assert int(thr["memory.peak.before"]) <= thr["counters"]["after"]["mem_peak_bytes"] <= peak
    mark = thr["peak_mark"]
    assert mark["read_after_load"] >= mark["read_before_load"] > 0
    if _release_at_least(res.kernel_release, 6, 12):
        assert mark["reset"] is not None and mark["scope"] == "since the reset at the steady start"
        assert thr["sampler"]["meta_peak_reset_at"] is not None
    else:   # Linux 6.1: memory.peak opens for writing, the write is refused
        why = f"Linux {res.kernel_release} cannot reset memory.peak; Linux 6.12 and later can"
        assert mark["reset"] is None and mark["not_reset_because"] == why
        assert mark["scope"] == f"since the cgroup was created ({why})"
        assert thr["sampler"]["reset_peak"] is None and thr["sampler"]["meta_peak_reset_at"] is None
        assert thr["sampler"]["meta_peak_scope"] == mark["scope"]


def test_short_bench_report_comes_back_to_the_host(tmp_path):
    res = _run([PY, "-m", "edgebench", "bench", "--duration", "8", "--warmup", "2", "--scenarios", "optimized-vm",
                "--engine", "native", "--results", str(tmp_path)], [tmp_path], timeout=2400)
    assert res.returncode == 0, res.output[-3000:]
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.endswith("-bench")]
    assert len(runs) == 1, list(tmp_path.iterdir())
    run = runs[0]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    summary = json.loads((run / "summary.json").read_text())
    s = summary["scenarios"]["optimized-vm"]
    assert s["requests_completed"] > 0 and s["service_cpu_cores"] > 0
    assert s["limits"]["sensor-service"] == {"mem_limit_bytes": 52428800, "cpus": 0.5}
    scenario = json.loads((run / "optimized-vm" / "scenario.json").read_text())
    assert scenario["limits_enforced"] is True and scenario["engine"] == "native"
    if not _release_at_least(res.kernel_release, 6, 12):
        assert scenario["peak_reset_at"] is None
        assert scenario["peak_scope"].startswith(f"since the cgroup was created (Linux {res.kernel_release}")
        assert s["service_mem_peak_kernel_window"] == scenario["peak_scope"]
    assert s["service_mem_peak_kernel_mb"] > 0
    md = (run / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    assert "optimized-vm" in md
    graphs = sorted((run / "report").glob("*.png"))
    assert len(graphs) >= 3 and all(g.stat().st_size > 1000 for g in graphs)
    assert (run / "report" / "report.html").stat().st_size > 1000


def test_in_guest_timeout_kills_the_command_and_what_it_left_behind():
    """The timeout kills the command; a child it left (holding its output open) is killed
    too, so the guest powers off at once instead of waiting for the host's deadline."""
    t0 = time.monotonic()
    live = io.StringIO()
    res = guest.run(["sh", "-c", "sleep 600 & echo started; sleep 600"], timeout=5, boot_budget=100, stream=live)
    assert res.returncode == 137 and "started" in res.output      # SIGKILL from the guest's timeout
    assert time.monotonic() - t0 < 100
    assert "started" in live.getvalue() and "edgebench-guest: running the command" in live.getvalue()


def _qemu_children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(k) for k in kids if Path(f"/proc/{k}/comm").read_text().startswith("qemu-system")]


def test_host_deadline_kills_qemu():
    before = set(_qemu_children(os.getpid()))
    t0 = time.monotonic()
    with pytest.raises(guest.GuestError, match=r"did not power off within 3 s .*QEMU killed"):
        guest.run(["sleep", "600"], timeout=1, boot_budget=2)
    assert time.monotonic() - t0 < 30
    assert set(_qemu_children(os.getpid())) <= before


def test_ctrl_c_stops_the_guest_and_kills_qemu():
    p = subprocess.Popen([PY, "-m", "tests.platforms.guest", "run", "--timeout", "600", "--", "sleep", "600"], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = threading.Event()

    def watch():
        for line in p.stdout:
            if "edgebench-guest: running the command" in line:
                running.set()
    threading.Thread(target=watch, daemon=True).start()
    try:
        assert running.wait(180), "the guest did not start the command within 180 s"
        qemu = _qemu_children(p.pid)
        assert len(qemu) == 1
        p.send_signal(signal.SIGINT)
        rc = p.wait(60)
        assert rc == 130 and "interrupted; the guest was stopped" in p.stderr.read()
        assert not pid_alive(qemu[0])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
