"""The collector comparison: the settle rule, the k-of-n boundary statement, bytes per
active series and the ratio interval on constructed data; the tuned configuration and
the workload shapes as files; one short real side-by-side step (slow tier)."""
from __future__ import annotations

import math
import random

import pytest

from reports import collector_stats as cs
from stack.state import read_state

LIMIT = 150 * 2**20


def ramp(seconds: float, start_mb: float, mb_per_min: float, every_s: float = 1.0, noise_mb: float = 0.0,
         seed: int = 1) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    n = int(seconds / every_s) + 1
    return [(i * every_s, (start_mb + mb_per_min * i * every_s / 60 + rng.uniform(-noise_mb, noise_mb)) * 2**20)
            for i in range(n)]


# ------------------------------------------------------------------ the settle rule

def test_flat_memory_settles_once_the_window_is_covered():
    flat = ramp(60, 80, 0.0, noise_mb=0.3)
    assert cs.settled(flat[:40], LIMIT, interval_s=5)["settled"] is False   # 39 s < the 50 s window
    verdict = cs.settled(flat, LIMIT, interval_s=5)
    assert verdict["settled"] is True
    assert verdict["window_s"] == 50
    assert abs(verdict["slope_bytes_per_min"]) < verdict["threshold_bytes_per_min"]
    assert verdict["mean_bytes"] == pytest.approx(80 * 2**20, rel=0.01)


def test_growth_just_above_one_percent_of_the_limit_per_minute_has_not_settled():
    # 1 % of 150 MiB is 1.5 MiB/min: 1.8 MiB/min grows, 1.2 MiB/min has settled
    assert cs.settled(ramp(120, 50, 1.8), LIMIT, 5)["settled"] is False
    assert cs.settled(ramp(120, 50, 1.2), LIMIT, 5)["settled"] is True


def test_memory_still_falling_after_a_burst_has_not_settled():
    falling = ramp(120, 140, -6.0)
    v = cs.settled(falling, LIMIT, 5)
    assert v["settled"] is False and v["slope_bytes_per_min"] < 0


def test_only_the_last_window_counts():
    burst_then_flat = ramp(60, 20, 60.0) + [(61 + t, b) for t, b in ramp(60, 80, 0.0)]
    assert cs.settled(burst_then_flat, LIMIT, 5)["settled"] is True


# ------------------------------------------------------------------ boundary statement

def runs(n, statuses):
    return [{"series": n, "status": s} for s in statuses]


def test_boundary_statement_is_k_of_n():
    recs = (runs(10_000, ["settled"]) + runs(30_000, ["settled", "capped", "settled"])
            + runs(50_000, ["oom", "settled", "oom"]) + runs(70_000, ["oom"]))
    b = cs.boundary(recs)
    assert b["held_all"] == 30_000
    assert b["next"] == {"series": 50_000, "held": 1, "runs": 3}
    assert b["statement"] == "held 30,000 in 3 of 3 runs, 50,000 in 1 of 3 (OOM-killed 2×)"
    assert b["provisional"] is False


def test_a_lower_count_that_failed_once_caps_the_capacity():
    recs = runs(10_000, ["settled"] * 3) + runs(20_000, ["settled", "behind", "settled"]) + runs(30_000, ["settled"] * 3)
    b = cs.boundary(recs)
    assert b["held_all"] == 10_000
    assert b["statement"].startswith("held 10,000 in 3 of 3 runs, 20,000 in 2 of 3 (behind 1×)")


def test_one_run_at_the_boundary_is_marked_provisional():
    b = cs.boundary(runs(20_000, ["settled"]) + runs(30_000, ["oom"]))
    assert b["provisional"] is True
    assert "provisional: fewer than 3 runs at 20,000, 30,000" in b["statement"]


def test_every_count_held_says_so_and_none_held_says_so():
    assert "every count measured" in cs.boundary(runs(10_000, ["settled"] * 3))["statement"]
    b = cs.boundary(runs(10_000, ["oom", "settled", "oom"]))
    assert b["held_all"] is None
    assert b["statement"].startswith("held no measured count in every run (the smallest, 10,000, in 1 of 3)")


# ------------------------------------------------------------------ per series and ratio

def test_bytes_per_series_recovers_the_slope_and_its_interval_covers_it():
    rng = random.Random(4)
    pts = [(n, 30e6 + 1500 * n + rng.gauss(0, 2e6)) for n in (10_000, 20_000, 30_000, 50_000) for _ in range(3)]
    fit = cs.bytes_per_series(pts)
    assert fit["low"] < 1500 < fit["high"]
    assert fit["high"] - fit["low"] < 400
    assert fit["n"] == 12
    assert cs.bytes_per_series(pts[:2]) is None
    assert cs.bytes_per_series([(10_000, 1.0)] * 3) is None
    assert cs.bytes_per_series([(10_000, 1.0), (20_000, 2.0)] * 3) is None   # two counts show no line


def test_active_series_adds_each_targets_automatic_series():
    assert cs.active_series(50_000, 40) == 50_200


def test_ratio_interval_is_the_geometric_mean_with_a_t_interval():
    r = cs.ratio_interval([(24.0, 9.0), (26.0, 9.5), (23.0, 8.8), (25.0, 9.2)])
    assert r["rounds"] == 4
    assert r["low"] < r["ratio"] < r["high"]
    assert r["ratio"] == pytest.approx(math.exp(sum(math.log(a / b) for a, b in
                                                    [(24, 9), (26, 9.5), (23, 8.8), (25, 9.2)]) / 4))
    assert 2.5 < r["low"] and r["high"] < 2.9
    assert cs.ratio_interval([(24.0, 9.0)]) is None
    assert cs.ratio_interval([(24.0, 9.0), (None, 9.0)]) is None


# ------------------------------------------------------------------ files and plans (pure)

def test_tuned_configuration_sets_the_same_memory_policy_and_the_vendors_flags(tmp_path):
    from edgebench.capacity.comparison import tuned_compose
    from stack.compose import load_compose
    c = load_compose(tuned_compose(tmp_path / "tuned.yml"), profiles=("prometheus",)).all_services
    for name in ("victoriametrics", "prometheus"):
        assert c[name].environment["GOMEMLIMIT"] == str(int(0.9 * c[name].mem_limit))
        assert c[name].mem_limit == 150 * 2**20 and c[name].cpus == 0.5
    assert c["victoriametrics"].environment["GOGC"] == "30"
    assert c["prometheus"].environment["GOGC"] == "75"
    assert "-promscrape.streamParse=true" in c["victoriametrics"].command
    assert "-memory.allowedBytes=64MB" in c["victoriametrics"].command   # the deployment's own flags stay
    assert c["victoriametrics"].volumes[0].source.endswith("stack/scrape.yml")


def test_shapes_partition_n_into_one_target_or_targets_of_500_to_2000():
    from edgebench.capacity.comparison_compose import target_sizes
    assert target_sizes(30_000, "one-target") == [30_000]
    many = target_sizes(100_000, "many-targets")
    assert sum(many) == 100_000 and all(500 <= s <= 2_000 for s in many)
    assert 50 <= len(many) <= 200
    assert target_sizes(100_000, "many-targets", seed=2) != many


def test_step_files_mark_each_variants_scrapes(tmp_path):
    import yaml

    from edgebench.capacity.comparison_compose import write_step_files
    from stack.compose import load_compose
    variants = ["victoriametrics-shipped", "prometheus-tuned"]
    compose = load_compose(write_step_files(tmp_path, variants, 4_000, "many-targets")).all_services
    assert set(compose) == {"synthetic-target", *variants}
    assert "--spread" in compose["synthetic-target"].command
    assert compose["victoriametrics-shipped"].environment == {}
    for v in variants:
        doc = yaml.safe_load((tmp_path / f"scrape-{v}.yml").read_text())
        assert {tuple(j["params"]["c"]) for j in doc["scrape_configs"]} == {(v,)}
        assert doc["global"]["scrape_interval"] == "5s"


def test_a_step_keeps_each_collectors_definition_from_docker_compose(tmp_path):
    from pathlib import Path

    from edgebench.capacity.comparison_compose import TARGET, write_step_files
    from stack.compose import load_compose
    from stack.scrape_config import scrape_settings
    repo = Path(__file__).resolve().parent.parent
    deployed = load_compose(repo / "docker-compose.yml", profiles=("prometheus",)).all_services
    variants = ["victoriametrics-shipped", "prometheus-shipped"]
    step = load_compose(write_step_files(tmp_path, variants, 120_000, "one-target")).all_services
    for v, collector in zip(variants, ("victoriametrics", "prometheus")):
        svc, dep = step[v], deployed[collector]
        assert svc.limits() == dep.limits() and svc.limits()["mem_limit_bytes"] == 150 * 2**20
        assert (svc.image, svc.command, svc.restart) == (dep.image, dep.command, dep.restart)
        assert svc.depends_on == [TARGET] and not svc.profiles
        mount = next(m for m in svc.volumes if m.kind == "bind")
        assert mount.source == str(tmp_path / f"scrape-{v}.yml") and mount.read_only
        ours, deployment = scrape_settings(tmp_path / f"scrape-{v}.yml"), scrape_settings(repo / "stack" / "scrape.yml")
        assert (ours.interval_s, ours.timeout_s) == (deployment.interval_s, deployment.timeout_s)
    target = step[TARGET]
    assert target.limits() == {"mem_limit_bytes": None, "memswap_limit_bytes": None, "cpus": None}
    assert target.command[:3] == ["python", "-m", "loadtests.synthetic_target"]
    assert target.command[3:] == ["--series", "120000", "--seed", "1", "--shard-series", "120000"]
    assert target.build["context"] == str(repo)


def test_a_step_follows_an_edited_limit(tmp_path):
    """The limits are read from the compose file, never copied: change one, the step follows."""
    from pathlib import Path

    import yaml

    from edgebench.capacity.comparison_compose import deployed_collector
    from plumbing.errors import EdgebenchError
    repo = Path(__file__).resolve().parent.parent
    doc = yaml.safe_load((repo / "docker-compose.yml").read_text())
    doc["services"]["victoriametrics"]["mem_limit"] = doc["services"]["victoriametrics"]["memswap_limit"] = "99m"
    doc["services"]["victoriametrics"]["cpus"] = 0.3
    doc["services"]["victoriametrics"]["volumes"][0] = f"{repo}/stack/scrape.yml:/etc/victoriametrics/scrape.yml:ro"
    edited = tmp_path / "docker-compose.yml"
    edited.write_text(yaml.safe_dump(doc))
    spec, _ = deployed_collector("victoriametrics", compose_path=edited)
    assert (spec["mem_limit"], spec["cpus"]) == ("99m", 0.3)
    with pytest.raises(EdgebenchError, match="collector 'influxdb' is unknown"):
        deployed_collector("influxdb")


def test_boundary_plan_asks_for_repeats_at_each_variants_two_boundary_counts():
    from edgebench.capacity.comparison import boundary_plan
    steps = ([{"variant": "a", "series": n, "status": "settled"} for n in (10, 20)]
             + [{"variant": "a", "series": 30, "status": "oom"}]
             + [{"variant": "b", "series": n, "status": "settled"} for n in (10, 20, 30)])
    assert boundary_plan(steps, 3) == [(20, ["a"]), (30, ["a", "b"])]
    more = steps + [{"variant": v, "series": n, "status": s} for v, n, s in
                    (("a", 20, "settled"), ("a", 20, "settled"), ("a", 30, "oom"), ("a", 30, "oom"),
                     ("b", 30, "settled"), ("b", 30, "settled"))]
    assert boundary_plan(more, 3) == []


def test_parameters_are_refused_with_one_line():
    from edgebench.capacity.comparison import build_comparison_params
    from edgebench.scenarios import ParameterError
    for kw, word in (({"shapes": "ring"}, "SHAPES"), ({"series": "ten"}, "SERIES"), ({"repeats": "0"}, "REPEATS"),
                     ({"cap": "20"}, "settle window")):
        with pytest.raises(ParameterError) as e:
            build_comparison_params(**kw)
        assert word in str(e.value) and "\n" not in str(e.value)
    p = build_comparison_params(series="10000,30000", repeats="3", rounds="4")
    assert p.ladders["one-target"] == (10_000, 30_000) and p.rounds == 4
    est = p.estimate_s()
    assert 0 < est["typical_s"] <= est["longest_s"]


# ------------------------------------------------------------------ one short real step

@pytest.mark.slow
def test_real_side_by_side_step_settles_and_breaks_memory_down(tmp_path, monkeypatch):
    from edgebench.capacity.comparison_step import measure_comparison_step
    recs = measure_comparison_step(tmp_path / "step", ["victoriametrics-tuned", "prometheus-shipped"], 2_000,
                                   "many-targets", cap_s=40, settle_scrapes=3)
    assert [r["variant"] for r in recs] == ["victoriametrics-tuned", "prometheus-shipped"]
    for r in recs:
        assert r["status"] in ("settled", "capped"), r
        assert r["targets"] == 2 and r["active_series"] == 2_010
        # each collector's own count of its series: the target's plus 5 per target
        assert abs(r["active_series_reported"] - r["active_series"]) <= 10
        assert 3 < r["anon_mb"] < r["peak_mb"] <= r["limit_mb"] == 150
        assert r["page_cache_mb"] is not None and r["page_cache_mb"] >= 0
        assert 1 < r["go_heap_mb"] < r["peak_mb"]
        assert r["samples_appended"] >= 2_000 * 2
    assert (tmp_path / "step" / "scenario.json").exists()
    assert not (tmp_path / "step" / "stack" / "volumes").exists()


def constructed_run(root, name="20261206T000000Z-collectors", status="complete"):
    """A comparison run directory from constructed rounds and steps."""
    import json
    rounds = [{"round": i, "variant": f"{c}-{k}", "collector": c, "config": k, "error": None,
               "peak_mb": p, "anon_mb": p - 2, "steady_mb": p - 1, "settled": True}
              for i, (vm, pr) in enumerate([(9.0, 24.0), (9.4, 25.0), (8.8, 23.5)], 1)
              for c, k, p in (("victoriametrics", "shipped", vm), ("prometheus", "shipped", pr),
                              ("victoriametrics", "tuned", vm - 0.2), ("prometheus", "tuned", pr - 3))]
    steps = [{"variant": "prometheus-tuned", "collector": "prometheus", "config": "tuned", "shape": "many-targets",
              "series": n, "targets": n // 1000, "active_series": n + 5 * (n // 1000), "run": r, "status": s,
              "anon_mb": (20 + n * 0.0014) if s != "oom" else None, "page_cache_mb": 1.0, "peak_mb": 60.0}
             for n, statuses in ((10_000, ["settled"]), (30_000, ["settled"] * 3), (50_000, ["oom", "capped", "oom"]))
             for r, s in enumerate(statuses, 1)]
    run = root / name
    run.mkdir(parents=True)
    (run / "comparison.json").write_text(json.dumps({"version": 1, "run_id": run.name, "status": status,
                                                     "limits_mb": {"victoriametrics": 150.0},
                                                     "operating_point": {"rounds": rounds},
                                                     "sweep": {"steps": steps}}))
    (run / "manifest.json").write_text(json.dumps({"run_id": name, "status": status,
                                                   "machine": {"cpu_model": "test CPU", "cores": 2}}))
    return run


def test_report_says_the_ratio_with_its_interval_and_capacities_as_k_of_n(tmp_path):
    import json

    from reports.comparison import comparison_blocks, render_comparison
    run = constructed_run(tmp_path)
    written = render_comparison(run)
    text = (run / "report" / "COLLECTORS.md").read_text()
    assert "held 30,000 in 3 of 3 runs, 50,000 in 1 of 3 (OOM-killed 2×)" in text
    assert "Prometheus' kernel peak memory is 2.67× (95 % interval" in text
    assert "the seed document's −66 % would be a ratio of 2.94×" in text
    assert any(p.name == "collector_comparison.png" and p.stat().st_size > 10_000 for p in written)
    blocks = comparison_blocks(json.loads((run / "comparison.json").read_text()))
    assert blocks[0] == ("h", 2, "Collector comparison")


@pytest.mark.slow  # writes the whole example, every graph drawn
def test_the_example_carries_the_newest_complete_comparison(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fixtures_results import build_run

    from edgebench.example import write_example
    run_dir, _ = build_run(tmp_path / "results")
    constructed_run(tmp_path / "results", "20261206T000001Z-collectors")
    constructed_run(tmp_path / "results", "20261206T000002Z-collectors", status="interrupted")
    example, root = tmp_path / "example", tmp_path / "root"
    root.mkdir()
    write_example(run_dir, results_root=tmp_path / "results", example_dir=example, summary_dir=root)
    md = (root / "OPTIMIZATION_SUMMARY.md").read_text()
    assert "## Collector comparison" in md and "20261206T000001Z-collectors" in md
    assert "held 30,000 in 3 of 3 runs" in md
    assert (example / "collector_comparison.png").exists() and (example / "comparison.json").exists()
    assert "Collector comparison" in (example / "report.html").read_text()


@pytest.mark.slow
def test_generated_compose_files_pass_docker_compose_config(tmp_path):
    import shutil
    import subprocess

    from edgebench.capacity.comparison import tuned_compose
    from edgebench.capacity.comparison_compose import write_step_files
    compose = shutil.which("docker-compose") or "/usr/bin/docker-compose"
    tuned = tuned_compose(tmp_path / "tuned.yml")
    step = write_step_files(tmp_path / "step", ["victoriametrics-shipped", "victoriametrics-tuned",
                                                "prometheus-shipped", "prometheus-tuned"], 3_000, "many-targets")
    for path, extra in ((tuned, ["--profile", "prometheus"]), (step, [])):
        out = subprocess.run([compose, "-f", str(path), *extra, "config"], cwd=path.parent,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "GOMEMLIMIT" in out.stdout and "promscrape.streamParse=true" in out.stdout


def test_spread_sizes_and_the_target_record_whose_scrape_it_served():
    from loadtests import synthetic_target as st
    from plumbing.errors import EdgebenchError
    assert st.spread_sizes(1_200, 500, 2_000) == [1_200]
    sizes = st.spread_sizes(10_000, 500, 2_000, seed=3)
    assert sum(sizes) == 10_000 and all(500 <= s <= 2_000 for s in sizes)
    assert st.parse_spread("500-2000") == (500, 2_000)
    for bad in ("500", "2000-500", "a-b", "0-10"):
        with pytest.raises(EdgebenchError) as e:
            st.parse_spread(bad)
        assert "--spread" in str(e.value)
    t = st.Target(3_000, sizes=[1_000, 2_000])
    assert [len(b"".join(t.next_body(i)).splitlines()) - 2 for i in range(2)] == [1_000, 2_000]
    t.record("/metrics/1", 1.0, 0.01, 10, True, "prometheus-tuned")
    assert t.stats()["scrapes"][-1]["client"] == "prometheus-tuned"


def test_client_watch_judges_each_collector_on_its_own_scrapes():
    from edgebench.capacity.comparison_step import ClientWatch
    scrapes = [{"path": "/metrics/0", "start": t, "send_s": 0.01, "ok": True, "client": c}
               for c, times in (("a", (0.0, 5.0, 10.0)), ("b", (0.0, 9.0))) for t in times]
    a, b = ClientWatch("a", ["/metrics/0"], 5.0, 4.0), ClientWatch("b", ["/metrics/0"], 5.0, 4.0)
    for w in (a, b):
        w.update({"scrapes": scrapes})
    assert a.rounds_done == 3 and a.behind(11.0) is None
    assert b.rounds_done == 2 and "9.0s between two scrapes" in b.behind(11.0)


def _scrape(path, start, send=0.01, ok=True, client="a"):
    return {"path": path, "start": start, "send_s": send, "bytes": 1, "ok": ok, "client": client}


def test_client_watch_counts_rounds_and_finds_a_collector_behind():
    from edgebench.capacity.comparison_step import ClientWatch
    w = ClientWatch("a", ["/metrics/0", "/metrics/1"], interval_s=5, timeout_s=4)
    w.update({"scrapes": [_scrape("/metrics/0", 100), _scrape("/metrics/1", 102), _scrape("/metrics/0", 105),
                          _scrape("/healthz", 1)]})
    assert w.rounds_done == 1 and w.first_round_end == pytest.approx(102.01)
    assert w.behind(now=106) is None
    assert "no completed scrape" in w.behind(now=102 + 7.5 + 4 + 0.1)      # /metrics/1's slot passed
    w.update({"scrapes": [_scrape("/metrics/0", 100), _scrape("/metrics/0", 108)]})
    assert w.behind(now=108.1) is None                                      # /metrics/1 never scraped yet
    w.update({"scrapes": [_scrape("/metrics/0", 100), _scrape("/metrics/1", 101), _scrape("/metrics/0", 108)]})
    assert "8.0s between two scrapes" in w.behind(now=108.1)
    w.update({"scrapes": [_scrape("/metrics/0", 100, send=4.2)]})
    assert "over the 4s timeout" in w.behind(now=104.3)
    w.update({"scrapes": [_scrape("/metrics/0", 100, send=1.0, ok=False)]})
    assert "abandoned" in w.behind(now=101)


def test_parse_counter_sums_the_matching_label_sets():
    from edgebench.capacity.comparison_step import parse_counter
    text = ('# TYPE vm_rows_inserted_total counter\nvm_rows_inserted_total{type="influx"} 7\n'
            'vm_rows_inserted_total{type="promscrape"} 4012\nvm_rows_inserted_total_x 1\n'
            'prometheus_tsdb_head_samples_appended_total{type="float"} 10\n'
            'prometheus_tsdb_head_samples_appended_total{type="histogram"} 2\n')
    assert parse_counter(text, "vm_rows_inserted_total", {"type": "promscrape"}) == 4012
    assert parse_counter(text, "prometheus_tsdb_head_samples_appended_total", {}) == 12
    assert parse_counter(text, "vm_new_timeseries_created_total", {}) is None


@pytest.mark.slow
def test_ctrl_c_during_a_step_tears_it_down_and_keeps_the_run(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "edgebench", "collectors", "--rounds", "0", "--shapes",
                             "many-targets", "--series", "2000", "--repeats", "1", "--cap", "60",
                             "--results", str(tmp_path)], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob("*/sweep/*/stack/state.json")):
            time.sleep(0.2)
        assert list(tmp_path.glob("*/sweep/*/stack/state.json")), "no step started within 120 s"
        time.sleep(1)   # the step is running: its stack is up
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-1500:]
    run = next(tmp_path.glob("*-collectors"))
    assert json.loads((run / "comparison.json").read_text())["status"] == "interrupted"
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    step = next(run.glob("sweep/*"))
    assert json.loads((step / "scenario.json").read_text())["status"] == "interrupted"
    state = read_state(step / "stack")
    for svc in state.services.values():
        for path in svc.cgroups.values():
            assert not Path(str(path)).exists(), f"cgroup {path} left behind"
        pid = svc.pid
        if pid:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
