"""Parameters are checked once, where the user sets them, by one checker (plumbing.checks):
bounds, types, and one line naming the make variable, flag or SENSOR_* setting. Fast tier:
no process is started."""
import re
from pathlib import Path

import pytest

from edgebench.capacity.params import build_capacity_params
from edgebench.params import MAKE_VARIABLES, RunParams, build_params
from loadtests.runner import build_command
from loadtests.spec import FLAGS, LoadError, LoadSpec, check_load
from plumbing.checks import SettingError, number
from plumbing.errors import EdgebenchError

ROOT = Path(__file__).resolve().parent.parent
MAKE_VARS = set(re.findall(r"^([A-Z_]+) \?=", (ROOT / "Makefile").read_text(), re.M))


def one_line(e: BaseException) -> str:
    text = str(e)
    assert text and "\n" not in text
    return text


# --- plumbing.checks.number ---------------------------------------------------------------

@pytest.mark.parametrize("raw, kw, value", [
    ("2", {}, 2.0), (" 2.5 ", {}, 2.5), (3, {}, 3.0), ("0", {"at_least": 0}, 0.0),
    ("1_000", {"whole": True}, 1000), (4.0, {"whole": True}, 4), ("65535", {"whole": True, "at_most": 65535}, 65535),
    ("0.001", {"above": 0}, 0.001),
])
def test_number_accepts_and_types(raw, kw, value):
    got = number(raw, "X", **kw)
    assert got == value and type(got) is (int if kw.get("whole") else float)


@pytest.mark.parametrize("raw, kw, words", [
    ("abc", {}, "X='abc' is not a number"),
    ("", {}, "X='' is not a number"),
    (None, {}, "X=None is not a number"),
    (True, {}, "X=True is not a number"),            # a bool is not a count
    ("1.5", {"whole": True}, "X='1.5' is not a whole number"),
    (2.5, {"whole": True}, "X=2.5 is not a whole number"),
    ("nan", {}, "X='nan' is not a finite number"),
    ("inf", {"at_least": 0}, "X='inf' is not a finite number"),
    ("-1", {"at_least": 0}, "X='-1' must be >= 0"),
    ("0", {"above": 0}, "X='0' must be > 0"),
    ("0", {"whole": True, "at_least": 1, "at_most": 9}, "X='0' must be from 1 to 9"),
    ("10", {"whole": True, "at_least": 1, "at_most": 9}, "X='10' must be from 1 to 9"),
    ("10", {"at_most": 9.5}, "X='10' must be <= 9.5"),
])
def test_number_refuses_with_one_line_naming_the_setting(raw, kw, words):
    with pytest.raises(SettingError) as err:
        number(raw, "X", **kw)
    assert one_line(err.value).startswith(words)
    assert isinstance(err.value, EdgebenchError) and err.value.exit_code == 2


def test_number_raises_the_callers_error_with_its_fix():
    class Mine(EdgebenchError):
        pass
    with pytest.raises(Mine, match=r"^N='-3' must be >= 0 requests/s: pass e.g. N=4$"):
        number("-3", "N", at_least=0, unit="requests/s", fix="pass e.g. N=4", error=Mine)
    with pytest.raises(Mine, match=r"^N='x' is not a rate: set it to a rate > 0$"):
        number("x", "N", above=0, what="a rate", error=Mine)


# --- the load: loadtests.spec.check_load ---------------------------------------------------

def test_check_load_types_what_it_accepts():
    spec = check_load(FLAGS, duration_s="30", warmup_s="0", scrapers="2", scrape_rate="0.5",
                      sensor_users="0", sensor_rate="junk", workers="2", request_timeout="3")
    assert spec == LoadSpec(duration_s=30.0, warmup_s=0.0, scrapers=2, scrape_rate=0.5, sensor_users=0,
                            sensor_rate=1.0, workers=2, request_timeout=3.0)   # no sensor clients: rate unused
    assert isinstance(spec.scrapers, int) and isinstance(spec.duration_s, float)
    assert spec.users == 2 and spec.run_time_s == 30.0


@pytest.mark.parametrize("kw, start", [
    ({"duration_s": "0"}, "--duration='0' must be > 0 s"),
    ({"duration_s": "nan"}, "--duration='nan' is not a finite number"),
    ({"warmup_s": "-2"}, "--warmup='-2' must be >= 0 s"),
    ({"scrapers": "-1"}, "--scrapers='-1' must be >= 0"),
    ({"scrapers": "1.5"}, "--scrapers='1.5' is not a whole number"),
    ({"scrape_rate": "0"}, "--scrape-rate='0' must be > 0 scrapes/s per scraper"),
    ({"sensor_rate": "-5"}, "--sensor-rate='-5' must be > 0 requests/s per sensor client"),
    ({"workers": "-1"}, "--workers='-1' must be >= 0"),
    ({"request_timeout": "0"}, "--request-timeout='0' must be > 0 s"),
    ({"scrapers": 0, "sensor_users": 0}, "--scrapers=0 and --sensor-users=0: at least one user is needed"),
    ({"workers": 9}, "--workers=9 exceeds the 3 load users"),
])
def test_check_load_refuses_naming_the_flag(kw, start):
    args = {"duration_s": 5, "warmup_s": 1, "scrapers": 1, "scrape_rate": 1.0, "sensor_users": 2, "sensor_rate": 5.0}
    with pytest.raises(LoadError) as err:
        check_load(FLAGS, **{**args, **kw})
    assert one_line(err.value).startswith(start)


def test_the_runner_gets_the_spec_as_checked():
    """build_command writes the spec's values into the locustfile's options, unchanged."""
    spec = LoadSpec(duration_s=7.0, warmup_s=2.0, scrapers=3, scrape_rate=0.25, sensor_users=1, sensor_rate=4.0,
                    workers=2, request_timeout=6.0)
    cmd = build_command("http://127.0.0.1:9/", Path("/tmp/x"), spec)
    opt = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert (opt["--scrapers"], opt["--scrape-rate"], opt["--sensor-users"], opt["--sensor-rate"]) == \
        ("3", "0.25", "1", "4.0")
    assert (opt["--request-timeout"], opt["--schedule-s"], opt["--processes"]) == ("6.0", "9.0", "2")
    assert cmd[cmd.index("-u") + 1] == "4" and cmd[-2:] == ["ScraperUser", "SensorUser"]


# --- the bench's edge: edgebench.params.build_params ---------------------------------------

def test_build_params_types_and_passes_the_load_inward():
    p = build_params(duration="12", warmup="0", users="3", scrape_rate="0.5", sensor_rate="4", workers="1",
                     repeats="2", target="http://robot.local:8000")
    assert (p.duration_s, p.warmup_s, p.users, p.scrape_rate, p.sensor_rate, p.workers, p.repeats) == \
        (12.0, 0.0, 3, 0.5, 4.0, 1, 2)
    assert p.load() == LoadSpec(duration_s=12.0, warmup_s=0.0, scrapers=p.scrapers, scrape_rate=0.5,
                                sensor_users=3, sensor_rate=4.0, workers=1)
    defaults = RunParams()
    assert build_params().load().duration_s == defaults.duration_s
    assert build_params(profile=True).warmup_s > defaults.warmup_s


BENCH_REFUSALS = [
    ({"duration": "-5"}, "DURATION='-5' must be > 0 s"),
    ({"duration": "inf"}, "DURATION='inf' is not a finite number"),
    ({"warmup": "x"}, "WARMUP='x' is not a number"),
    ({"users": "2.5"}, "USERS='2.5' is not a whole number"),
    ({"scrape_rate": "0"}, "SCRAPE_RATE='0' must be > 0"),
    ({"sensor_rate": "-1"}, "SENSOR_RATE='-1' must be > 0"),
    ({"workers": "-1"}, "WORKERS='-1' must be >= 0"),
    ({"workers": "9"}, "WORKERS=9 exceeds the 4 load users"),
    ({"repeats": "0"}, "REPEATS='0' must be >= 1"),
    ({"repeats": "x"}, "REPEATS='x' is not a whole number"),
    ({"engine": "podman"}, "ENGINE='podman' is unknown"),
    ({"target": "robot.local:8000"}, "TARGET='robot.local:8000' is not an http(s) URL"),
    ({"target": "http://"}, "TARGET='http://' is not an http(s) URL"),
]


@pytest.mark.parametrize("kw, start", BENCH_REFUSALS)
def test_build_params_refuses_naming_the_make_variable(kw, start):
    with pytest.raises(EdgebenchError) as err:
        build_params(**kw)
    text = one_line(err.value)
    assert text.startswith(start)
    assert text.split("=", 1)[0] in MAKE_VARS          # a variable the Makefile has


CAPACITY_REFUSALS = [{"steps": "0"}, {"steps": "abc"}, {"sensor_steps": "-1"}, {"max_series": "5"},
                     {"max_series": "many"}, {"duration": "1"}, {"duration": "nan"}, {"sweeps": "disk"},
                     {"variants": "fast"}]


@pytest.mark.parametrize("kw", CAPACITY_REFUSALS)
def test_capacity_refusals_name_a_make_variable(kw):
    with pytest.raises(EdgebenchError) as err:
        build_capacity_params(**kw)
    assert one_line(err.value).split("=", 1)[0] in MAKE_VARS


def test_every_make_variable_named_exists_in_the_makefile():
    assert set(MAKE_VARIABLES.values()) <= MAKE_VARS
    assert "SCRAPE_RATE" in MAKE_VARS


def test_the_cli_refuses_with_one_line_and_exit_2_before_anything_starts(tmp_path, capsys):
    from edgebench.cli import main
    code = main(["bench", "--scrape-rate", "0", "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("edgebench: SCRAPE_RATE='0' must be > 0")
    assert not (tmp_path / "results").exists()


# --- the sensor service's settings use the same checker ------------------------------------

@pytest.mark.parametrize("env, start", [
    ({"SENSOR_PORT": "0"}, "SENSOR_PORT='0' must be from 1 to 65535"),
    ({"SENSOR_SEED": "-1"}, "SENSOR_SEED='-1' must be >= 0"),
    ({"SENSOR_EXTRA_CPU_MS": "inf"}, "SENSOR_EXTRA_CPU_MS='inf' is not a finite number"),
    ({"SENSOR_MAX_CONNECTIONS": "0"}, "SENSOR_MAX_CONNECTIONS='0' must be > 0"),
    ({"SENSOR_IDLE_TIMEOUT_S": "soon"}, "SENSOR_IDLE_TIMEOUT_S='soon' is not a number"),
])
def test_service_settings_go_through_the_same_checker(env, start):
    from service.config import ConfigError, parse_config
    with pytest.raises(ConfigError) as err:
        parse_config([], env)
    assert one_line(err.value).startswith(start)


def test_service_settings_accept_their_bounds():
    from service.config import parse_config
    c = parse_config(["--port", "65535"], {"SENSOR_SEED": "0", "SENSOR_EXTRA_CPU_MS": "0",
                                           "SENSOR_IDLE_TIMEOUT_S": "0.5"})
    assert (c.port, c.seed, c.extra_cpu_ms) == (65535, 0, 0.0)
    assert dict(c.limits) == {"idle_timeout_s": 0.5} and type(c.port) is int


@pytest.mark.parametrize("argv, start", [
    (["bench", "--workers", "9"], "WORKERS=9 exceeds the 4 load users"),
    (["capacity", "--max-series", "many"], "MAX_SERIES='many' is not a whole number"),
    (["steps", "--rounds", "1"], "ROUNDS='1' must be >= 2"),
    (["steps", "--rounds", "x"], "ROUNDS='x' is not a whole number"),
    (["gate-calibrate", "--runs", "0"], "N='0' must be >= 1"),
    (["collectors", "--rounds", "-1"], "ROUNDS='-1' must be >= 0"),
    (["collectors", "--cap", "soon"], "CAP='soon' is not a number"),
])
def test_every_command_names_the_make_variable(tmp_path, capsys, argv, start):
    """What `make bench|capacity|steps|gate-calibrate|collectors VAR=...` refuses names VAR,
    a variable the Makefile has; one line, exit 2, nothing written."""
    from edgebench.cli import main
    code = main([*argv, "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"edgebench: {start}"), err
    assert err.split(": ", 1)[1].split("=", 1)[0] in MAKE_VARS
    assert not (tmp_path / "results").exists()
