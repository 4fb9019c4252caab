"""The gate's verdict on constructed rounds with known answers (no processes)."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports.gate import (BudgetError, evaluate, junit, load_budgets, markdown,
                          round_figure, table)
from reports.load import load_scenario
from tests.fixtures_results import build_scenario

ROOT = Path(__file__).resolve().parent.parent

CONFIG = {
    "budgets": [
        {"metric": "service_mem_peak_mb", "max": 45},
        {"metric": "oom_kills", "max": 0},
        {"metric": "restarts", "max": 0},
        {"metric": "metrics_failure_ratio", "max": 0.0},
    ],
    "ab": {"alpha": 0.01, "window_s": 5,
           "metrics": [{"metric": "cpu_ms_per_request", "min_effect": 0.10, "relative": True}]},
}


def _rounds(tmp_path, name, n, seed0=0, sub="x"):
    out = []
    for r in range(1, n + 1):
        d = tmp_path / sub
        d.mkdir(exist_ok=True)
        build_scenario(d, name, repeat=r, seed=seed0 + r)
        dirname = name if r == 1 else f"{name}.r{r}"
        out.append(load_scenario(d / dirname))
    return out


def test_unchanged_code_passes(tmp_path):
    a = _rounds(tmp_path, "optimized-vm", 3, 0, "a")
    b = _rounds(tmp_path, "optimized-vm", 3, 10, "b")
    res = evaluate(b, a, CONFIG)
    assert res.verdict == "pass", table(res)
    assert res.exit_code == 0
    assert any("A/A of" in n for n in res.notes) and any("noise floor" in n for n in res.notes)


def test_cpu_regression_and_oom_kills_are_caught(tmp_path):
    a = _rounds(tmp_path, "optimized-vm", 3, 0, "a")
    b = _rounds(tmp_path, "baseline-vm", 3, 10, "b")    # far more CPU, OOM-killed
    res = evaluate(b, a, CONFIG)
    assert res.verdict == "regression"
    assert res.exit_code == 1
    by = {c.name: c for c in res.checks}
    assert by["A/B: cpu_ms_per_request"].verdict == "regression"
    assert by["budget: oom_kills"].verdict == "regression"
    assert "OOM-killed" in by["budget: oom_kills"].detail
    assert round_figure(b, "oom_kills") >= 1


def test_nothing_measured_is_an_error(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "scenario.json").write_text('{"name": "empty", "status": "failed"}')
    res = evaluate([load_scenario(d)], None, CONFIG)
    assert res.verdict == "error"
    assert res.exit_code == 2
    assert "nothing was measured" in res.errors[0]


def test_outputs_are_well_formed(tmp_path):
    a = _rounds(tmp_path, "optimized-vm", 2, 0, "a")
    b = _rounds(tmp_path, "baseline-vm", 2, 10, "b")
    res = evaluate(b, a, CONFIG)
    suite = ET.fromstring(junit(res))
    assert int(suite.get("tests")) == len(res.checks)
    assert int(suite.get("failures")) >= 2
    md = markdown(res)
    assert "**Verdict: regression** (exit 1)" in md
    assert "verdict: regression (exit 1)" in table(res)


def test_repository_budgets_file_loads():
    cfg = load_budgets(ROOT / "budgets.yml")
    metrics = {b["metric"] for b in cfg["budgets"]}
    assert {"service_mem_peak_mb", "stack_mem_peak_mb", "oom_kills", "restarts"} <= metrics
    assert all(b.get("why") for b in cfg["budgets"])


@pytest.mark.parametrize("text, message", [
    ("budgets: [", "not valid YAML"),
    ("nothing: 1", "needs a 'budgets:' list"),
    ("budgets:\n  - metric: nope\n    max: 1", "metric 'nope' is unknown"),
    ("budgets:\n  - metric: oom_kills", "needs 'metric' and 'max'"),
])
def test_bad_budgets_file_is_refused(tmp_path, text, message):
    p = tmp_path / "budgets.yml"
    p.write_text(text)
    with pytest.raises(BudgetError, match=message):
        load_budgets(p)


def _stored_gate_run(tmp_path, machine_overrides):
    from edgebench.fingerprint import machine_fingerprint
    run = tmp_path / "20260101T000000Z-gate"
    (run / "B.r1").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"machine": {**machine_fingerprint(), **machine_overrides}}))
    (run / "B.r1" / "scenario.json").write_text(json.dumps({"limits": {
        "sensor-service": {"mem_limit_bytes": 50 * 2**20, "cpus": 0.5}}}))
    return run


def test_stored_baseline_from_this_machine_is_accepted(tmp_path):
    from edgebench.gate_plan import check_stored_baseline
    run = _stored_gate_run(tmp_path, {})
    assert check_stored_baseline(run) == [run / "B.r1"]


def test_stored_baseline_from_another_machine_is_refused(tmp_path):
    from edgebench.gate_plan import check_stored_baseline
    from edgebench.scenarios import ParameterError
    run = _stored_gate_run(tmp_path, {"cpu_model": "Some Other CPU", "cores": 64})
    with pytest.raises(ParameterError, match="was measured elsewhere.*cpu_model.*Some Other CPU"):
        check_stored_baseline(run)
    assert check_stored_baseline(run, allow_other_machine=True) == [run / "B.r1"]
    out = subprocess.run([sys.executable, "-m", "edgebench", "gate", "--baseline", str(run),
                          "--results", str(tmp_path / "res")], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "was measured elsewhere" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_stored_baseline_under_other_limits_is_refused(tmp_path):
    from edgebench.gate_plan import check_stored_baseline
    from edgebench.scenarios import ParameterError
    run = _stored_gate_run(tmp_path, {})
    (run / "B.r1" / "scenario.json").write_text(json.dumps({"limits": {
        "sensor-service": {"mem_limit_bytes": 100 * 2**20, "cpus": 1.0}}}))
    with pytest.raises(ParameterError, match="sensor-service limits"):
        check_stored_baseline(run)
