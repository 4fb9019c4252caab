"""SENSOR_EXTRA_SERIES (N labelled sensor series in /metrics) and one step of the series
sweep (edgebench.capacity.series): settings, label sets, the exposition's bytes, promtool,
real services and real stacks under the compose limits."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from edgebench.capacity.series import measure_series_step, series_record
from service import extra_series
from service.config import ConfigError, parse_config
from service.exposition import CachedExposition
from tests.conftest import service_env

pytestmark = pytest.mark.xdist_group("service_series")  # its module fixtures are built once (make test)

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = "/usr/bin/promtool"
READING = re.compile(rb"^sensor_reading\{.*$", re.M)


# --- settings (pure) ------------------------------------------------------------------

def test_extra_series_defaults_to_zero_and_reads_env_and_flag():
    assert parse_config([], {}).extra_series == 0
    assert parse_config([], {"SENSOR_EXTRA_SERIES": "1000"}).extra_series == 1000
    config = parse_config(["--extra-series", "25"], {"SENSOR_EXTRA_SERIES": "1000"})
    assert config.extra_series == 25                       # the flag wins
    assert "extra_series=25" in config.describe()          # the start-up line shows it


@pytest.mark.parametrize("args, env, name", [
    ((), {"SENSOR_EXTRA_SERIES": "-1"}, "SENSOR_EXTRA_SERIES"),
    ((), {"SENSOR_EXTRA_SERIES": "lots"}, "SENSOR_EXTRA_SERIES"),
    ((), {"SENSOR_EXTRA_SERIES": "1.5"}, "SENSOR_EXTRA_SERIES"),
    (("--extra-series", "-3"), {}, "--extra-series"),
])
def test_bad_extra_series_is_refused_naming_the_setting(args, env, name):
    with pytest.raises(ConfigError) as err:
        parse_config(list(args), env)
    line = str(err.value)
    assert name in line and ">= 0" in line and "\n" not in line


# --- label sets and exposition (pure, in-process) ---------------------------------------

def test_label_sets_are_deterministic_distinct_and_varied():
    n = 20000
    first = [extra_series.label_values(i) for i in range(n)]
    assert first == [extra_series.label_values(i) for i in range(n)]
    assert len(set(first)) == n
    units = {kind: unit for kind, unit, *_ in extra_series.KINDS}
    assert all(units[kind] == unit for _, kind, _, unit in first)
    assert {kind for _, kind, _, _ in first[:100]} == set(units)          # neighbours differ
    assert len({zone for _, _, zone, _ in first[:200]}) == len(extra_series.ZONE_NAMES)
    assert first[42] == ("s000042", first[42][1], first[42][2], first[42][3])


def _family(n, seed):
    registry = CollectorRegistry()
    return registry, extra_series.ExtraSeries(n, seed, registry=registry)


def test_cached_renderer_gives_generate_latest_bytes_with_1000_series():
    registry, family = _family(1000, seed=1)
    render = CachedExposition(registry).render
    body = render()
    assert body == generate_latest(registry)
    assert len(READING.findall(body)) == 1000
    for _ in range(7):      # values move, the cached prefixes must not go stale
        family.move_one()
    moved = render()
    assert moved == generate_latest(registry) and moved != body


def test_same_seed_same_bytes_other_seed_same_labels():
    a, b, c = (generate_latest(_family(500, seed)[0]) for seed in (7, 7, 8))
    assert a == b
    assert a != c
    strip = lambda body: [line.rsplit(b" ", 1)[0] for line in READING.findall(body)]
    assert strip(a) == strip(c)


def test_values_stay_in_each_kinds_range():
    registry, family = _family(800, seed=3)
    ranges = {kind: (low, high) for kind, _, low, high, _ in extra_series.KINDS}
    for i, child in enumerate(family.children):
        low, high = ranges[extra_series.label_values(i)[1]]
        assert low <= child._value.get() <= high


def test_install_replaces_an_earlier_family_and_zero_removes_it():
    try:
        extra_series.install(5, 1)
        extra_series.install(3, 1)     # a second app in one process: no duplicate registration
        body = generate_latest(REGISTRY)
        assert len(READING.findall(body)) == 3
        extra_series.install(0, None)
        assert b"sensor_reading" not in generate_latest(REGISTRY)
        extra_series.move_one()         # the knob off: /sensor does nothing here
    finally:
        extra_series.install(0, None)


def test_record_of_a_start_the_oom_killer_ended(tmp_path):
    """What measure_series_step reads when the service died before it was healthy:
    no samples, only the supervisor's state.json (the real case is tested below)."""
    step = tmp_path / "n100000"
    (step / "stack").mkdir(parents=True)
    (step / "stack" / "state.json").write_text(
        '{"services": {"sensor-service": {"oom_kills": 1}, "victoriametrics": {"oom_kills": 0}}}')
    rec = series_record(step, 100000, "optimized", "StackError: exited (signal SIGKILL)")
    assert rec["status"] == "oom" and rec["oom_kills"] == 1 and rec["dir"] == "n100000"
    assert rec["exposition_bytes"] is None and rec["cpu_ms_per_scrape"] is None
    assert series_record(tmp_path / "nothing", 10, "optimized", "boom")["status"] == "failed"


# --- real services ------------------------------------------------------------------------

@pytest.mark.slow
def test_bad_extra_series_stops_the_service_with_one_line():
    out = subprocess.run([sys.executable, "-m", "service", "--port", "1"], cwd=ROOT,
                         env=service_env(SENSOR_EXTRA_SERIES="-2"), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "SENSOR_EXTRA_SERIES='-2'" in lines[0], out.stderr


@pytest.mark.slow
def test_cached_renderer_matches_generate_latest_on_the_full_registry_with_1000_series():
    code = ("import gc\n"
            "from prometheus_client import REGISTRY, generate_latest\n"
            "from service import core\n"
            "from service.config import parse_config\n"
            "from service.wsgi import create_app\n"
            "create_app(parse_config(['--extra-series', '1000'], {'SENSOR_SEED': '1'}))\n"
            "for c in list(REGISTRY._collector_to_names):  # process values move between calls\n"
            "    if type(c).__name__ == 'LeanProcessCollector': REGISTRY.unregister(c)\n"
            "gc.disable()\n"
            "core.render_exposition()\n"
            "a, b = core.render_exposition(), generate_latest(REGISTRY)\n"
            "print(a == b, a.count(b'sensor_reading{'), len(a))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=service_env())
    assert out.returncode == 0, out.stderr
    equal, count, size = out.stdout.split()
    assert (equal, count) == ("True", "1000"), out.stdout + out.stderr
    assert int(size) > 60_000


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("series")


def _running(workdir, variant, n, seed="3"):
    from tests.test_service import running_service
    return running_service(workdir, ["--variant", variant, "--extra-series", str(n)], SENSOR_SEED=seed)


@pytest.mark.slow
def test_both_variants_expose_the_same_1000_series_and_promtool_accepts_them(workdir):
    from tests.test_service import request
    readings, logs = {}, {}
    for variant in ("baseline", "optimized"):
        with _running(workdir, variant, 1000) as (_, port):
            status, _, body = request(port, "/metrics")
            assert status == 200
            out = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=60)
            assert out.returncode == 0, (out.stdout + out.stderr).decode()[:2000]
            readings[variant] = READING.findall(body)
            for _ in range(5):
                request(port, "/sensor")
            readings[variant + "-moved"] = READING.findall(request(port, "/metrics")[2])
        logs[variant] = "\n".join(p.read_text() for p in workdir.glob("service-*.log"))
    assert len(readings["optimized"]) == 1000
    assert readings["baseline"] == readings["optimized"]            # one seed, one set of bytes
    assert readings["baseline-moved"] == readings["optimized-moved"]
    changed = [i for i, (a, b) in enumerate(zip(readings["optimized"], readings["optimized-moved"])) if a != b]
    assert changed and set(changed) <= set(range(5))                # one series per /sensor, in order
    assert "extra_series=1000" in logs["optimized"]


@pytest.mark.slow
def test_100000_series_start_within_seconds_outside_limits(workdir):
    from tests.test_service import request
    started = time.monotonic()
    with _running(workdir, "optimized", 100000) as (_, port):
        healthy_after = time.monotonic() - started
        body = request(port, "/metrics", timeout=60)[2]
    assert healthy_after < 15, healthy_after
    assert body.count(b"\nsensor_reading{") == 100000


# --- one step of the sweep under the compose limits -------------------------------------

KEYS = {"sweep", "variant", "series", "status", "error", "exposition_bytes", "cpu_ms_per_scrape",
        "scrape_p50_ms", "scrape_p99_ms", "mem_rest_mb", "mem_peak_mb", "oom_kills", "scrapes_intended",
        "scrapes_ok", "failed_scrapes", "throttled_ratio", "dir"}


def _assert_torn_down(step: Path):
    from plumbing.files import read_json
    state = read_json(step / "stack" / "state.json")
    assert state["status"] in ("stopped", "failed") and state["supervisor_pid"] is None
    for svc in state["services"].values():
        assert svc["pid"] is None
        assert not any(Path(p).exists() for p in (svc.get("cgroups") or {}).values()), svc["cgroups"]


@pytest.mark.slow
def test_series_step_measures_and_exposition_grows_with_series(tmp_path):
    small = measure_series_step(tmp_path / "n10", 10, duration_s=4, warmup_s=1)
    big = measure_series_step(tmp_path / "n1000", 1000, duration_s=4, warmup_s=1)
    for rec, n in ((small, 10), (big, 1000)):
        assert set(rec) == KEYS
        assert (rec["sweep"], rec["variant"], rec["series"], rec["dir"]) == ("series", "optimized", n, f"n{n}")
        assert rec["status"] == "ok" and rec["error"] is None, rec
        assert rec["oom_kills"] == 0
        for key in ("exposition_bytes", "cpu_ms_per_scrape", "scrape_p50_ms", "scrape_p99_ms",
                    "mem_rest_mb", "mem_peak_mb", "throttled_ratio"):
            assert isinstance(rec[key], (int, float)) and rec[key] >= 0, (key, rec)
        assert rec["scrapes_intended"] >= 3 and rec["failed_scrapes"] == 0, rec
        assert 10 < rec["mem_rest_mb"] <= rec["mem_peak_mb"] + 1 < 51, rec
        assert rec["scrape_p50_ms"] <= rec["scrape_p99_ms"] < 2000, rec
        _assert_torn_down(tmp_path / f"n{n}")
    # about 80 bytes per series line: 990 more series are far more than 50 KB
    assert big["exposition_bytes"] - small["exposition_bytes"] > 50_000, (small, big)


@pytest.mark.slow
def test_series_step_oom_killed_at_start_is_a_record_not_an_exception(tmp_path):
    """100,000 series need about 90 MB: the 50 MB service dies building them, before it is
    ever healthy; the step ends at once with status oom."""
    started = time.monotonic()
    rec = measure_series_step(tmp_path / "n100000", 100000, duration_s=4, warmup_s=1)
    took = time.monotonic() - started
    assert rec["status"] == "oom" and rec["oom_kills"] >= 1, rec
    assert "SIGKILL" in rec["error"], rec
    assert rec["exposition_bytes"] is None and rec["failed_scrapes"] is None
    assert took < 25, took                     # not the 30 s health timeout
    _assert_torn_down(tmp_path / "n100000")
