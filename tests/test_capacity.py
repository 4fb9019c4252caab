"""Capacity: the knee, capacity, fits and limits on constructed steps (pure), the refusals
before anything starts, the section's sentences, and a short real sweep end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.capacity.params import LOADGEN_MAX_RPS, build_capacity_params
from edgebench.scenarios import ParameterError
from reports import capacity_analysis as A
from stack.state import read_state

ROOT = Path(__file__).resolve().parent.parent


def load_step(rate, p99, failed=0, status="ok", bottleneck=False, variant="optimized", axis="scrape", **kw):
    return {"sweep": "load", "variant": variant, "axis": axis, "scrape_rate": rate, "sensor_rate": 4.0,
            "scrape_p99_ms": p99, "failed_scrapes": failed, "status": status, "oom_kills": 0,
            "loadgen_bottleneck": bottleneck, "dir": f"load/{variant}-s{rate:g}", **kw}


def test_slo_needs_p99_under_one_second_and_no_failed_scrape():
    assert A.meets_slo(load_step(10, 999.0))
    assert "p99" in A.slo_problem(load_step(10, 1000.0))
    assert A.slo_problem(load_step(10, 5.0, failed=1)) == "1 failed or omitted scrape"
    assert A.slo_problem(load_step(10, 5.0, status="oom")) == "OOM-killed"
    assert "not measured" in A.slo_problem(load_step(10, None))
    assert "none of the scrapes answered (8 failed" in A.slo_problem(load_step(10, None, failed=8))


def test_capacity_is_the_highest_step_before_the_first_failure():
    steps = [load_step(50, 3.0), load_step(100, 4.0), load_step(200, 9.0), load_step(400, 30.0, failed=5),
             load_step(800, 3.0)]   # a pass above a failure does not count: the ladder broke at 400
    cap = A.sustainable_capacity(steps)
    assert cap["rate"] == 200 and not cap["lower_bound"]
    assert "5 failed" in cap["limited_by"]


def test_a_load_generator_bottleneck_is_never_the_service_capacity():
    steps = [load_step(50, 3.0), load_step(100, 4.0), load_step(200, 900.0, failed=50, bottleneck=True)]
    cap = A.sustainable_capacity(steps)
    assert cap["rate"] == 100 and cap["lower_bound"] and cap["limited_by"] == "load generator"
    only = A.sustainable_capacity([load_step(50, 3.0, bottleneck=True)])
    assert only["rate"] is None


def test_a_step_that_meets_the_slo_with_its_cpu_quota_used_up_is_the_capacity():
    steps = [load_step(1, 300.0, throttled_ratio=0.2), load_step(2, 600.0, throttled_ratio=0.95)]
    cap = A.sustainable_capacity(steps)
    assert cap["rate"] == 2 and not cap["lower_bound"] and "95 %" in cap["limited_by"].replace("%", " %")
    assert A.saturation(steps[1]) and A.saturation(steps[0]) is None


def test_capacity_when_every_step_passes_is_a_lower_bound():
    cap = A.sustainable_capacity([load_step(1, 300.0), load_step(2, 400.0)])
    assert cap["rate"] == 2 and cap["lower_bound"]


def test_knee_is_the_last_step_within_twice_the_lightest_p99_or_ten_ms_above_it():
    steps = [load_step(50, 2.0), load_step(100, 3.9), load_step(200, 11.9), load_step(400, 60.0)]
    knee = A.latency_knee(steps)
    assert knee["rate"] == 200 and knee["beyond"] == 400 and knee["reference_p99_ms"] == 2.0
    slow = [load_step(1, 200.0), load_step(2, 390.0), load_step(4, 410.0)]   # twice 200 ms is the bound
    assert A.latency_knee(slow) == {"rate": 2, "reference_p99_ms": 200.0, "factor": 2.0,
                                    "min_rise_ms": 10.0, "beyond": 4}
    assert A.latency_knee([load_step(5, 2.0, bottleneck=True)])["rate"] is None


def test_linear_fit_recovers_a_known_cost_per_series():
    xs = [10, 100, 1000, 10000, 30000]
    ys = [0.8 + 2.5e-3 * x for x in xs]           # 2.5 µs of CPU per series
    fit = A.linear_fit(xs, ys)
    assert fit["slope"] == pytest.approx(2.5e-3) and fit["r2"] == pytest.approx(1.0)
    assert A.linear_fit([1, 2], [1, 2]) is None   # two points say nothing about a fit
    steps = [{"series": x, "cpu_ms_per_scrape": y, "exposition_bytes": 4000 + 90 * x,
              "mem_rest_mb": 20 + x * 500 / 2**20, "status": "ok"} for x, y in zip(xs, ys)]
    steps.append({"series": 100000, "status": "oom", "cpu_ms_per_scrape": 99.0})  # not fitted
    c = A.series_costs(steps)
    assert c["cpu_us_per_series"]["per_series"] == pytest.approx(2.5)
    assert c["exposition_bytes_per_series"]["per_series"] == pytest.approx(90)
    assert c["mem_bytes_per_series"]["per_series"] == pytest.approx(500)
    assert c["cpu_us_per_series"]["n"] == 5


def test_largest_series_stops_at_oom_or_the_memory_limit():
    s = [{"series": 10, "status": "ok", "scrape_p99_ms": 3, "failed_scrapes": 0, "mem_peak_mb": 21},
         {"series": 10000, "status": "ok", "scrape_p99_ms": 30, "failed_scrapes": 0, "mem_peak_mb": 49.9},
         {"series": 30000, "status": "ok", "scrape_p99_ms": 90, "failed_scrapes": 0, "mem_peak_mb": 50.0},
         {"series": 100000, "status": "oom", "oom_kills": 1}]
    big = A.largest_series_within(s, 50.0)
    assert big["series"] == 10000 and big["first_failing"] == 30000 and "limit" in big["why"]
    big = A.largest_series_within(s[:2] + s[3:], 50.0)
    assert big["first_failing"] == 100000 and big["why"] == "OOM-killed"


@pytest.mark.parametrize("kw, text", [
    ({"steps": ""}, "empty step list"),
    ({"steps": "50,abc"}, "not a rate"),
    ({"steps": "0"}, "above 0"),
    ({"steps": str(LOADGEN_MAX_RPS * 2)}, "load generator"),
    ({"sensor_steps": str(LOADGEN_MAX_RPS)}, "load generator"),
    ({"max_series": "5"}, "at least 10"),
    ({"max_series": "many"}, "whole number"),
    ({"sweeps": "load,disk"}, "choose from"),
    ({"variants": "fast"}, "choose from"),
    ({"duration": "1"}, "at least 2 s"),
])
def test_impossible_sweeps_are_refused_before_anything_starts(kw, text):
    with pytest.raises(ParameterError, match=text):
        build_capacity_params(**kw)


def test_ladders_follow_max_series_and_the_estimate_stays_within_twelve_minutes():
    p = build_capacity_params(max_series="50000")
    assert p.series_steps[-1] == 50000 and all(n <= 50000 for n in p.series_steps)
    default = build_capacity_params()
    # the estimate counts every step of every ladder (the most a run can take): the default
    # must fit the 12 minutes the docs promise even if no ladder stops early
    assert 0 < default.estimate_s() <= 12 * 60
    assert build_capacity_params(steps="50,100").scrape_steps["baseline"] == (50.0, 100.0)


def test_capacity_sentences_name_the_figures_an_engineer_needs():
    from reports.capacity import capacity_blocks, to_markdown_text
    from reports.capacity_analysis import analyse
    doc = {"run_id": "x-capacity", "status": "complete", "limits_mb": {"sensor-service": 50.0,
                                                                        "victoriametrics": 150.0},
           "load": {"steps": [load_step(50, 3.0, cpu_cores=0.05, mem_peak_mb=21.0),
                              load_step(100, 4.0, cpu_cores=0.1, mem_peak_mb=21.5),
                              load_step(200, 1500.0, failed=3)]},
           "series": {"steps": [{"series": n, "status": "ok", "cpu_ms_per_scrape": 0.8 + 2e-3 * n,
                                 "exposition_bytes": 4000 + 80 * n, "mem_rest_mb": 20 + n * 400 / 2**20,
                                 "scrape_p99_ms": 5.0, "failed_scrapes": 0, "mem_peak_mb": 25.0}
                                for n in (10, 1000, 10000)] + [{"series": 100000, "status": "oom", "oom_kills": 1}]},
           "collectors": {"steps": [{"sweep": "collectors", "collector": c, "series": 10000, "status": "ok",
                                     "mem_steady_mb": m, "mem_peak_mb": m + 5} for c, m in
                                    (("victoriametrics", 40.0), ("prometheus", 100.0))]}}
    doc["analysis"] = analyse(doc, doc["limits_mb"])
    text = to_markdown_text(capacity_blocks(doc))
    assert "sustains 100 scrapes/s beside 4 /sensor requests/s" in text
    assert "at 200 scrapes/s: scrape p99 1500 ms >= 1000 ms" in text
    assert "Each extra 1,000 series costs the optimized service 2.00 ms of CPU per scrape" in text
    assert "80.0 KB of exposition" in text
    assert "at 100,000 series: OOM-killed" in text
    # a capacity.json from before the collector sweep was retired (the committed example's)
    # still renders, without it: `edgebench collectors` answers that question
    assert "VictoriaMetrics" not in text and "Collector sweep" not in text


@pytest.mark.slow
def test_a_short_real_sweep_end_to_end(tmp_path):
    """Two load steps of the optimized service on fresh stacks: capacity.json, the graph,
    the report; results/latest is left alone."""
    out = subprocess.run([sys.executable, "-m", "edgebench", "capacity", "--sweeps", "load",
                          "--variants", "optimized", "--steps", "20,40", "--sensor-steps", "4",
                          "--duration", "3", "--results", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    run = next(tmp_path.glob("*-capacity"))
    doc = json.loads((run / "capacity.json").read_text())
    steps = doc["load"]["steps"]
    assert [s["scrape_rate"] for s in steps if s["axis"] == "scrape"] == [20.0, 40.0]
    for s in steps:
        assert s["status"] == "ok" and s["scrapes_intended"] > 0 and s["scrape_p99_ms"] > 0
        assert s["cpu_cores"] > 0 and s["mem_peak_mb"] > 5
        assert (run / s["dir"] / "scenario.json").exists()
    cap = doc["analysis"]["load"]["optimized"]["scrape_capacity"]
    # Whether 20 and 40 scrapes/s meet the SLO is a measurement (docs/capacity.md: 200/s on a
    # quiet machine), not a pass/fail: on a busy machine the scraper skips a scrape due while the
    # last one runs. What must hold is the verdict's consistency with the steps it was drawn
    # from, the failing step named in the report, and a generous sanity bound on the answers.
    scrape_steps = [s for s in steps if s["axis"] == "scrape"]
    for s in scrape_steps:
        assert s["scrapes_ok"] >= 0.8 * s["scrapes_intended"], s
    passing = 0
    while passing < len(scrape_steps) and A.meets_slo(scrape_steps[passing]) \
            and not scrape_steps[passing].get("loadgen_bottleneck"):
        passing += 1
    assert cap["rate"] == (scrape_steps[passing - 1]["scrape_rate"] if passing else None), (cap, scrape_steps)
    report = (run / "report" / "CAPACITY.md").read_text()
    for s in scrape_steps:
        verdict = "load generator was the bottleneck" if s.get("loadgen_bottleneck") else \
            A.slo_problem(s) or "meets the SLO"
        assert verdict in report
    assert (run / "report" / "capacity_load.png").stat().st_size > 10_000
    assert "## Load sweep" in (run / "report" / "CAPACITY.md").read_text().replace("### ", "## ")
    assert not (tmp_path / "latest").exists()
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def _capacity_run(root: Path, run_id: str, status: str = "complete") -> Path:
    from reports.capacity_analysis import analyse
    d = root / run_id
    d.mkdir(parents=True)
    doc = {"version": 1, "run_id": run_id, "status": status,
           "limits_mb": {"sensor-service": 50.0, "victoriametrics": 150.0},
           "load": {"steps": [load_step(50, 3.0, cpu_cores=0.05, mem_peak_mb=21.0), load_step(100, 1200.0)]},
           "series": {"steps": []}}
    doc["analysis"] = analyse(doc, doc["limits_mb"])
    (d / "capacity.json").write_text(json.dumps(doc))
    (d / "manifest.json").write_text(json.dumps({"run_id": run_id, "status": status,
                                                 "machine": {"cpu_model": "test CPU", "cores": 2}}))
    return d


@pytest.mark.slow  # writes the whole example, every graph drawn
def test_the_example_carries_the_newest_complete_steps_and_capacity_runs_and_keeps_them_without_one(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures_results import build_run

    from edgebench.example import write_example
    run_dir, _ = build_run(tmp_path / "results")
    _capacity_run(tmp_path / "results", "20240101T000001Z-capacity")
    _capacity_run(tmp_path / "results", "20240101T000002Z-capacity", status="interrupted")
    steps_dir = tmp_path / "results" / "20240101T000003Z-steps"
    steps_dir.mkdir()
    (steps_dir / "manifest.json").write_text(json.dumps({"status": "complete"}))
    (steps_dir / "steps.json").write_text(json.dumps({
        "run_id": steps_dir.name, "status": "complete", "figures": [],
        "steps": [{"name": "lean-server", "before": "3327ca9", "after": "7d00124", "change": "A lean server.",
                   "status": "not measured", "reason": "a constructed step"}]}))
    example, root = tmp_path / "example", tmp_path / "root"
    root.mkdir()
    write_example(run_dir, results_root=tmp_path / "results", example_dir=example, summary_dir=root)
    md = (root / "OPTIMIZATION_SUMMARY.md").read_text()
    assert "## Capacity" in md and "20240101T000001Z-capacity" in md   # the complete one, not the newer cut
    assert "sustains 50 scrapes/s" in md and (example / "capacity_load.png").exists()
    assert "Capacity" in (example / "report.html").read_text()
    assert "lean-server: 3327ca9 → 7d00124" in md and "Not measured: a constructed step." in md
    # with no capacity run in results/, the example keeps the section it carries
    write_example(run_dir, results_root=tmp_path / "empty", example_dir=example, summary_dir=root)
    kept = (root / "OPTIMIZATION_SUMMARY.md").read_text()
    assert "20240101T000001Z-capacity" in kept and "lean-server" in kept


@pytest.mark.slow
def test_ctrl_c_keeps_every_step_measured_and_leaves_nothing_running(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "edgebench", "capacity", "--sweeps", "load",
                             "--variants", "optimized", "--steps", "20,40,80", "--sensor-steps", "4",
                             "--duration", "4", "--results", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        steps = []
        while time.monotonic() < deadline and not steps:   # wait for the first step on disk
            for f in tmp_path.glob("*-capacity/capacity.json"):
                try:
                    steps = json.loads(f.read_text())["load"]["steps"]
                except (ValueError, KeyError):
                    steps = []
            time.sleep(0.2)
        assert steps, "no step was measured within 120 s"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-1500:]
    run = next(tmp_path.glob("*-capacity"))
    doc = json.loads((run / "capacity.json").read_text())
    assert doc["status"] == "interrupted" and len(doc["load"]["steps"]) >= 1
    assert doc["load"]["steps"][0]["status"] == "ok"
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert (run / "report" / "CAPACITY.md").exists()
    states = sorted(run.glob("load/*/stack/state.json"))
    assert len(states) >= len(doc["load"]["steps"]), states   # one stack per step started
    for state in states:   # every stack it started is down
        s = read_state(state.parent)
        assert s.status in ("stopped", "failed"), (state, s.status)
        for svc in s.services.values():
            for path in svc.cgroups.values():
                assert not Path(str(path)).exists(), f"cgroup {path} left behind"
            pid = svc.pid
            if pid:
                assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
