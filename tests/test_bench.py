"""make bench for real: a short run of every scenario under the compose limits, then
its results directory checked against the contract and against its own raw samples."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loadtests.samples import read_samples, steady
from stack.state import read_state

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench"),  # one run for the module (make test)
              pytest.mark.skipif(os.geteuid() != 0, reason="the native engine's limits need root")]

SCENARIO_FILES = ("scenario.json", "requests.csv.gz", "resources.csv", "locust/locust_stats.csv",
                  "locust/report.html", "logs/sensor-service.log")
SUMMARY_KEYS = ("variant", "collector", "duration_s", "requests", "failures", "throughput_rps",
                "latency_ms", "server_scrape_p95_ms", "cpu_ms_per_request", "mem_peak_mb",
                "mem_steady_mb", "mem_slope_kb_per_request", "oom_kills", "restarts",
                "throttled_ratio")


def edgebench(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "edgebench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **kw)


def stack_states(run_dir: Path) -> list:
    """The state.json of every stack the run started; a run that started none fails the test."""
    states = [read_state(p.parent) for p in sorted(run_dir.glob("*/stack/state.json"))]
    assert states, f"no stack state under {run_dir}"
    return states


def leftover_cgroups(run_dir: Path) -> list[str]:
    ids = {st.stack_id for st in stack_states(run_dir)}
    return [d for sid in ids for c in ("memory", "cpu", "cpuacct")
            for d in map(str, Path(f"/sys/fs/cgroup/{c}").glob(f"edgebench-{sid}-*"))]


def pids_alive(run_dir: Path) -> list[int]:
    alive = []
    for st in stack_states(run_dir):
        for pid in [st.supervisor_pid] + [s.pid for s in st.services.values()]:
            if pid and Path(f"/proc/{pid}").exists():
                alive.append(pid)
    return alive


@pytest.fixture(scope="module")
def short_bench(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    out = edgebench("bench", "--duration", "5", "--warmup", "2", "--results", str(results))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return results, results / "latest", out


def test_results_directory_follows_the_contract(short_bench):
    results, run, _ = short_bench
    assert run.is_symlink() and run.resolve().parent == results
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    for key in ("command", "parameters", "git", "machine"):
        assert manifest[key]
    for key in ("cpu_model", "cores", "kernel", "cgroup_version", "python", "packages"):
        assert key in manifest["machine"]
    for name in ("baseline-vm", "optimized-vm", "optimized-prom"):
        for f in SCENARIO_FILES:
            assert (run / name / f).exists(), f"{name}/{f}"
        assert {p.name for p in (run / name / "collector").glob("*.json")} >= {
            "scrape_duration_buckets.json", "up.json", "collector_scrape_duration.json"}
        meta = json.loads((run / name / "scenario.json").read_text())
        assert meta["status"] == "complete" and meta["limits_enforced"] is True
        assert meta["limits"]["sensor-service"] == {"mem_limit_bytes": 50 * 2**20, "cpus": 0.5}
    for f in ("OPTIMIZATION_SUMMARY.md", "report.html", "memory.png", "latency_cdf.png"):
        assert (run / "report" / f).exists(), f


def test_summary_agrees_with_the_raw_samples(short_bench):
    _, run, _ = short_bench
    summary = json.loads((run / "summary.json").read_text())
    for name in ("baseline-vm", "optimized-vm", "optimized-prom"):
        sc = summary["scenarios"][name]
        for key in SUMMARY_KEYS:
            assert key in sc, f"{name}: {key}"
        meta = json.loads((run / name / "scenario.json").read_text())
        due = steady(read_samples(run / name / "requests.csv.gz"), meta["steady_start"], meta["steady_end"])
        sent = due[due["sent"] == 1]
        assert sc["requests_intended"] == len(due) > 0 and sc["requests"] == len(sent) > 0
        assert sc["failures"] == int((due["ok"] == 0).sum())        # never-sent requests included
        for q in (50, 95, 99):
            assert sc["latency_ms"][f"p{q}"] == pytest.approx(np.percentile(sent["latency_ms"], q))
        assert sc["latency_ms"]["max"] == pytest.approx(sent["latency_ms"].max())
        assert sc["cpu_ms_per_request"] > 0
        assert 0 < sc["mem_peak_mb"]["sensor-service"] <= 50.0
    # the baseline's CPU burn shows even in a 5-second run
    assert (summary["scenarios"]["baseline-vm"]["cpu_ms_per_request"]
            > 3 * summary["scenarios"]["optimized-vm"]["cpu_ms_per_request"])


def test_nothing_left_running_after_a_bench(short_bench):
    _, run, _ = short_bench
    assert pids_alive(run.resolve()) == []
    assert leftover_cgroups(run.resolve()) == []


@pytest.mark.parametrize("args, message", [
    (("--duration", "-5"), "DURATION='-5' must be > 0 s"),
    (("--scenarios", "nope"), "unknown scenario nope"),
    (("--repeats", "x"), "REPEATS='x' is not a whole number"),
    (("--workers", "9"), "WORKERS=9 exceeds the 4 load users"),
    (("--target", "http://127.0.0.1:9"), "load target http://127.0.0.1:9 does not answer"),
])
def test_bad_parameters_stop_before_anything_starts(tmp_path, args, message):
    out = edgebench("bench", *args, "--results", str(tmp_path / "results"), timeout=60)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_bench_keeps_its_data_and_leaves_nothing(tmp_path, sig):
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "edgebench", "bench", "--duration", "30",
                             "--warmup", "1", "--scenarios", "optimized-vm", "--results", str(results)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    resources = None
    while time.monotonic() < deadline:   # wait until the steady phase is being measured
        found = list(results.glob("*/optimized-vm/resources.csv"))
        if found and found[0].stat().st_size > 2000:
            resources = found[0]
            break
        time.sleep(0.2)
    assert resources, "the bench never started measuring"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out[-2000:]
    run = resources.parent.parent
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert json.loads((run / "optimized-vm" / "scenario.json").read_text())["status"] == "interrupted"
    assert len(pd.read_csv(resources)) > 5            # what was measured is kept
    assert not (results / "latest").exists()          # latest only points at complete runs
    assert pids_alive(run) == []
    assert leftover_cgroups(run) == []
