"""The fault suite: a real `python -m edgebench bench` (one scenario, short warm-up and
steady window) on a real stack, hurt in each phase. After each fault: no process and no
edgebench-* cgroup of the run remain (at the latest after `python -m edgebench down`),
what was measured is on disk and readable, the run says how it ended and why, and
`python -m edgebench report --run DIR` renders what it can (exit 0) or refuses in one
line (exit 2).

Phases are read from the bench's own progress lines, never guessed with sleeps.
Needs root and a cgroup file system; skipped otherwise.
"""
from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from plumbing.cgroup_counters import detect_version
from plumbing.process import pid_alive
from stack.state import StackState, read_state

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "optimized-vm"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0 or detect_version() is None
                                or not os.access("/usr/bin/victoria-metrics", os.X_OK),
                                reason="needs root, a cgroup file system and victoria-metrics")]

PHASES = {  # progress line that says the bench is in that phase
    "startup": re.compile(r"\] starting "),
    "warmup": re.compile(r"\] load: "),
    "steady": re.compile(r"\] steady window"),
    "collector": re.compile(r"\] querying the collector"),
}


class Bench:
    """One `python -m edgebench bench` in a process of its own, its output read line by line."""

    def __init__(self, tmp: Path, duration=4, warmup=2, compose: Path | None = None, results: Path | None = None):
        self.results = results or tmp / "results"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", EDGEBENCH_RUNTIME_DIR=str(tmp / "runtime"))
        if compose:
            self.env["EDGEBENCH_COMPOSE_FILE"] = str(compose)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "bench", "--duration", str(duration), "--warmup", str(warmup),
             "--scenarios", SCENARIO, "--engine", "native", "--results", str(self.results)],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._new = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def wait_line(self, pattern: re.Pattern, timeout=90) -> str:
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                hit = next((ln for ln in self.lines if pattern.search(ln)), None)
                if hit:
                    return hit
                if self.proc.poll() is not None and not any(pattern.search(ln) for ln in self.lines):
                    raise AssertionError(f"bench ended before {pattern.pattern!r}:\n" + "\n".join(self.lines))
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {pattern.pattern!r} after {timeout}s:\n" + "\n".join(self.lines))
                self._new.wait(0.2)

    def wait(self, timeout=120) -> int:
        rc = self.proc.wait(timeout=timeout)
        time.sleep(0)  # let the reader drain
        return rc

    def run_dir(self) -> Path | None:
        runs = sorted(p for p in self.results.glob("*-bench*") if p.is_dir())
        return runs[-1] if runs else None

    def scenario_dir(self) -> Path | None:
        run = self.run_dir()
        return run / SCENARIO if run else None

    def state(self) -> StackState | None:
        sdir = self.scenario_dir()
        return read_state(sdir / "stack") if sdir else None

    def wait_state(self, pred, timeout=60) -> StackState:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st and pred(st):
                return st
            time.sleep(0.1)
        raise AssertionError(f"stack state never matched; last: {self.state()}")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)


def edgebench(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes whose command line or working directory mentions ``marker`` (the
    test's results folder): the run's collector, Locust, py-spy."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        pid = int(d.rsplit("/", 1)[1])
        if pid == os.getpid():
            continue
        try:
            cmd = open(f"{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"{d}/cwd")
        except OSError:
            continue
        if (marker in cmd or cwd.startswith(marker)) and pid_alive(pid):
            out.append((pid, cmd.strip()))
    return out


def stack_leftovers(bench: Bench) -> list[str]:
    st = bench.state() or StackState()
    sid = st.stack_id
    left = []
    if sid:
        left += glob.glob(f"/sys/fs/cgroup/*/edgebench-{sid}-*") + glob.glob(f"/sys/fs/cgroup/edgebench-{sid}-*")
    pids = [st.supervisor_pid] + [s.pid for s in st.services.values()]
    left += [f"pid {p}" for p in pids if p and pid_alive(p)]
    return left


def assert_nothing_left(bench: Bench, tmp: Path) -> None:
    """At the latest after `edgebench down`: no process, no cgroup of this run."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (stack_leftovers(bench) or run_processes(str(bench.results))):
        time.sleep(0.2)
    down = edgebench("down", env=bench.env)
    assert down.returncode == 0, down.stderr
    assert stack_leftovers(bench) == [], down.stdout
    assert run_processes(str(bench.results)) == []


def assert_report(run: Path, renders: bool, refusal: str = "nothing was measured") -> None:
    """`edgebench report --run` renders what was measured (exit 0, summary.json written), or
    refuses in one line naming why (exit 2): by default, that nothing was measured."""
    r = edgebench("report", "--run", run)
    assert "Traceback" not in r.stderr, r.stderr
    if renders:
        assert r.returncode == 0, r.stderr
        assert (run / "summary.json").exists() and (run / "report" / "report.html").exists()
    else:
        assert r.returncode == 2, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and refusal in lines[0], r.stderr


def sample_rows(csv: Path) -> int:
    """Data rows in a resources.csv; 0 when it was never written or holds no row."""
    if not csv.exists() or not csv.stat().st_size:
        return 0
    return len(pd.read_csv(csv))


def assert_measured_is_readable(bench: Bench, status: str, sampled: bool = True) -> None:
    """The run's manifest says ``status``; resources.csv holds the sampler's rows (or, when
    the run stopped before the sampler started, none)."""
    csv = bench.scenario_dir() / "resources.csv"
    if sampled:
        df = pd.read_csv(csv)
        assert len(df) > 0
        assert {"t", "component", "mem_bytes", "nr_periods", "mem_peak_bytes"} <= set(df.columns)
    else:
        assert sample_rows(csv) == 0
    manifest = json.loads((bench.run_dir() / "manifest.json").read_text())
    assert manifest["status"] == status, manifest["status"]


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_orchestrator_killed_in_each_phase(tmp_path, sig, phase):
    b = Bench(tmp_path)
    try:
        b.wait_line(PHASES[phase])
        if phase == "startup":   # the supervisor runs; the bench is held before its sampler can start
            b.wait_state(lambda st: st.supervisor_pid)
            b.kill(signal.SIGSTOP)
            assert not b.state().healthy_at, "the stack was healthy before the bench was held"
        b.kill(sig)
        b.kill(signal.SIGCONT)
        rc = b.wait()
    finally:
        b.kill(signal.SIGKILL)
    st = b.state()
    if sig == signal.SIGINT:
        manifest = json.loads((b.run_dir() / "manifest.json").read_text())
        if rc == 0:   # it finished before the signal arrived (a fast collector query)
            assert phase == "collector" and manifest["status"] == "complete"
        else:
            assert rc == 130, "\n".join(b.lines)
            assert manifest["status"] == "interrupted"
            scen = json.loads((b.scenario_dir() / "scenario.json").read_text())
            assert scen["status"] == "interrupted"
    else:
        assert rc == -signal.SIGKILL
        # the supervisor noticed its owner was gone and tore the stack down by itself
        st = b.wait_state(lambda s: s.status in ("stopped", "failed") and not s.supervisor_pid, 30)
        assert "owner process" in (st.stop_reason or ""), st
    assert_nothing_left(b, tmp_path)
    measured = phase != "startup"   # the sampler starts once the stack is healthy
    status = "running" if sig == signal.SIGKILL else "complete" if rc == 0 else "interrupted"
    assert_measured_is_readable(b, status, sampled=measured)
    assert_report(b.run_dir(), renders=measured)
    if measured:   # the run reads as interrupted (a killed one too), not running
        summary = json.loads((b.run_dir() / "summary.json").read_text())
        assert summary["status"] == ("complete" if rc == 0 else "interrupted"), summary["status"]


def _pid_of(bench: Bench, word: str) -> int:
    for pid, cmd in run_processes(str(bench.results)):
        if word in cmd:
            return pid
    raise AssertionError(f"no {word} process of this run")


@pytest.mark.parametrize("victim", ["supervisor", "locust", "collector"])
def test_component_killed_mid_run(tmp_path, victim):
    b = Bench(tmp_path, duration=5)
    try:
        b.wait_line(PHASES["steady"])
        st = b.state()
        pid = {"supervisor": lambda: st.supervisor_pid,
               "collector": lambda: st.services["victoriametrics"].pid,
               "locust": lambda: _pid_of(b, "locust")}[victim]()
        os.kill(pid, signal.SIGKILL)
        rc = b.wait()
    finally:
        b.kill(signal.SIGKILL)
    out = "\n".join(b.lines)
    assert_nothing_left(b, tmp_path)          # the stack's own duty, asserted whatever else happened
    assert_measured_is_readable(b, "complete" if victim == "collector" else "failed")
    assert_report(b.run_dir(), renders=True)
    scen = json.loads((b.scenario_dir() / "scenario.json").read_text())
    manifest = json.loads((b.run_dir() / "manifest.json").read_text())
    assert "Traceback" not in out, out
    if victim == "collector":   # restart: always brings it back; the run completes and counts it
        assert rc == 0 and scen["status"] == "complete", out
        df = pd.read_csv(b.scenario_dir() / "resources.csv")
        assert df[df.component == "victoriametrics"].restarts.max() >= 1
    else:                       # the run cannot be trusted: it ends failed, with the reason
        assert rc != 0 and scen["status"] == "failed" and scen.get("error"), out
        assert manifest["status"] == "failed"


def compose_variant(tmp_path: Path, change) -> Path:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    doc["services"]["sensor-service"]["build"]["context"] = str(ROOT)
    for s in doc["services"].values():
        s["volumes"] = [v.replace("./", f"{ROOT}/", 1) if v.startswith("./") else v for v in s.get("volumes", [])]
    change(doc["services"])
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_service_oom_killed_on_every_start(tmp_path):
    """Every scrape retains 16 MB: the 50 MB service is OOM-killed again and again."""
    def leak(svcs):
        svcs["sensor-service"]["environment"]["SENSOR_LEAK_BYTES_PER_SCRAPE"] = str(16 * 2**20)
    b = Bench(tmp_path, duration=5, compose=compose_variant(tmp_path, leak))
    try:
        rc = b.wait()
    finally:
        b.kill(signal.SIGKILL)
    out = "\n".join(b.lines)
    assert "Traceback" not in out, out
    df = pd.read_csv(b.scenario_dir() / "resources.csv")
    svc = df[df.component == "sensor-service"]
    assert svc.oom_kills.max() >= 2 and svc.restarts.max() >= 2, out
    scen = json.loads((b.scenario_dir() / "scenario.json").read_text())
    assert rc == 0 and scen["status"] == "complete", out   # restarts are findings, not a failed run
    assert_nothing_left(b, tmp_path)
    assert_report(b.run_dir(), renders=True)   # the sampler ran between the kills


def test_collector_that_never_becomes_healthy(tmp_path):
    def broken(svcs):
        svcs["victoriametrics"]["command"].append("-no.such.flag=1")
    b = Bench(tmp_path, compose=compose_variant(tmp_path, broken))
    try:
        rc = b.wait()
    finally:
        b.kill(signal.SIGKILL)
    out = "\n".join(b.lines)
    assert rc == 2 and "Traceback" not in out, out
    assert "victoriametrics" in b.lines[-1] and "log" in b.lines[-1], out   # one line: which, where to look
    scen = json.loads((b.scenario_dir() / "scenario.json").read_text())
    assert scen["status"] == "failed" and "victoriametrics" in scen["error"]
    assert_nothing_left(b, tmp_path)
    assert_report(b.run_dir(), renders=False)   # the stack never came up: nothing was sampled


@pytest.fixture
def small_mount(tmp_path):
    """A 1 MB tmpfs made by the test, unmounted after (also on failure)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "edgebench-test", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_results_directory_full_or_read_only(tmp_path, small_mount, kind):
    if kind == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    b = Bench(tmp_path, results=small_mount / "results")
    try:
        rc = b.wait()
    finally:
        b.kill(signal.SIGKILL)
    out = "\n".join(b.lines)
    assert rc != 0, out
    assert_nothing_left(b, tmp_path)
    assert "Traceback" not in out, out
    assert b.lines and b.lines[-1].startswith("edgebench: cannot write "), out   # one line naming the problem
    if kind == "read-only":   # not even the run directory could be made
        assert "Read-only file system" in b.lines[-1] and b.run_dir() is None, out
    else:                     # the run started and stopped when the disk filled; the report cannot write either
        assert "No space left on device" in b.lines[-1], out
        assert json.loads((b.run_dir() / "manifest.json").read_text())["status"] == "failed"
        assert_report(b.run_dir(), renders=False, refusal="No space left on device")
