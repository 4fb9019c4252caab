"""profiling/: pure parsers on constructed inputs, and the samplers/profilers against
real things: a real cgroup with a real child, real py-spy on the real service across a
restart, real tracemalloc snapshots from the service in profile mode, and a real
VictoriaMetrics and Prometheus scraping a real metrics endpoint."""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import requests

from plumbing.cgroup_counters import (
    PEAK_SINCE_CREATION,
    PEAK_SINCE_RESET,
    Counters,
    PeakMark,
    counters_v1,
    counters_v2,
    parse_cpu_max,
    parse_keyed,
    parse_v1_io,
    parse_v2_io,
    peak_reset_refusal,
    read_cgroups,
    read_v2,
)
from plumbing.wait import wait_until
from profiling import ProfilerError
from profiling.collector_queries import newest_sample_time, parse_flag_duration, parse_vm_flags, query_collector
from profiling.memory import (
    MprofRecorder,
    capture_scrape_allocations,
    memory_per_request,
    read_mprof,
    scrape_allocation_sites,
)
from profiling.pyspy import PySpyRecorder, explain_failure, find_pyspy, merge_speedscope
from profiling.sampler import COLUMNS, ResourceSampler, _Monotonic, parse_proc_io, pid_getter
from profiling.top_functions import (
    diff_top_functions,
    format_collapsed,
    parse_collapsed,
    parse_frame,
    top_functions,
    write_diff,
    write_top_functions,
)
from tests.conftest import free_port, start_service, stop_process

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def wait_http(url, timeout=20, proc=None):
    """Until ``url`` answers below 500; a ``proc`` that exits meanwhile fails at once."""
    def up():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.RequestException:
            return False
    wait_until(up, timeout, url)


def write_state(path: Path, services: dict, cgroup_version=1, limits_enforced=True):
    state = {"engine": "native", "supervisor_pid": os.getpid(), "cgroup_version": cgroup_version,
             "limits_enforced": limits_enforced, "started_at": time.time(), "services": services}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# pure: cgroup files
# ---------------------------------------------------------------------------

V2_FILES = {
    "memory.current": "52428800\n",
    "memory.stat": "anon 31457280\nfile 20971520\nkernel 1048576\nactive_file 10485760\n"
                   "inactive_file 15728640\nslab 100\n",
    "memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
    "memory.max": "max\n",
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\n"
                "nr_throttled 7\nthrottled_usec 350000\nnr_bursts 0\nburst_usec 0\n",
    "cpu.max": "50000 100000\n",
    "cgroup.procs": "123\n456\n",
    "memory.peak": "62914560\n",
    "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
               "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
}


def test_v2_files_parsed_from_a_constructed_group(tmp_path):
    for name, text in V2_FILES.items():
        (tmp_path / name).write_text(text)
    c = read_v2(tmp_path)
    assert c.mem_bytes == 52428800 - 15728640          # usage - inactive_file
    assert c.rss_bytes == 31457280                     # anon
    assert c.cpu_seconds == pytest.approx(2.5)
    assert c.throttled_periods == 7
    assert c.throttled_seconds == pytest.approx(0.35)
    assert c.oom_kills == 2
    assert c.mem_limit_bytes is None                   # "max"
    assert c.cpus == pytest.approx(0.5)
    assert c.pids == [123, 456]
    assert c.nr_periods == 40                          # cpu.stat nr_periods
    assert c.mem_peak_bytes == 62914560                # memory.peak
    assert c.usage_bytes == 52428800
    assert (c.io_read_bytes, c.io_write_bytes) == (4097, 8194)
    assert read_cgroups({"unified": str(tmp_path)}).mem_bytes == c.mem_bytes
    (tmp_path / "memory.max").write_text("52428800\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    c = read_v2(tmp_path)
    assert c.mem_limit_bytes == 52428800 and c.cpus is None


def test_v2_missing_files_are_none_not_errors(tmp_path):
    (tmp_path / "memory.current").write_text("1000\n")
    c = read_v2(tmp_path)
    assert c.mem_bytes == 1000 and c.cpu_seconds is None and c.oom_kills is None
    assert read_cgroups({"unified": str(tmp_path / "gone")}) is None
    assert read_cgroups({}) is None


def test_v1_contents_parsed():
    c = counters_v1({
        "memory.usage_in_bytes": "40000000\n",
        "memory.stat": "cache 100\nrss 5\ninactive_file 1\ntotal_rss 30000000\ntotal_inactive_file 4000000\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        "memory.limit_in_bytes": "9223372036854771712\n",
        "cpuacct.usage": "1500000000\n",
        "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 200000000\n",
        "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n",
    })
    assert c.mem_bytes == 36000000 and c.rss_bytes == 30000000
    assert c.oom_kills == 3 and c.cpu_seconds == pytest.approx(1.5)
    assert c.throttled_periods == 4 and c.throttled_seconds == pytest.approx(0.2)
    assert c.mem_limit_bytes is None and c.cpus is None
    assert c.nr_periods == 10 and c.mem_peak_bytes is None   # no max_usage file given


def test_v2_parsers_edge_cases():
    # a cgroup v2 kernel before 5.19 has no memory.peak; nr_periods without a cpu controller
    c = counters_v2({"memory.current": "100\n", "memory.stat": "inactive_file 300\n",
                     "cpu.stat": "usage_usec 10\n"})
    assert c.mem_bytes == 0 and c.mem_peak_bytes is None and c.nr_periods is None
    assert parse_v2_io("") == (None, None)
    assert parse_v2_io("8:0 rbytes=x wbytes=5\n") == (0, 5)
    assert parse_v1_io("8:0 Read 10\n8:0 Write 20\n8:0 Sync 30\nTotal 60\n") == (10, 20)


def test_peak_mark_without_a_cgroup_cannot_reset(tmp_path):
    mark = PeakMark({"unified": str(tmp_path / "gone")})
    assert mark.reset() is None and mark.read() is None
    assert PeakMark({}).reset() is None


def test_peak_mark_that_cannot_reset_says_what_it_covers_and_why(tmp_path):
    """Linux 6.1 opens memory.peak for writing and refuses the write (EINVAL): the mark
    then covers the cgroup's life, and the sampler's meta (scenario.json's peak_scope)
    says so instead of calling it the steady window."""
    d = tmp_path / "cg"
    (d / "memory.peak").mkdir(parents=True)        # open(O_RDWR) fails here too (EISDIR)
    mark = PeakMark({"unified": str(d)})
    assert mark.reset() is None and mark.reset_at is None
    assert mark.scope() == f"{PEAK_SINCE_CREATION} ({mark.not_reset_because})"
    assert str(d / "memory.peak") in mark.not_reset_because
    assert peak_reset_refusal(True, errno.EINVAL, "/cg/memory.peak", "6.1.0-57-amd64") == \
        "Linux 6.1.0-57-amd64 cannot reset memory.peak; Linux 6.12 and later can"
    assert "5.19" in peak_reset_refusal(True, errno.ENOENT, "/cg/memory.peak", "5.15.0")
    assert peak_reset_refusal(False, errno.EACCES, "/m/memory.max_usage_in_bytes", "6.1") == \
        "no permission to write /m/memory.max_usage_in_bytes"
    state = tmp_path / "state.json"
    write_state(state, {"sensor-service": {"pid": os.getpid(), "status": "running",
                                           "cgroups": {"unified": str(d)}, "restarts": 0}}, cgroup_version=2)
    sampler = ResourceSampler(state, tmp_path / "resources.csv")
    assert sampler.peak_scope == PEAK_SINCE_CREATION          # before any reset
    assert sampler.reset_peak() is None
    assert sampler.peak_scope == mark.scope()
    meta = sampler.stop()
    assert meta["peak_reset_at"] is None and meta["peak_scope"].startswith(PEAK_SINCE_CREATION + " (")
    ok = tmp_path / "cg-ok"
    ok.mkdir()
    (ok / "memory.peak").write_text("1000\n")                 # a plain file takes the write: "reset"
    good = PeakMark({"unified": str(ok)})
    assert good.reset() is not None and good.scope() == PEAK_SINCE_RESET and good.not_reset_because is None
    good.close()


def test_small_parsers():
    assert parse_keyed("a 1\nb x\nc 3 4\n\nd 5") == {"a": 1, "d": 5}
    assert parse_cpu_max("20000 100000") == pytest.approx(0.2)
    assert parse_cpu_max("max 100000") is None
    assert parse_proc_io("rchar: 10\nwrite_bytes: 4096\n")["write_bytes"] == 4096
    m = _Monotonic()
    assert [m.update("a", 5), m.update("a", 7), m.update("b", 1), m.update("b", None), m.update("b", 3)] \
        == [5, 7, 8, 8, 10]


# ---------------------------------------------------------------------------
# real cgroup + sampler
# ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    sys.stdin.readline()                      # wait until we are in the cgroup
    buf = bytearray(20 * 1024 * 1024)
    for i in range(0, len(buf), 4096):
        buf[i] = 1                            # touch every page: 20 MB resident
    t = time.time()
    while time.time() - t < 1.5:              # burn CPU against the 0.2 CPU quota
        pass
    print("done", flush=True)
    sys.stdin.readline()
""")


class RealCgroup:
    """Creates a real cgroup (v1: memory+cpu+cpuacct; v2: one unified dir)."""

    def __init__(self, name):
        root = Path("/sys/fs/cgroup")
        self.v2 = (root / "cgroup.controllers").exists()
        if self.v2:
            self.dirs = {"unified": root / name}
        else:
            self.dirs = {c: root / c / name for c in ("memory", "cpu", "cpuacct")}

    def create(self, mem_limit, cpus):
        for d in self.dirs.values():
            d.mkdir()
        period = 100000
        if self.v2:
            d = self.dirs["unified"]
            (d / "memory.max").write_text(str(mem_limit))
            (d / "cpu.max").write_text(f"{int(cpus * period)} {period}")
        else:
            (self.dirs["memory"] / "memory.limit_in_bytes").write_text(str(mem_limit))
            (self.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(period))
            (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))

    def add(self, pid):
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text(str(pid))

    def remove(self):
        deadline = time.monotonic() + 5
        for d in self.dirs.values():
            while d.exists():
                try:
                    d.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def state(self):
        return {k: str(v) for k, v in self.dirs.items()}


def _cgroups_writable():
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        ctl = (root / "cgroup.subtree_control")
        return os.access(root, os.W_OK) and ctl.exists() and \
            {"memory", "cpu"} <= set(ctl.read_text().split())
    return all(os.access(root / c, os.W_OK) for c in ("memory", "cpu", "cpuacct"))


@pytest.mark.skipif(not _cgroups_writable(), reason="needs writable cgroups (root)")
@pytest.mark.slow
def test_sampler_on_a_real_cgroup(tmp_path):
    cg = RealCgroup(f"edgebench-test-{os.getpid()}")
    child = None
    try:
        cg.create(mem_limit=100 * MB, cpus=0.2)
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        cg.add(child.pid)
        vol = tmp_path / "vol"
        vol.mkdir()
        (vol / "data.bin").write_bytes(b"x" * 100_000)
        state = tmp_path / "state.json"
        write_state(state, {"sensor-service": {
            "pid": child.pid, "status": "running", "mem_limit_bytes": 100 * MB, "cpus": 0.2,
            "cgroups": cg.state(), "restarts": 1, "oom_kills": 0, "volumes": {"/storage": str(vol)}}},
            cgroup_version=2 if cg.v2 else 1)
        out = tmp_path / "resources.csv"
        with ResourceSampler(state, out, interval_s=0.1) as sampler:
            time.sleep(0.5)
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "done"
            time.sleep(0.3)
        df = pd.read_csv(out)
        assert list(df.columns) == COLUMNS
        s = df[df.component == "sensor-service"]
        assert len(s) >= 15
        rise = s.mem_bytes.max() - s.mem_bytes.iloc[0]
        assert 18 * MB <= rise <= 30 * MB, rise
        assert s.cpu_seconds.iloc[-1] - s.cpu_seconds.iloc[0] >= 0.1
        assert s.cpu_seconds.is_monotonic_increasing
        assert s.throttled_periods.iloc[-1] > 0
        assert s.throttled_seconds.iloc[-1] > 0
        assert (s.restarts == 1).all() and (s.oom_kills == 0).all()
        assert s.mem_limit_bytes.iloc[-1] == 100 * MB
        assert s.cpus.iloc[-1] == pytest.approx(0.2)
        assert s.disk_used_bytes.iloc[-1] >= 100_000
        assert s.disk_write_bytes.notna().all()
        info = json.loads((tmp_path / "resources.csv.meta.json").read_text())
        assert info["ticks"] >= 15 and info["errors"] == 0
        assert info["cpu_seconds_per_second"] < 0.2   # the sampler's own overhead
        assert sampler.overhead()["sources"]["sensor-service"] == [
            "cgroup-v2" if cg.v2 else "cgroup-v1"]
    finally:
        if child is not None:
            child.kill()
            child.wait()
        cg.remove()
    assert not any(d.exists() for d in cg.dirs.values())


BLIP = textwrap.dedent("""
    import sys, time
    sys.stdin.readline()                      # in the cgroup
    def blip(mb):                             # allocate, touch, free at once: a few ms
        buf = bytearray(mb * 1024 * 1024)
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        del buf
    blip(40)                                  # before the reset: must not count after it
    print("before", flush=True)
    sys.stdin.readline()                      # the peak was reset
    blip(20)
    print("after", flush=True)
    sys.stdin.readline()
""")


@pytest.mark.slow
@pytest.mark.skipif(not _cgroups_writable(), reason="needs writable cgroups (root)")
def test_kernel_peak_sees_a_blip_between_samples_and_resets(tmp_path):
    """A 20 MB temporary that lives for milliseconds: the kernel's high-water mark sees
    it, whatever the 4 Hz samples saw; the reset at the steady start forgets the 40 MB
    allocated before it (cgroup v1 here; v2 resets only on Linux >= 6.12)."""
    cg = RealCgroup(f"edgebench-test-peak-{os.getpid()}")
    child = None
    try:
        cg.create(mem_limit=200 * MB, cpus=1.0)
        child = subprocess.Popen([sys.executable, "-c", BLIP], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        cg.add(child.pid)
        state = tmp_path / "state.json"
        write_state(state, {"sensor-service": {"pid": child.pid, "status": "running",
                                               "cgroups": cg.state(), "restarts": 0}},
                    cgroup_version=2 if cg.v2 else 1)
        out = tmp_path / "resources.csv"
        with ResourceSampler(state, out, interval_s=0.25) as sampler:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "before"
            base = sampler.sample_once()[0]
            assert base["mem_peak_bytes"] >= base["mem_bytes"] + 38 * MB   # the 40 MB blip
            reset_at = sampler.reset_peak()
            if cg.v2 and reset_at is None:
                pytest.skip("this kernel cannot reset memory.peak (before Linux 6.12)")
            assert reset_at is not None and abs(reset_at - time.time()) < 5
            after_reset = sampler.sample_once()[0]["mem_peak_bytes"]
            assert after_reset < base["mem_bytes"] + 10 * MB                 # 40 MB forgotten
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "after"
            last = sampler.sample_once()[0]
        rise = last["mem_peak_bytes"] - base["mem_bytes"]
        assert 18 * MB <= rise <= 35 * MB, rise                            # the 20 MB blip
        assert last["mem_bytes"] < base["mem_bytes"] + 10 * MB             # freed again
        df = pd.read_csv(out)
        assert {"nr_periods", "mem_peak_bytes"} <= set(df.columns)
        assert df.nr_periods.notna().all() and df.nr_periods.is_monotonic_increasing
        assert (df.throttled_periods <= df.nr_periods).all()
        assert json.loads((tmp_path / "resources.csv.meta.json").read_text())["peak_reset_at"] == reset_at
    finally:
        if child is not None:
            child.kill()
            child.wait()
        cg.remove()


@pytest.mark.slow
def test_sampler_falls_back_to_psutil_and_keeps_restart_counters(tmp_path):
    code = "import time; b = b'x' * (8 * 1024 * 1024); time.sleep(30)"
    a = subprocess.Popen([sys.executable, "-c", code])
    b = None
    try:
        state = tmp_path / "state.json"
        svc = {"pid": a.pid, "status": "running", "cgroups": {}, "restarts": 0, "oom_kills": 0,
               "mem_limit_bytes": 50 * MB, "cpus": 0.5}
        write_state(state, {"svc": svc}, limits_enforced=False)
        out = tmp_path / "resources.csv"
        s = ResourceSampler(state, out, interval_s=0.1)
        time.sleep(0.3)
        s.sample_once()
        first = s.sample_once()[0]
        assert first["mem_bytes"] > 8 * MB and first["throttled_periods"] is None
        cpu_a = first["cpu_seconds"]
        a.kill(); a.wait()
        b = subprocess.Popen([sys.executable, "-c", code])
        svc.update(pid=b.pid, restarts=1, oom_kills=1)
        write_state(state, {"svc": svc}, limits_enforced=False)
        time.sleep(0.2)
        row = s.sample_once()[0]
        s.stop()
        assert row["restarts"] == 1 and row["oom_kills"] == 1
        assert row["cpu_seconds"] >= cpu_a        # monotonic across the new pid
        df = pd.read_csv(out)
        assert len(df) == 3 and df.cpu_seconds.is_monotonic_increasing
        assert df.throttled_periods.isna().all()
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill(); p.wait()


# ---------------------------------------------------------------------------
# pure: collapsed stacks / top functions
# ---------------------------------------------------------------------------

STACKS_BEFORE = """\
<module> (app.py:1);handle (app.py:10);burn (burden.py:5) 60
<module> (app.py:1);handle (app.py:10);burn (burden.py:6) 20
<module> (app.py:1);handle (app.py:11);copy (burden.py:20) 15
<module> (app.py:1);handle (app.py:12) 5
"""
STACKS_AFTER = """\
<module> (app.py:1);handle (app.py:11);copy (burden.py:20) 10
<module> (app.py:1);handle (app.py:12) 20
<module> (app.py:1);handle (app.py:13);encode (enc.py:3) 20
"""


def test_parse_frame_and_collapsed_roundtrip():
    assert parse_frame("burn (service/burden.py:42)") == ("burn", "service/burden.py", 42)
    assert parse_frame("<lambda> (a (b).py:3)")[0] == "<lambda>"
    assert parse_frame("process 12:\"python\"") == ("process 12:\"python\"", "", None)
    st = parse_collapsed(STACKS_BEFORE + "garbage\n\n")
    assert sum(st.values()) == 100 and len(st) == 4
    assert parse_collapsed(format_collapsed(st)) == st


def test_top_functions_known_answer():
    df = top_functions(STACKS_BEFORE).set_index("function")
    assert df.loc["burn", "self_samples"] == 80 and df.loc["burn", "total_samples"] == 80
    assert df.loc["burn", "line"] == 5                      # hottest line
    assert df.loc["burn", "self_pct"] == pytest.approx(80.0)
    assert df.loc["handle", "self_samples"] == 5 and df.loc["handle", "total_samples"] == 100
    assert df.loc["<module>", "total_pct"] == pytest.approx(100.0)
    assert df.index[0] == "burn"
    by_line = top_functions(STACKS_BEFORE, by="line")
    assert len(by_line[by_line.function == "burn"]) == 2
    # recursion counts once per stack for total
    rec = top_functions(Counter({("f (a.py:1)", "f (a.py:2)", "f (a.py:3)"): 10})).iloc[0]
    assert rec.total_samples == 10 and rec.self_samples == 10


def test_diff_top_functions_known_answer():
    d = diff_top_functions(top_functions(STACKS_BEFORE), top_functions(STACKS_AFTER)).set_index("function")
    assert d.loc["burn", "status"] == "gone" and d.loc["burn", "delta_total_pct"] == pytest.approx(-80)
    assert d.loc["encode", "status"] == "new" and d.loc["encode", "after_total_pct"] == pytest.approx(40)
    assert d.loc["copy", "status"] == "grew"   # 15% -> 20% of samples
    assert d.loc["handle", "status"] == "same"
    assert d.loc["handle", "delta_self_pct"] == pytest.approx(35)
    assert d.index[0] == "burn"                # largest change first


def test_top_functions_and_diff_files(tmp_path):
    (tmp_path / "before").mkdir(); (tmp_path / "after").mkdir()
    (tmp_path / "before" / "collapsed.txt").write_text(STACKS_BEFORE + "thread (0x1) 4\n")
    (tmp_path / "after" / "collapsed.txt").write_text(STACKS_AFTER)
    write_top_functions(tmp_path / "before" / "collapsed.txt")
    write_top_functions(tmp_path / "after" / "collapsed.txt")
    top = pd.read_csv(tmp_path / "before" / "top_functions.csv")
    assert list(top.columns) == ["function", "file", "line", "self_samples", "total_samples",
                                 "self_pct", "total_pct"]
    d = write_diff(tmp_path / "before" / "top_functions.csv", tmp_path / "after" / "top_functions.csv",
                   tmp_path / "top_functions_diff.csv")
    saved = pd.read_csv(tmp_path / "top_functions_diff.csv", keep_default_na=False)
    assert len(saved) == len(d) == 6
    assert saved.set_index("function").loc["thread (0x1)", "status"] == "gone"   # frame without file


def test_sampler_reader_hook(tmp_path):
    state = tmp_path / "state.json"
    write_state(state, {"dock": {"pid": None, "restarts": 2, "cgroups": {}}}, limits_enforced=False)
    hook = lambda name, svc, st: Counters(mem_bytes=123, cpu_seconds=1.5, source="docker-stats")
    s = ResourceSampler(state, tmp_path / "r.csv", readers=[hook])
    row = s.sample_once()[0]
    s.stop()
    assert row["mem_bytes"] == 123 and row["cpu_seconds"] == 1.5 and row["restarts"] == 2
    assert s.overhead()["sources"] == {"dock": ["docker-stats"]}


def test_merge_speedscope_remaps_frames():
    a = {"profiles": [{"type": "sampled", "name": "t1", "samples": [[0, 1]], "weights": [1]}],
         "shared": {"frames": [{"name": "a"}, {"name": "b"}]}, "exporter": "py-spy@0.4.3"}
    b = {"profiles": [{"type": "sampled", "name": "t2", "samples": [[0]], "weights": [1]}],
         "shared": {"frames": [{"name": "c"}]}}
    m = merge_speedscope([(1, a), (2, b)])
    assert [f["name"] for f in m["shared"]["frames"]] == ["a", "b", "c"]
    assert m["profiles"][1]["samples"] == [[2]] and m["profiles"][1]["name"] == "pid 2: t2"


def test_explain_failure_lines():
    assert "SYS_PTRACE" in explain_failure(1, "Error: Permission denied (os error 13)")
    assert "gone" in explain_failure(1, "Error: Failed to get process executable name. "
                                        "Check that the process is running.")
    assert "not a Python" in explain_failure(1, "Error: Failed to find python version from target process")


def test_missing_pyspy_is_a_profiler_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProfilerError, match="py-spy not found.*fix"):
        find_pyspy()
    with pytest.raises(ProfilerError):
        PySpyRecorder(lambda: None, tmp_path).start()


# ---------------------------------------------------------------------------
# real service: py-spy + mprof across a restart, tracemalloc snapshots
# ---------------------------------------------------------------------------

def scrape_loop(port, stop_evt):
    while not stop_evt.is_set():
        try:
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        except requests.RequestException:
            time.sleep(0.05)


@pytest.mark.slow
def test_pyspy_and_mprof_follow_a_restart(tmp_path):
    port = free_port()
    state = tmp_path / "state.json"
    procs = []
    stop_evt = threading.Event()
    loader = threading.Thread(target=scrape_loop, args=(port, stop_evt), daemon=True)
    try:
        procs.append(start_service(tmp_path, ["--variant", "baseline"], port=port)[0])
        write_state(state, {"sensor-service": {"pid": procs[0].pid, "status": "running", "restarts": 0}})
        get_pid = pid_getter(state, "sensor-service")
        prof = tmp_path / "profile"
        rec = PySpyRecorder(get_pid, prof, rate=100, poll_s=0.2).start()
        mp = MprofRecorder(get_pid, prof / "mprof.dat", interval_s=0.05, chunk_s=0.5).start()
        loader.start()
        time.sleep(2.0)
        procs[0].kill()                      # like an OOM kill
        procs[0].wait()
        procs.append(start_service(tmp_path, ["--variant", "baseline"], port=port)[0])
        write_state(state, {"sensor-service": {"pid": procs[1].pid, "status": "running", "restarts": 1}})
        time.sleep(2.0)
        mpinfo = mp.stop()
        meta = rec.stop()
    finally:
        stop_evt.set()
        for p in procs:
            stop_process(p)
    assert meta["processes"] == 2 and meta["processes_with_samples"] == 2, meta
    assert {p["pid"] for p in meta["pids"]} == {procs[0].pid, procs[1].pid}
    assert all(p["samples"] > 20 for p in meta["pids"])
    assert meta["total_samples"] == sum(p["samples"] for p in meta["pids"])
    assert meta["errors"] == []
    for f in ("collapsed.txt", "speedscope.json", "flamegraph.svg", "top_functions.csv", "pyspy_meta.json"):
        assert (prof / f).stat().st_size > 0, f
    assert "<svg" in (prof / "flamegraph.svg").read_text()[:2000]
    sp = json.loads((prof / "speedscope.json").read_text())
    assert {p["name"].split(":")[0] for p in sp["profiles"]} == {f"pid {procs[0].pid}", f"pid {procs[1].pid}"}
    top = pd.read_csv(prof / "top_functions.csv")
    assert top.iloc[0]["function"] == "burn_cpu", top.head()
    assert top.iloc[0]["file"].endswith("burden.py") and top.iloc[0]["line"] > 0
    # mprof followed the restart and wrote a file mprof itself can read
    assert mpinfo["pids"] == [procs[0].pid, procs[1].pid]
    import mprof
    data = mprof.read_mprofile_file(str(prof / "mprof.dat"))
    assert len(data["mem_usage"]) > 20 and min(data["mem_usage"]) > 5
    assert data["cmd_line"].strip().endswith("--variant baseline")
    assert read_mprof(prof / "mprof.dat").t.is_monotonic_increasing


@pytest.mark.slow
def test_pyspy_on_a_non_python_pid_is_a_warning_not_a_crash(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        rec = PySpyRecorder(lambda: sleeper.pid, tmp_path, formats=("raw",), poll_s=0.1).start()
        time.sleep(1.0)
        meta = rec.stop()
    finally:
        sleeper.kill(); sleeper.wait()
    assert meta["total_samples"] == 0
    assert len(meta["errors"]) == 1 and "not a Python process" in meta["errors"][0]


@pytest.mark.slow
def test_scrape_capture_finds_the_leak_knob(tmp_path):
    p, port = start_service(tmp_path, SENSOR_TRACEMALLOC=1, SENSOR_LEAK_BYTES_PER_SCRAPE=2_000_000)
    url = f"http://127.0.0.1:{port}"
    stop_evt = threading.Event()
    loader = threading.Thread(target=scrape_loop, args=(port, stop_evt), daemon=True)
    try:
        loader.start()                                  # the profiler needs someone scraping
        peak, after = capture_scrape_allocations(url, tmp_path / "capture", timeout=20)
    finally:
        stop_evt.set()
        loader.join(10)
        stop_process(p)
    peak_df, retained = scrape_allocation_sites(peak, after, tmp_path / "out", top=5)
    burden = ROOT / "service" / "burden.py"
    leak_line = next(i for i, line in enumerate(burden.read_text().splitlines(), 1)
                     if '_leaked.append(b"L" * nbytes)' in line)
    top = retained.iloc[0]
    assert (top.file, top.line) == (str(burden), leak_line), retained
    assert top.size_bytes >= 1_900_000
    assert peak_df.iloc[0].size_bytes >= 1_900_000      # the leak is there at the peak too
    for stem in ("allocation_peak", "allocation_retained"):
        saved = pd.read_csv(tmp_path / "out" / f"{stem}.csv")
        assert list(saved.columns) == ["file", "line", "size_bytes", "count"]
        assert f"burden.py:{leak_line}" in (tmp_path / "out" / f"{stem}.txt").read_text()


@pytest.mark.slow
def test_scrape_capture_without_profile_mode_names_the_fix(tmp_path):
    p, port = start_service(tmp_path)
    try:
        with pytest.raises(ProfilerError, match="SENSOR_TRACEMALLOC=1"):
            capture_scrape_allocations(f"http://127.0.0.1:{port}", tmp_path / "x", timeout=5)
    finally:
        stop_process(p)


def test_memory_per_request_known_answer():
    # resting 100 MB, a scrape at t=10 peaks at +15 MB, one at t=20 at +5 MB
    t = [x / 10 for x in range(0, 300)]
    mem = [100 * MB] * len(t)
    for i, x in enumerate(t):
        if 10.0 <= x < 10.3:
            mem[i] = 115 * MB
        if 20.0 <= x < 20.1:
            mem[i] = 105 * MB
    tl = pd.DataFrame({"t": t, "mem_bytes": mem})
    req = pd.DataFrame({"start": [10.0, 20.0, 0.0], "latency_ms": [250.0, 50.0, 10.0]})
    out = memory_per_request(tl, req, rest_s=1.0)
    assert out.delta_bytes.iloc[0] == pytest.approx(15 * MB)
    assert out.delta_bytes.iloc[1] == pytest.approx(5 * MB)
    assert pd.isna(out.delta_bytes.iloc[2])       # no resting sample before t=0
    out2 = memory_per_request(tl, [10.0], window_s=0.2)
    assert out2.peak_bytes.iloc[0] == 115 * MB


# ---------------------------------------------------------------------------
# collectors: real VictoriaMetrics and Prometheus
# ---------------------------------------------------------------------------

METRICS_SERVER = textwrap.dedent("""
    import sys, time, random
    from prometheus_client import start_http_server, Histogram
    h = Histogram("sensor_scrape_duration_seconds", "scrape duration")
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    while True:
        h.observe(random.random() / 10)
        time.sleep(0.05)
""")


def test_parse_vm_flags_and_durations():
    flags = parse_vm_flags('-httpListenAddr="127.0.0.1:8428"\n-search.latencyOffset="1s"\n')
    assert flags["search.latencyOffset"] == "1s"
    assert parse_flag_duration("1m30s") == 90 and parse_flag_duration("500ms") == 0.5 and parse_flag_duration("5") == 5
    with pytest.raises(ValueError):
        parse_flag_duration("abc")


@pytest.mark.skipif(not Path("/usr/bin/victoria-metrics").exists(), reason="victoria-metrics not installed")
@pytest.mark.slow
def test_query_collectors_for_real(tmp_path):
    mport, vport, pport = free_port(), free_port(), free_port()
    cfg = tmp_path / "scrape.yml"
    cfg.write_text(textwrap.dedent(f"""
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: sensor
            static_configs:
              - targets: ["127.0.0.1:{mport}"]
    """))
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", METRICS_SERVER, str(mport)]))
        vm_log = open(tmp_path / "vm.log", "wb")
        procs.append(subprocess.Popen(
            ["/usr/bin/victoria-metrics", f"-storageDataPath={tmp_path / 'vm'}",
             f"-httpListenAddr=127.0.0.1:{vport}", f"-promscrape.config={cfg}",
             "-search.latencyOffset=1s"], stdout=vm_log, stderr=subprocess.STDOUT))
        prom = shutil.which("prometheus") or "/usr/bin/prometheus"
        have_prom = os.path.exists(prom)
        if have_prom:
            procs.append(subprocess.Popen(
                [prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'prom'}",
                 f"--web.listen-address=127.0.0.1:{pport}"],
                stdout=open(tmp_path / "prom.log", "wb"), stderr=subprocess.STDOUT))
        wait_http(f"http://127.0.0.1:{mport}/metrics")
        wait_http(f"http://127.0.0.1:{vport}/health", proc=procs[1])
        if have_prom:
            wait_http(f"http://127.0.0.1:{pport}/-/ready", proc=procs[2])
        # Prometheus applies discovered targets ~5 s after start: wait for the first samples
        for port, kind in [(vport, "victoriametrics")] + ([(pport, "prometheus")] if have_prom else []):
            wait_until(lambda u=f"http://127.0.0.1:{port}", k=kind: newest_sample_time(u, kind=k) is not None, 20,
                       f"{kind}'s first sample of the metrics server", interval=0.2)
        start = time.time()
        time.sleep(3.0)
        end = time.time()
        desc = query_collector(f"http://127.0.0.1:{vport}", tmp_path / "vm-out", start, end, step=1,
                               kind="victoriametrics", wait_timeout_s=15)
        if have_prom:
            pdesc = query_collector(f"http://127.0.0.1:{pport}", tmp_path / "prom-out", start, end,
                                    step="1s", kind="prometheus", wait_timeout_s=15)
    finally:
        for p in reversed(procs):
            stop_process(p, grace=10)
    assert desc["wait"]["ok"] and desc["wait"]["latency_offset_s"] == 1.0
    assert desc["wait"]["newest_sample"] >= end and desc["warnings"] == []
    for name in ("scrape_duration_buckets", "up", "collector_scrape_duration", "process_resident_memory"):
        q = next(e for e in desc["queries"] if e["name"] == name)
        assert q["status"] == "success" and q["series"] >= 1, q
        doc = json.loads((tmp_path / "vm-out" / f"{name}.json").read_text())
        assert doc["status"] == "success"
    up = json.loads((tmp_path / "vm-out" / "up.json").read_text())["data"]["result"][0]["values"]
    assert float(up[-1][0]) >= end - 1 and up[-1][1] == "1"
    assert json.loads((tmp_path / "vm-out" / "queries.json").read_text())["collector"]["kind"] == "victoriametrics"
    if have_prom:
        assert pdesc["wait"]["ok"], pdesc
        assert all(e["series"] >= 1 for e in pdesc["queries"]), \
            [(e["name"], e["series"], (tmp_path / "prom-out" / e["file"]).read_text()[:300]) for e in pdesc["queries"]]


def test_a_collector_that_refuses_connections_is_an_error_at_once_not_after_its_offset():
    """A killed collector's port refuses: the query gives up at once with one line, instead of
    waiting out VictoriaMetrics' default 30 s latency offset for answers that cannot come."""
    from profiling.collector_queries import CollectorError, wait_until_visible
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(CollectorError, match=r"not reachable.*fix:") as e:
        wait_until_visible(url, end=time.time(), kind="victoriametrics")
    assert "\n" not in str(e.value) and time.monotonic() - t0 < 10
