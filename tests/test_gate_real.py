"""make gate for real: the service under its limits, side by side with a git ref,
and the fault-injection knobs proving that regressions are caught."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native engine's limits need root")

# About +25% CPU per scrape for the optimized service (about 2.2 ms per scrape here;
# one injected iteration costs about 70 ns).
PLUS_25_PERCENT_CPU = "SENSOR_EXTRA_CPU_ITERATIONS=8000"


def gate(tmp_path, *args, timeout=600):
    out = subprocess.run([sys.executable, "-m", "edgebench", "gate", "--results", str(tmp_path),
                          *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    runs = sorted(tmp_path.glob("*-gate"))
    result = json.loads((runs[-1] / "gate.json").read_text()) if runs and (runs[-1] / "gate.json").exists() else None
    return out, result


def checks(result):
    return {c["name"]: c for c in result["checks"]}


def test_unchanged_code_passes(tmp_path):
    out, result = gate(tmp_path, "--against", "HEAD", "--rounds", "3")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert result["verdict"] == "pass"
    ab = checks(result)["A/B: cpu_ms_per_request"]
    assert ab["before"] > 0 and ab["after"] > 0
    run = sorted(tmp_path.glob("*-gate"))[-1]
    assert (run / "gate.md").read_text().count("| budget:") >= 8
    assert "<testsuite" in (run / "junit.xml").read_text()


def test_plus_25_percent_cpu_per_scrape_is_a_regression(tmp_path):
    out, result = gate(tmp_path, "--against", "HEAD", "--rounds", "3", "--inject", PLUS_25_PERCENT_CPU)
    assert out.returncode == 1, out.stdout[-3000:]
    cpu = checks(result)["A/B: cpu_ms_per_request"]
    assert cpu["verdict"] == "regression"
    assert cpu["after"] > 1.1 * cpu["before"]
    assert any("where the CPU went" in n and "injected_cpu_work" in n for n in result["notes"]), result["notes"]


def test_memory_retained_per_scrape_is_caught(tmp_path):
    out, result = gate(tmp_path, "--budgets-only", "--rounds", "2",
                       "--inject", "SENSOR_LEAK_BYTES_PER_SCRAPE=20000")
    assert out.returncode == 1, out.stdout[-3000:]
    c = checks(result)
    assert c["budget: mem_slope_kb_per_request"]["verdict"] == "regression"
    assert c["budget: mem_slope_kb_per_request"]["after"] > 2.0


def test_exceeding_the_memory_limit_names_the_oom_kill(tmp_path):
    out, result = gate(tmp_path, "--budgets-only", "--rounds", "1",
                       "--inject", "SENSOR_LEAK_BYTES_PER_SCRAPE=400000")
    assert out.returncode == 1, out.stdout[-3000:]
    oom = checks(result)["budget: oom_kills"]
    assert oom["verdict"] == "regression" and oom["after"] >= 1
    assert "OOM-killed" in oom["detail"]
    assert "OOM-killed" in out.stdout


def test_a_service_that_never_comes_up_is_an_error_not_a_pass(tmp_path):
    out, result = gate(tmp_path, "--budgets-only", "--rounds", "1", "--inject", "SENSOR_VARIANT=nope")
    assert out.returncode == 2, out.stdout[-3000:]
    assert result["verdict"] == "error"
    assert any("sensor-service" in e for e in result["errors"]), result["errors"]


def test_unknown_ref_is_refused_before_anything_starts(tmp_path):
    out, _ = gate(tmp_path, "--against", "no-such-ref-xyz", timeout=60)
    assert out.returncode == 2
    assert "AGAINST='no-such-ref-xyz' is not a git ref" in out.stderr
    assert not list(tmp_path.glob("*-gate"))
