"""The cost tier: its verdict rules and table (pure), the callgrind reader on output
callgrind itself writes, attribution of an injected loop (new function and inside an
existing one) and an added system call through the real server, the whole tier under
valgrind and strace with small batches, and the workflow file users copy."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.cost.calibrate import clopper_pearson, patch, q3_3iqr
from edgebench.cost.callgrind import parse_callgrind
from edgebench.cost.config import CostConfig, CostConfigError, load_cost_config
from edgebench.cost.measure import Plan
from edgebench.cost.verdict import PASS, REGRESSION, SHOWN, compare, disagreement, markdown, table

ROOT = Path(__file__).resolve().parent.parent
SMALL = Plan(warmup=3, n=(("/metrics", 4), ("/sensor", 6), ("/healthz", 4)), n_native=20)


def _side(instructions=1_000_000.0, syscalls=23.0, blocks=1000.0, held=0.0, sched=0.0):
    f = {"instructions": instructions, "alloc_blocks": blocks, "syscalls": syscalls, "held_bytes": held,
         "sched_syscalls": sched, "syscalls_by_name": {"read": syscalls, "futex": sched},
         "py_lines": {"service/core.py:10:exposition": 50.0}, "py_calls": {"service/core.py:10:exposition": 1.0},
         "c_functions": {"_PyEval_EvalFrameDefault": instructions / 3}}
    return {e: dict(f) for e in ("/metrics", "/sensor", "/healthz")}


def test_rows_decide_on_instructions_syscalls_allocations_not_on_scheduling():
    config = CostConfig()
    same = compare(_side(), _side(), config)
    assert same.verdict == PASS
    assert {r.figure for r in same.rows if r.verdict != SHOWN} == {"instructions", "alloc_blocks", "syscalls",
                                                                    "held_bytes"}
    assert compare(_side(), _side(instructions=1_009_000), config).verdict == PASS      # +0.9 % < 1 %
    up = compare(_side(), _side(instructions=1_011_000), config)                        # +1.1 %
    assert up.verdict == REGRESSION
    assert {r.endpoint for r in up.regressions()} == {"/metrics", "/sensor", "/healthz"}
    assert compare(_side(), _side(syscalls=24), config).verdict == REGRESSION
    assert compare(_side(), _side(blocks=1030), config).verdict == REGRESSION
    assert compare(_side(), _side(sched=5), config).verdict == PASS                     # futex: shown only
    lower = compare(_side(), _side(instructions=800_000, syscalls=20), config)
    assert lower.verdict == PASS


def test_table_has_one_line_per_endpoint_and_figure_and_names_the_mover():
    b = _side()
    b["/sensor"] = dict(b["/sensor"], instructions=1_050_000,
                        py_lines={"service/core.py:10:exposition": 50.0, "service/core.py:90:draw_sensor_answer": 900.0})
    result = compare(_side(), b, CostConfig())
    text = table(result)
    assert "regression: /sensor instructions +5.000%" in text
    assert "draw_sensor_answer" in text
    assert "/metrics" in text and text.count("instructions (Ir/req)") == 3
    assert "| /sensor | instructions (Ir/req) | 1,000,000 | 1,050,000 | +5.000% | +1.00% | regression |" \
        in markdown(result)


def test_disagreement_names_the_blind_spot():
    moved = compare(_side(), _side(instructions=1_030_000), CostConfig())
    line = disagreement(moved, 0.01, PASS, 0.10)
    assert line and "round-to-round noise" in line
    still = compare(_side(), _side(), CostConfig())
    line = disagreement(still, 0.3, REGRESSION, 0.10)
    assert line and "kernel time" in line
    assert disagreement(still, 0.01, PASS, 0.10) is None


def test_threshold_rule_and_interval():
    assert q3_3iqr([0.0, 0.001, -0.001, 0.002, 0.0, -0.002, 0.001, 0.003]) == pytest.approx(0.00575)   # |changes| sorted: Q1 0.00075, Q3 0.002
    low, high = clopper_pearson(0, 30)
    assert low == 0.0 and high == pytest.approx(0.1157, abs=1e-3)


def test_bad_cost_section_is_one_line(tmp_path):
    bad = tmp_path / "budgets.yml"
    bad.write_text("budgets: []\ncost:\n  thresholds:\n    instrucions: 0.01\n")
    with pytest.raises(CostConfigError, match="instrucions is not a deciding figure"):
        load_cost_config(bad)
    assert load_cost_config(ROOT / "budgets.yml").threshold("syscalls", "/metrics") > 0


@pytest.mark.slow
def test_callgrind_reader_matches_callgrind_annotate(tmp_path):
    out = tmp_path / "cg.out"
    subprocess.run(["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}", sys.executable,
                    "-S", "-c", "x = [str(i) for i in range(2000)]"], check=True)
    profile = parse_callgrind(out)
    annotate = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True, check=True).stdout
    total = next(int(line.split()[0].replace(",", "")) for line in annotate.splitlines()
                 if "PROGRAM TOTALS" in line)
    assert profile.total == total
    assert sum(profile.self_cost.values()) == total
    assert profile.allocator_calls() >= 2000          # one str per iteration at least


def _lines_only(tree: Path, config=CostConfig(plan=SMALL), instruments=("lines",)):
    from edgebench.cost.tier import measure_sides
    return measure_sides({"A": ROOT, "B": tree}, config, instruments=instruments, jobs=2)


@pytest.mark.slow
@pytest.mark.parametrize("kind,endpoint,named", [
    ("metrics-2", "/metrics", "service/exposition.py:_injected_cost"),               # a new function
    ("metrics-inline", "/metrics", "service/exposition.py:CachedExposition.render"),  # inside an existing one
    ("sensor-2", "/sensor", "service/core.py:draw_sensor_answer"),
])
def test_an_injected_loop_is_named(kind, endpoint, named):
    from edgebench.cost.verdict import movers
    tree = patch(ROOT, kind)
    try:
        figures = _lines_only(tree)
    finally:
        shutil.rmtree(tree)
    moved = movers(figures["A"][endpoint], figures["B"][endpoint])
    assert moved and named in moved[0], moved
    other = "/healthz"
    assert not [m for m in movers(figures["A"][other], figures["B"][other]) if "service/" in m]


@pytest.mark.slow
def test_one_more_system_call_per_scrape_is_counted():
    tree = patch(ROOT, "syscall")
    try:
        figures = _lines_only(tree, instruments=("strace",))
    finally:
        shutil.rmtree(tree)
    a, b = figures["A"]["/metrics"], figures["B"]["/metrics"]
    assert b["syscalls"] - a["syscalls"] == pytest.approx(1.0)
    assert b["syscalls_by_name"]["newfstatat"] - a["syscalls_by_name"]["newfstatat"] == pytest.approx(1.0)
    assert figures["B"]["/healthz"]["syscalls"] == figures["A"]["/healthz"]["syscalls"]


@pytest.mark.slow
def test_cost_command_catches_five_percent_and_passes_unchanged(tmp_path):
    budgets = tmp_path / "budgets.yml"
    budgets.write_text((ROOT / "budgets.yml").read_text().replace(
        "n: {/metrics: 30, /sensor: 100, /healthz: 40}", "n: {/metrics: 5, /sensor: 10, /healthz: 5}").replace(
        "n_native: 100 ", "n_native: 20 "))
    tree = patch(ROOT, "metrics-5")
    try:
        out = subprocess.run([sys.executable, "-m", "edgebench", "cost", "--a-source", str(ROOT), "--b-source",
                              str(tree), "--budgets", str(budgets)], cwd=ROOT, capture_output=True, text=True,
                             timeout=900)
    finally:
        shutil.rmtree(tree)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "regression: /metrics instructions" in out.stdout
    assert "_injected_cost" in out.stdout
    assert "regression: /sensor" not in out.stdout and "regression: /healthz" not in out.stdout


@pytest.mark.slow
def test_workflow_file_is_a_valid_github_workflow():
    tool = Path(sys.executable).with_name("check-jsonschema")
    if not tool.exists():
        pytest.fail("check-jsonschema is missing: run `make setup` (requirements.txt pins it)")
    out = subprocess.run([str(tool), "--builtin-schema", "vendor.github-workflows",
                          str(ROOT / ".github" / "workflows" / "gate.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (ROOT / ".github" / "workflows" / "gate.yml").read_text()
    assert "pull_request" in text and "bin/edgebench gate" in text and "upload-artifact" in text
