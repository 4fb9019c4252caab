"""The collector capacity sweep: the synthetic target, the step's compose generation, the
scrape watch's verdicts, and one real step per collector."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from edgebench.capacity import synthetic_target as st
from edgebench.capacity.collector_compose import TARGET, collector_compose, write_step_files
from edgebench.capacity.collectors import ScrapeWatch, measure_collector_step, parse_counter
from plumbing.errors import EdgebenchError
from stack.compose import load_compose
from stack.scrape_config import scrape_settings

REPO = Path(__file__).resolve().parent.parent
LINE_RE = re.compile(r'^robot_sensor_value\{(?P<labels>[^}]*)\} (?P<value>-?\d+\.\d+)$')


def series_of(body: bytes) -> dict[str, float]:
    """label set -> value of every sample line (HELP/TYPE skipped)."""
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m["labels"] not in out, f"duplicate label set {m['labels']}"
        out[m["labels"]] = float(m["value"])
    return out


# ------------------------------------------------------------------ the target (pure)

def test_target_serves_n_distinct_series_whose_values_change_every_scrape():
    t = st.Target(1234, seed=3, bodies=3, shard_series=500)
    first, second = (series_of(b"".join(t.next_body(None))) for _ in range(2))
    assert len(first) == 1234 and set(first) == set(second)
    changed = sum(first[k] != second[k] for k in first)
    assert changed >= 0.95 * len(first), f"only {changed} of {len(first)} values changed"
    labels = next(iter(first))
    assert re.fullmatch(r'robot="r\d{3}",sensor="s\d{7}",kind="\w+",zone="zone-\d{2}"', labels)
    # the shards partition the series: 500 + 500 + 234, one header each
    shards = [series_of(b"".join(t.next_body(i))) for i in range(3)]
    assert [len(s) for s in shards] == [500, 500, 234]
    assert set().union(*shards) == set(first)
    assert b"".join(t.next_body(0)).count(b"# TYPE") == 1


def test_check_series_fits_refuses_what_the_memory_cannot_hold():
    st.check_series_fits(10_000, available=2**30)
    with pytest.raises(EdgebenchError) as e:
        st.check_series_fits(10_000_000, available=2**30)
    msg = str(e.value)
    assert "\n" not in msg and "fix: use at most" in msg
    fits = int(re.search(r"at most ([\d,]+)", msg)[1].replace(",", ""))
    st.check_series_fits(fits, available=2**30)          # the number it names does fit
    with pytest.raises(EdgebenchError):
        st.check_series_fits(fits + 1000, available=2**30)
    for bad in (0, -5, 2.5):
        with pytest.raises(EdgebenchError):
            st.check_series_fits(bad)


def test_target_command_line_refusal_is_one_line(capsys):
    assert st.main(["--series", "0"]) == 2
    assert st.main(["--series", "many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("fix" in line or "see" in line for line in err)


# ------------------------------------------------------------------ compose generation (pure)

@pytest.mark.parametrize("collector", ["victoriametrics", "prometheus"])
def test_step_compose_keeps_the_collectors_definition_from_docker_compose(tmp_path, collector):
    deployed = load_compose(REPO / "docker-compose.yml", profiles=("prometheus",)).all_services[collector]
    path = write_step_files(tmp_path, collector, 120_000)
    step = load_compose(path)
    svc = step.services[collector]
    assert svc.limits() == deployed.limits() and svc.limits()["mem_limit_bytes"] == 150 * 2**20
    assert (svc.image, svc.command, svc.restart) == (deployed.image, deployed.command, deployed.restart)
    assert svc.depends_on == [TARGET] and not svc.profiles
    mount = next(v for v in svc.volumes if v.kind == "bind")
    assert mount.source == str(tmp_path / "scrape.yml") and mount.read_only
    target = step.services[TARGET]
    assert target.limits() == {"mem_limit_bytes": None, "memswap_limit_bytes": None, "cpus": None}
    assert target.command[:3] == ["python", "-m", "edgebench.capacity.synthetic_target"] and "120000" in target.command
    assert target.build["context"] == str(REPO)
    ours, deployment = scrape_settings(tmp_path / "scrape.yml"), scrape_settings(REPO / "stack" / "scrape.yml")
    assert (ours.interval_s, ours.timeout_s) == (deployment.interval_s, deployment.timeout_s)
    assert len(ours.jobs) == 3   # 120,000 series in shards of 50,000


def test_step_compose_follows_an_edited_limit(tmp_path):
    """The limits are read from the compose file, never copied: change one, the step follows."""
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    doc["services"]["victoriametrics"]["mem_limit"] = doc["services"]["victoriametrics"]["memswap_limit"] = "99m"
    doc["services"]["victoriametrics"]["cpus"] = 0.3
    doc["services"]["victoriametrics"]["volumes"][0] = f"{REPO}/stack/scrape.yml:/etc/victoriametrics/scrape.yml:ro"
    edited = tmp_path / "docker-compose.yml"
    edited.write_text(yaml.safe_dump(doc))
    spec = collector_compose("victoriametrics", 1000, compose_path=edited)["services"]["victoriametrics"]
    assert (spec["mem_limit"], spec["cpus"]) == ("99m", 0.3)
    with pytest.raises(EdgebenchError):
        collector_compose("influxdb", 1000)


# ------------------------------------------------------------------ verdicts on constructed data (pure)

def scrape(path, start, send=0.01, ok=True):
    return {"path": path, "start": start, "send_s": send, "bytes": 1, "ok": ok}


def test_scrape_watch_counts_rounds_and_finds_a_collector_behind():
    w = ScrapeWatch(["/metrics/0", "/metrics/1"], interval_s=5, timeout_s=4)
    w.update({"scrapes": [scrape("/metrics/0", 100), scrape("/metrics/1", 102), scrape("/metrics/0", 105),
                          scrape("/healthz", 1)]})
    assert w.rounds_done == 1 and w.first_round_end == pytest.approx(102.01)
    assert w.behind(now=106) is None
    assert "no completed scrape" in w.behind(now=102 + 7.5 + 4 + 0.1)      # /metrics/1's slot passed
    w.update({"scrapes": [scrape("/metrics/0", 100), scrape("/metrics/0", 108)]})
    assert w.behind(now=108.1) is None                                      # /metrics/1 never scraped yet
    w.update({"scrapes": [scrape("/metrics/0", 100), scrape("/metrics/1", 101), scrape("/metrics/0", 108)]})
    assert "8.0s between two scrapes" in w.behind(now=108.1)
    w.update({"scrapes": [scrape("/metrics/0", 100, send=4.2)]})
    assert "over the 4s timeout" in w.behind(now=104.3)
    w.update({"scrapes": [scrape("/metrics/0", 100, send=1.0, ok=False)]})
    assert "abandoned" in w.behind(now=101)


def test_parse_counter_sums_the_matching_label_sets():
    text = ('# TYPE vm_rows_inserted_total counter\nvm_rows_inserted_total{type="influx"} 7\n'
            'vm_rows_inserted_total{type="promscrape"} 4012\nvm_rows_inserted_total_x 1\n'
            'prometheus_tsdb_head_samples_appended_total{type="float"} 10\n'
            'prometheus_tsdb_head_samples_appended_total{type="histogram"} 2\n')
    assert parse_counter(text, "vm_rows_inserted_total", {"type": "promscrape"}) == 4012
    assert parse_counter(text, "prometheus_tsdb_head_samples_appended_total", {}) == 12
    assert parse_counter(text, "vm_new_timeseries_created_total", {}) is None


# ------------------------------------------------------------------ real processes

@pytest.mark.slow
def test_target_exposition_passes_promtool_and_records_scrapes(free_ports):
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-m", "edgebench.capacity.synthetic_target", "--series", "3000",
                             "--port", str(port), "--shard-series", "1000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.05)
        a = urllib.request.urlopen(base + "/metrics").read()
        b = urllib.request.urlopen(base + "/metrics").read()
        sa, sb = series_of(a), series_of(b)
        assert len(sa) == 3000 and set(sa) == set(sb) and sum(sa[k] != sb[k] for k in sa) > 2900
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=a, capture_output=True)
            assert check.returncode == 0, check.stdout + check.stderr
        assert len(series_of(urllib.request.urlopen(base + "/metrics/2").read())) == 1000
        stats = json.loads(urllib.request.urlopen(base + "/stats").read())
        assert stats["series"] == 3000 and stats["shards"] == 3 and stats["scrapes_served"] == 3
        assert [s["path"] for s in stats["scrapes"]] == ["/metrics", "/metrics", "/metrics/2"]
        assert stats["scrapes"][0]["bytes"] == len(a) and stats["body_bytes"] == len(a)
        assert all(s["ok"] and 0 <= s["send_s"] < 5 for s in stats["scrapes"])
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("collector", ["victoriametrics", "prometheus"])
def test_real_step_measures_the_collector(tmp_path, collector):
    if not Path({"victoriametrics": "/usr/bin/victoria-metrics", "prometheus": "/usr/bin/prometheus"}[collector]).exists():
        pytest.skip(f"{collector} is not installed")
    r = measure_collector_step(tmp_path / f"{collector}-n2000", collector, 2000, engine="native", scrapes=2)
    assert r["status"] == "ok", r["error"]
    assert r["scrapes_done"] >= 2 and r["oom_kills"] == 0 and r["targets"] == 1
    assert r["samples_appended"] >= 2000 * 2
    for key in ("mem_peak_mb", "mem_steady_mb", "cpu_cores", "disk_write_bytes_per_s", "bytes_per_sample"):
        assert r[key] is not None and r[key] > 0, key
    assert 5 < r["mem_steady_mb"] <= r["mem_peak_mb"] < 150
    assert 0 < r["scrape_send_max_s"] < 4
    meta = json.loads((tmp_path / f"{collector}-n2000" / "scenario.json").read_text())
    assert meta["status"] == "complete" and meta["components"] == {collector: "collector", TARGET: "loadgen"}
    assert meta["limits"][collector]["mem_limit_bytes"] == 150 * 2**20
    assert meta["steady_start"] < meta["steady_end"]
    state = json.loads((tmp_path / f"{collector}-n2000" / "stack" / "state.json").read_text())
    assert state["status"] == "stopped"
    assert all(s["pid"] is None for s in state["services"].values())
    assert not (tmp_path / f"{collector}-n2000" / "stack" / "volumes").exists()
