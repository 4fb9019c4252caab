"""loadtests/: real Locust against the real sensor service on loopback."""
from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from loadtests import samples as S
from loadtests.runner import LoadError, check_target, read_part, run_load
from loadtests.samples import SAMPLE_COLUMNS
from loadtests.spec import LoadSpec
from tests.conftest import free_port, running_service, start_service, stop_process

pytestmark = [pytest.mark.slow,  # real Locust against a real service
              pytest.mark.xdist_group("loadtests")]  # one service for the module (make test)

ROOT = Path(__file__).resolve().parent.parent


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The real optimized sensor service on a free loopback port."""
    with running_service(tmp_path_factory.mktemp("service"), ["--variant", "optimized"]) as (_, port):
        yield f"http://127.0.0.1:{port}"


def _steady_counts(res) -> dict:
    """{endpoint: {intended, sent, completed, ok}} in the steady window, as the reports count
    them (reports.figures.request_counts_by_endpoint: loadtests.samples.counts over requests.csv.gz)."""
    return S.counts(S.steady(S.read_samples(res.requests_csv), res.steady_start, res.steady_end))


def _locust_totals(locust_dir: Path) -> pd.DataFrame:
    return pd.read_csv(locust_dir / "locust_stats.csv").set_index("Name")


def test_short_run_real_service(service, tmp_path):
    progress = []
    scrapers, scrape_rate, warmup, duration = 2, 2.0, 1.0, 4.0
    res = run_load(service, tmp_path, LoadSpec(duration_s=duration, warmup_s=warmup, scrapers=scrapers,
                                               scrape_rate=scrape_rate, sensor_users=3, sensor_rate=5.0),
                   on_progress=progress.append)
    assert not _alive(res.pids), "locust processes left running"
    assert "Uncaught exception" not in res.log_path.read_text()   # every event handler ran clean
    assert res.requests_csv == tmp_path / "requests.csv.gz" and res.requests_csv.exists()
    assert (tmp_path / "locust" / "locust_stats.csv").exists() and (tmp_path / "locust" / "report.html").exists()
    assert not list((tmp_path / "locust").glob("requests.part-*"))

    with gzip.open(res.requests_csv, "rt") as fh:
        assert fh.readline().strip() == ",".join(SAMPLE_COLUMNS)
    df = S.read_samples(res.requests_csv)
    assert tuple(pd.read_csv(res.requests_csv).columns) == SAMPLE_COLUMNS
    assert len(df) == res.samples > 0
    assert df["intended"].is_monotonic_increasing
    assert (df["sent"] == 1).all()  # an idle service: every intended request was sent
    assert set(df["name"]) == {"/metrics", "/sensor"}
    assert set(df["ok"]) <= {0, 1}
    assert ((df["ok"] == 1) == df["status_code"].between(200, 399)).all()
    assert set(df["status_code"]) <= {200, 500}
    assert (df.loc[df["name"] == "/metrics", "bytes"] > 0).all()

    # raw samples are complete: same counts as Locust's own statistics
    totals = _locust_totals(res.locust_dir)
    assert len(df) == totals.loc["Aggregated", "Request Count"]
    assert (df["ok"] == 0).sum() == totals.loc["Aggregated", "Failure Count"]
    # Locust exits 1 exactly when it counted a failure (the service's simulated 500s), else 0
    assert res.exit_code == int(totals.loc["Aggregated", "Failure Count"] > 0)
    for name, n in df["name"].value_counts().items():
        assert totals.loc[name, "Request Count"] == n

    # latencies are Locust's unrounded floats, not its rounded statistics
    assert df["latency_ms"].dtype == float and (df["latency_ms"] > 0).all()
    assert (df["latency_ms"] % 1 != 0).mean() > 0.9

    # open loop: the schedule fixes the counts exactly (users x rate x window)
    metrics = df[df["name"] == "/metrics"]
    assert len(metrics) == scrapers * scrape_rate * (warmup + duration)
    counts = _steady_counts(res)
    assert counts["/metrics"] == {"intended": 8 * scrapers, "sent": 8 * scrapers,
                                  "completed": 8 * scrapers, "ok": 8 * scrapers}
    assert counts["/sensor"]["intended"] == counts["/sensor"]["sent"] == 3 * 5 * 4
    # each scraper keeps its own phase: its intended times are one interval apart
    assert len(res.schedule) == 5 and len({round(u["phase_s"], 6) for u in res.schedule}) == 5
    for u in res.schedule:
        assert 0 <= u["phase_s"] < u["interval_s"]
    # sent on time: the lateness of the actual start stays small on an idle service
    assert ((df["start"] - df["intended"]).median()) < 0.02

    # steady window: warm-up excluded, duration long, samples inside the run
    assert res.steady_start == pytest.approx(res.started_at + warmup)
    assert res.steady_end == pytest.approx(res.steady_start + duration)
    assert df["intended"].min() >= res.started_at
    assert df["intended"].max() < res.steady_end
    assert res.steady_samples == len(S.steady(df, res.steady_start, res.steady_end))
    assert 0 < res.steady_samples < res.samples

    assert res.loadgen_cpu_seconds > 0
    assert 0 < res.loadgen_cpu_s_per_request < 0.1
    assert isinstance(res.loadgen_bottleneck, bool)
    assert sum(res.status_codes.values()) == res.samples
    saved = json.loads((res.locust_dir / "load_result.json").read_text())
    assert saved["samples"] == res.samples and saved["interrupted"] is False
    assert "counts" not in saved   # the reports count from requests.csv.gz, nothing stores them
    assert saved["spec"] == {"duration_s": duration, "warmup_s": warmup, "scrapers": scrapers,
                             "scrape_rate": scrape_rate, "sensor_users": 3, "sensor_rate": 5.0, "workers": 0,
                             "request_timeout": 10.0}

    phases = [p["phase"] for p in progress]
    assert "steady" in phases and len(progress) >= 3
    assert all({"elapsed", "remaining", "phase", "rps", "p95_ms"} <= p.keys() for p in progress)
    assert any(p["rps"] > 0 and p["p95_ms"] for p in progress)


def test_workers_mode_merges_parts(service, tmp_path):
    res = run_load(service, tmp_path, LoadSpec(duration_s=2.0, warmup_s=1.0, scrapers=1, scrape_rate=2.0,
                                               sensor_users=3, sensor_rate=5.0, workers=2))
    assert not _alive(res.pids)
    assert len(res.pids) >= 3  # master + 2 workers
    filled = {name: n for name, n in res.parts.items() if n > 0}
    assert len(filled) == 2, res.parts  # one part per worker, both with samples
    df = S.read_samples(res.requests_csv)
    assert len(df) == res.samples == sum(filled.values())
    assert df["intended"].is_monotonic_increasing
    assert len(df) == _locust_totals(res.locust_dir).loc["Aggregated", "Request Count"]
    assert len(res.schedule) == 4 and len({(u["user"], u["slot"]) for u in res.schedule}) == 4
    assert set(df["name"]) == {"/metrics", "/sensor"}


def test_unreachable_target_is_one_clear_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LoadError) as err:
        run_load(url, tmp_path, LoadSpec(duration_s=1, warmup_s=0))
    msg = str(err.value)
    assert url in msg and "\n" not in msg and "TARGET=" in msg
    assert not (tmp_path / "locust").exists()  # nothing started
    with pytest.raises(LoadError):
        check_target(url, timeout=0.5)


def test_locustfile_run_by_hand_refuses_garbage_with_one_line(service, tmp_path):
    """Run with locust directly (no runner), a bad option is one line naming it, exit 2,
    before any user starts (after Locust's own "Starting Locust" log line)."""
    out = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
                          "--headless", "-H", service, "-u", "1", "-r", "1", "-t", "2s", "--scrape-rate", "0",
                          "--samples-dir", str(tmp_path), "ScraperUser"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.strip().splitlines() if "/INFO/locust.main: Starting Locust" not in line]
    assert lines == ["locustfile: --scrape-rate='0' must be > 0: set it to a number > 0"], out.stderr
    assert not list(tmp_path.glob("requests.part-*"))


def test_truncated_part_keeps_complete_members(tmp_path):
    part = tmp_path / "requests.part-1.csv.gz"
    header = gzip.compress((",".join(SAMPLE_COLUMNS) + "\n").encode())
    rows = gzip.compress(b"1.5,1.5,/metrics,2.25,1,10,200,1\n2.5,2.5,/sensor,3.125,0,0,500,1\n"
                         b"3.0,,/metrics,,0,0,0,0\n")
    tail = gzip.compress(b"3.5,3.5,/sensor,1.0,1,5,200,1\n")
    part.write_bytes(header + rows + tail[: len(tail) // 2])
    df = read_part(part)
    assert list(df["status_code"]) == [200, 500, 0] and list(df["sent"]) == [1, 1, 0]
    assert df["latency_ms"].iloc[:2].tolist() == [2.25, 3.125] and df["latency_ms"].isna().iloc[2]


def test_interrupted_run_stops_locust_and_keeps_samples(service, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "edgebench", "load", "--target", service, "--out", str(out),
                             "--duration", "60", "--warmup", "1", "--scrapers", "1", "--sensor-users", "3",
                             "--workers", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # wait until samples reach the disk, then Ctrl-C the runner
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            parts = list((out / "locust").glob("requests.part-*.csv.gz"))
            if sum(p.stat().st_size for p in parts) > 200 and len(read_part_safe(parts)) > 10:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("no samples written within 20 s")
        locust_pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(locust_pids) >= 3
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=25)
    finally:
        stop_process(proc)
    assert proc.returncode == 130, err
    assert "interrupted" in err.decode()
    assert not _alive(locust_pids), "locust processes left running after Ctrl-C"
    df = S.read_samples(out / "requests.csv.gz")
    assert len(df) > 10
    result = json.loads((out / "locust" / "load_result.json").read_text())
    assert result["interrupted"] is True and result["samples"] == len(df)
    assert result["steady_end"] < result["steady_start"] + 60
    assert not list((out / "locust").glob("requests.part-*"))


def read_part_safe(parts) -> pd.DataFrame:
    frames = [read_part(p) for p in parts]
    return pd.concat(frames) if frames else pd.DataFrame()


# ---------------------------------------------------------------------------
# loadtests.samples: pure functions on constructed data
# ---------------------------------------------------------------------------
def _constructed() -> pd.DataFrame:
    nan = float("nan")
    return S.normalise(pd.DataFrame({
        "intended": [10.0, 10.5, 11.0, 11.5, 12.0, 12.5],
        "start": [10.0, 10.6, nan, 11.5, 12.0, 12.5],
        "name": ["/metrics", "/metrics", "/metrics", "/sensor", "/sensor", "/sensor"],
        "latency_ms": [5.0, 10.0, nan, 1.0, 10000.0, 2.0],
        "ok": [1, 1, 0, 0, 0, 1],
        "bytes": [100, 100, 0, 0, 0, 80],
        "status_code": [200, 200, 0, 500, 0, 200],
        "sent": [1, 1, 0, 1, 1, 1]}))


def test_latency_from_intended_adds_the_sending_delay():
    lat = S.latency_from_intended_ms(_constructed())
    assert lat.iloc[0] == pytest.approx(5.0)
    assert lat.iloc[1] == pytest.approx(110.0)  # sent 100 ms late + 10 ms service time
    assert pd.isna(lat.iloc[2])                 # never sent: counted, not timed


def test_counts_per_endpoint():
    c = S.counts(_constructed())
    assert c["/metrics"] == {"intended": 3, "sent": 2, "completed": 2, "ok": 2}
    # a 500 is completed but not ok; a timeout (status 0) is sent but not completed
    assert c["/sensor"] == {"intended": 3, "sent": 3, "completed": 2, "ok": 1}


def test_steady_window_is_by_intended_time():
    df = _constructed()
    window = S.steady(df, 10.5, 12.0)
    assert list(window["intended"]) == [10.5, 11.0, 11.5]  # [start, end): 12.0 excluded
    assert S.counts(window)["/metrics"]["sent"] == 1


def test_old_files_read_as_sent_on_time(tmp_path):
    old = tmp_path / "requests.csv.gz"
    pd.DataFrame({"start": [2.0, 1.0], "name": ["/metrics", "/sensor"], "latency_ms": [3.5, 1.25],
                  "ok": [1, 0], "bytes": [10, 0], "status_code": [200, 500]}).to_csv(old, index=False)
    df = S.read_samples(old)
    assert tuple(df.columns) == SAMPLE_COLUMNS
    assert list(df["intended"]) == [1.0, 2.0] == list(df["start"])  # sorted by intended
    assert list(df["sent"]) == [1, 1]
    assert list(S.latency_from_intended_ms(df)) == [1.25, 3.5]
    assert df.dtypes.to_dict() == {c: np.dtype(t) for c, t in S.SAMPLE_DTYPES.items()}


def test_unreadable_samples_are_one_line(tmp_path):
    bad = tmp_path / "requests.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(S.SampleFormatError) as err:
        S.read_samples(bad)
    assert "start/latency_ms" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "corrupt.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(S.SampleFormatError, match="unreadable"):
        S.read_samples(tmp_path / "corrupt.csv.gz")
    with pytest.raises(S.SampleFormatError, match="not found"):
        S.read_samples(tmp_path / "missing.csv.gz")
    assert S.percentile_ms(pd.Series([float("nan")]), 99) is None
    assert S.percentile_ms(pd.Series([1.0, 2.0, 3.0, float("nan")]), 50) == 2.0


# ---------------------------------------------------------------------------
# real service: a stall, a killed parent, an independent client
# ---------------------------------------------------------------------------
def test_stall_shows_in_latency_from_intended_and_skipped_scrapes(tmp_path):
    """SIGSTOP the service for 1 s mid-window: open loop keeps the 1 s in the figures."""
    import threading
    proc, port = start_service(tmp_path, SENSOR_VARIANT="optimized", SENSOR_SEED="1")
    url = f"http://127.0.0.1:{port}"
    warmup, duration = 1.0, 6.0
    stalled = {}

    def stall():
        start_file = tmp_path / "run" / "locust" / "test_start.json"
        while not start_file.exists():  # the window's origin, written when the test starts
            if proc.poll() is not None:
                return
            time.sleep(0.05)
        t0 = json.loads(start_file.read_text())["test_start"]
        time.sleep(max(0.0, t0 + warmup + duration / 2 - 0.5 - time.time()))
        proc.send_signal(signal.SIGSTOP)
        stalled["at"] = time.time()
        try:
            time.sleep(1.0)  # the stall itself
        finally:
            proc.send_signal(signal.SIGCONT)
            stalled["until"] = time.time()

    staller = threading.Thread(target=stall, daemon=True)
    try:
        staller.start()
        res = run_load(url, tmp_path / "run", LoadSpec(duration_s=duration, warmup_s=warmup, scrapers=2,
                                                       scrape_rate=4.0, sensor_users=2, sensor_rate=10.0))
        staller.join(5)
    finally:
        proc.send_signal(signal.SIGCONT)
        stop_process(proc)
    assert res.steady_start < stalled["at"] < stalled["until"] < res.steady_end
    df = S.steady(S.read_samples(res.requests_csv), res.steady_start, res.steady_end)
    corrected_p99 = S.percentile_ms(S.latency_from_intended_ms(df), 99)
    service_p99 = S.percentile_ms(df["latency_ms"], 99)
    # requests due during the stall wait from their intended time to its end: a ramp from
    # 1 s down to 0, so the longest wait is the full second and the p99 sits at its top
    corrected = S.latency_from_intended_ms(df)
    due = df[(df["intended"] >= stalled["at"]) & (df["intended"] < stalled["until"]) & (df["sent"] == 1)]
    assert len(due) >= 10
    # no answer can come before SIGCONT: each waited at least until the stall's end
    assert (corrected[due.index] >= (stalled["until"] - due["intended"]) * 1000.0 - 10.0).all()
    assert corrected_p99 >= 900.0, (corrected_p99, service_p99)
    assert service_p99 <= corrected_p99
    # scrapes due during the stall were skipped (interval 0.25 s < 1 s) and counted
    counts = _steady_counts(res)
    m = counts["/metrics"]
    assert m["intended"] == 2 * 4 * duration and m["sent"] < m["intended"]
    assert m["intended"] - m["sent"] >= 4  # about 1 s / 0.25 s per scraper, generously
    # sensor clients are open loop: everything due was still sent on time, and answered
    s = counts["/sensor"]
    assert s["intended"] == s["sent"] == s["completed"] == 2 * 10 * duration
    during = df[(df["name"] == "/sensor") & (df["intended"] > stalled["at"] + 0.1)
                & (df["intended"] < stalled["until"] - 0.1)]
    assert len(during) >= 10 and (during["start"] - during["intended"]).max() < 0.1


def test_locust_dies_with_the_process_that_ran_it(service, tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from pathlib import Path; from loadtests.runner import run_load; "
            "from loadtests.spec import LoadSpec; "
            f"run_load({service!r}, Path({str(out)!r}), LoadSpec(duration_s=60, warmup_s=0, scrapers=1, "
            "sensor_users=2, workers=2))")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (out / "locust" / "test_start.json").exists():
            assert parent.poll() is None and time.monotonic() < deadline, "load did not start"
            time.sleep(0.1)
        locust = [c.pid for c in psutil.Process(parent.pid).children(recursive=True)]
        assert len(locust) >= 3  # master + 2 workers
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + 5
        while _alive(locust) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _alive(locust)
    finally:
        stop_process(parent)
    for pid in left:  # do not leave them behind even when the test fails
        psutil.Process(pid).kill()
    assert not left, "locust outlived the orchestrator"


@pytest.mark.alone   # beside other tests, Locust's p95 rose 0.95 ms above the probes' (bound 0.5 ms)
def test_metrics_latency_agrees_with_an_independent_client(service, tmp_path):
    """Locust's /metrics p50/p95 within 10 % (or 0.5 ms) of loadtests.probe, each at
    4 scrapes/s (4 scrapers at 1/s; the probe at 4/s) on one service.

    Locust and two probes run at the same time, their requests interleaved (a trio):
    whatever else the shared machine does reaches every client alike, which back-to-back
    blocks cannot guarantee. On a busy 2-core machine a 2 ms request's p95 is set by when
    the client itself gets a core back, and two identical probes disagree by that much:
    the p95 bound is then widened to that measured A/A spread, never narrowed."""
    scrapers, rate, seconds = 4, 1.0, 40.0
    probes = []
    for i in range(2):
        out = tmp_path / f"probe{i}.csv.gz"
        cmd = [sys.executable, "-m", "loadtests.probe", "--target", service, "--path", "/metrics",
               "--rate", str(scrapers * rate), "--duration", str(seconds + 6), "--out", str(out)]
        probes.append((subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out))
    try:
        res = run_load(service, tmp_path / "locust", LoadSpec(duration_s=seconds, warmup_s=1.0, scrapers=scrapers,
                                                              scrape_rate=rate, sensor_users=0))
        for proc, _ in probes:
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
    finally:
        for proc, _ in probes:
            stop_process(proc)
    ours = S.steady(S.read_samples(res.requests_csv), res.steady_start, res.steady_end)
    theirs = [S.steady(S.read_samples(out), res.steady_start, res.steady_end) for _, out in probes]
    assert _steady_counts(res)["/metrics"]["ok"] == scrapers * rate * seconds
    for t in theirs:
        assert len(t) >= 0.95 * scrapers * rate * seconds and (t["ok"] == 1).all()
    assert res.loadgen_cpu_s_per_request is not None and 0 < res.loadgen_cpu_s_per_request < 0.05
    probe_all = pd.concat(theirs)
    for q in (50, 95):
        a, b = S.percentile_ms(ours["latency_ms"], q), S.percentile_ms(probe_all["latency_ms"], q)
        a_a = abs(S.percentile_ms(theirs[0]["latency_ms"], q) - S.percentile_ms(theirs[1]["latency_ms"], q))
        bound = max(0.10 * b, 0.5) if q == 50 else max(0.10 * b, 0.5, a_a)
        assert abs(a - b) <= bound, f"p{q}: locust {a:.2f} ms vs probes {b:.2f} ms (probe A/A spread {a_a:.2f} ms)"


def test_locust_start_timeout_from_the_environment(monkeypatch):
    """A slow machine (the cgroup v2 guest) gives Locust minutes to start; bad values are one line."""
    from loadtests.runner import START_TIMEOUT_ENV, START_TIMEOUT_S, LoadError, _start_timeout
    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    assert _start_timeout() == START_TIMEOUT_S == 30.0
    monkeypatch.setenv(START_TIMEOUT_ENV, "300")
    assert _start_timeout() == 300.0
    for bad in ("soon", "0", "-5", "inf", "nan"):
        monkeypatch.setenv(START_TIMEOUT_ENV, bad)
        with pytest.raises(LoadError, match=rf"^{START_TIMEOUT_ENV}='{bad}' (is not a (finite )?number|must be > 0 s)"):
            _start_timeout()
