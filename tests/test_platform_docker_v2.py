"""The Docker engine on a real cgroup v2 kernel: the {docker} x {cgroup v2} cell of the
platform matrix (docs/stack.md#platforms).

One boot of the cgroup v2 guest (tests/platforms/guest.py) runs
tests/platforms/docker_v2_checks.py: one dockerd for every check, the stack's images loaded
from a ``docker save`` tarball the host made (tests/platforms/stack_images.py), Compose v2
from tests/platforms/compose_v2.py. The tests below assert on what it recorded.
"""
import json
import time
from pathlib import Path

import pytest

from stack.compose import load_compose
from tests.platforms import compose_v2, guest
from tests.platforms.docker_daemon import missing_requirement
from tests.platforms.stack_images import save_stack_images

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")
MiB = 1 << 20
# what a dockerd needs of the guest's kernel beyond the 9p root: overlay2, the project's bridge network
DOCKER_MODULES = ["overlay", "bridge", "veth", "br_netfilter"]

pytestmark = [pytest.mark.platform, pytest.mark.slow]


# the checks that pass; the others stop at `docker exec` in the guest (docs/stack.md, the
# Docker x cgroup v2 cell) and run only when a test marked unfinished is selected
PASSING = ("dockerd", "oom")
UNFINISHED = ("up_compose_v2", "up_compose_v1", "throttle_and_peak", "bench")


@pytest.fixture(scope="module")
def cell(request, tmp_path_factory):
    problems = guest.check() + [p for p in (missing_requirement(),) if p]
    try:
        docker_config = compose_v2.find()
    except compose_v2.ComposeV2Unavailable as e:
        problems.append(str(e))
    assert not problems, "Docker x cgroup v2 cannot run here: " + "; ".join(problems)
    images = tmp_path_factory.mktemp("images")
    made = save_stack_images(images / "stack.tar")
    out = tmp_path_factory.mktemp("docker-v2")
    t0 = time.monotonic()
    unfinished = any(i.get_closest_marker("unfinished") for i in request.session.items if i.module is request.module)
    checks = PASSING + (UNFINISHED if unfinished else ())
    res = guest.run([PY, "-m", "tests.platforms.docker_v2_checks", str(out), str(images / "stack.tar"),
                     ",".join(checks)],
                    shares=[out, (images, False)], modules=DOCKER_MODULES,
                    env={"EDGEBENCH_DOCKER_BUILD": "0", "DOCKER_CONFIG": str(docker_config)},
                    memory_mb=3072, timeout=3000)
    print(res.output[-8000:])
    print(f"images {made}; guest {time.monotonic() - t0:.0f} s")
    assert res.returncode == 0, res.output[-3000:]
    return res, json.loads((out / "checks.json").read_text()), out


def ok(data, name):
    c = data[name]
    assert c["ok"], c.get("error")
    return c


def test_dockerd_runs_on_cgroup_v2_with_the_loaded_images(cell):
    d = ok(cell[1], "dockerd")
    assert d["info"]["CgroupVersion"] == "2" and d["info"]["Driver"] == "overlay2"
    assert d["load"]["rc"] == 0, d["load"]["stderr"]
    assert {"edgebench/sensor-service:local", "victoriametrics/victoria-metrics:v1.79.5"} <= set(d["images"])
    assert d["compose_v2"].lstrip("v").startswith("2."), d["compose_v2"]


@pytest.mark.unfinished
@pytest.mark.parametrize("compose", ["compose_v2", "compose_v1"])
def test_up_reads_the_limits_from_each_containers_v2_files_then_status_and_down(cell, compose):
    """`edgebench up --engine docker` through each compose: both containers' own cgroups hold
    the compose file's limits (read by the container itself where it has `cat`, and from
    the cgroup edgebench located); `status` shows them; `down` leaves no container."""
    up = ok(cell[1], f"up_{compose}")
    assert up["up"]["rc"] == 0, up["up"]["stderr"]
    st = up["state"]
    assert st["engine"] == "docker" and st["status"] == "running" and st["cgroup_version"] == 2
    assert st["compose_cmd"] == (["docker", "compose"] if compose == "compose_v2" else ["docker-compose"])
    assert st["counters_source"] == "cgroup"
    spec = load_compose(REPO / "docker-compose.yml")
    assert set(up["services"]) == {"sensor-service", "victoriametrics"}
    for name, s in up["services"].items():
        svc = spec.services[name]
        want = [str(svc.mem_limit), str(svc.memswap_limit - svc.mem_limit), f"{int(svc.cpus * 100000)} 100000"]
        assert s["health"] == "healthy" and s["container_id"] in s["cgroup_dir"]
        assert [s["files"][f] for f in ("memory.max", "memory.swap.max", "cpu.max")] == want
        assert str(s["pid"]) in s["files"]["cgroup.procs"].split()
        assert s["counters"]["source"] == "cgroup-v2"
        assert (s["counters"]["mem_limit_bytes"], s["counters"]["cpus"]) == (svc.mem_limit, svc.cpus)
        assert 0 < s["counters"]["mem_bytes"] < svc.mem_limit
    inside = up["services"]["sensor-service"]["inside"]   # VictoriaMetrics' image has no cat
    assert inside["rc"] == 0 and inside["values"] == [str(50 * MiB), "0", "50000", "100000"], inside
    assert up["status"]["rc"] == 0, up["status"]["stderr"]
    line = next(x for x in up["status"]["stdout"].splitlines() if x.startswith("sensor-service"))
    assert "running" in line and "healthy" in line and "50.0M" in line
    assert up["down"]["rc"] == 0, up["down"]["stderr"]
    assert up["left_after_down"] == []


def test_oom_kill_counted_from_docker_events_then_the_restart(cell):
    oom = ok(cell[1], "oom")
    assert oom["before"]["memory.max"]["memory.max"] == str(40 * MiB)
    assert oom["before"]["oom_kills"] == 0 and oom["before"]["restarts"] == 0
    assert oom["after"]["oom_kills"] >= 1 and oom["after"]["restarts"] >= 1 and oom["after"]["status"] == "running"
    assert oom["after"]["pid"] != oom["before"]["pid"]
    assert "oom" in oom["events"] and oom["events"].count("start") >= 2
    assert oom["events"].index("oom") < len(oom["events"]) - 1 - oom["events"][::-1].index("start")
    assert oom["inspect"]["RestartCount"] >= 1
    assert oom["healthz_after_restart"] == "ok"


@pytest.mark.unfinished
def test_throttling_and_peak_in_the_containers_v2_files(cell):
    thr = ok(cell[1], "throttle_and_peak")
    assert thr["cpu.max"] == "50000 100000" and thr["requests"] > 0
    before, after = thr["counters"]["before"], thr["counters"]["after"]
    assert after["source"] == "cgroup-v2"
    d_periods = after["nr_periods"] - before["nr_periods"]
    d_thr = after["throttled_periods"] - before["throttled_periods"]
    assert d_periods > 0 and 0.1 < d_thr / d_periods <= 1.0, (d_thr, d_periods)
    assert after["cpu_seconds"] > before["cpu_seconds"]
    raw = dict(line.split() for line in thr["cpu.stat"].splitlines())
    assert 0 <= int(raw["nr_throttled"]) - after["throttled_periods"] <= 2
    assert int(thr["memory.peak"]) >= after["mem_peak_bytes"] >= after["usage_bytes"] > 0
    assert int(thr["memory.peak"]) >= int(thr["memory.current"])


@pytest.mark.unfinished
def test_short_bench_complete_report(cell):
    b = ok(cell[1], "bench")
    assert b["bench"]["rc"] == 0, b["bench"]["stdout"][-2000:] + b["bench"]["stderr"][-2000:]
    (run,) = [d for d in Path(b["results"]).iterdir() if d.is_dir() and not d.is_symlink()]
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    sc = json.loads((run / "optimized-vm" / "scenario.json").read_text())
    assert sc["status"] == "complete" and sc["engine"] == "docker" and sc["counters_source"] == "cgroup"
    assert sc["limits"]["sensor-service"] == {"mem_limit_bytes": 50 * MiB, "cpus": 0.5}
    s = json.loads((run / "summary.json").read_text())["scenarios"]["optimized-vm"]
    for key in ("cpu_ms_per_scrape", "service_mem_peak_mb", "throttled_ratio", "collector_up_ratio",
                "throughput_rps", "service_mem_peak_kernel_mb"):
        assert s[key] is not None, key
    assert s["requests_completed"] > 0 and s["oom_kills_total"] == 0
    assert "optimized-vm" in (run / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    graphs = sorted((run / "report").glob("*.png"))
    assert len(graphs) >= 3 and all(g.stat().st_size > 1000 for g in graphs)
    assert (run / "report" / "report.html").stat().st_size > 1000
