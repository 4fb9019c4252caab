"""The gate's verdict, round loop, budgets file, stored baselines and outputs, on
constructed rounds with known answers (no processes)."""
import argparse
import json
import math
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edgebench.gate.figures import FIGURES, figures_from_summary
from edgebench.gate.loop import BUDGET, DECIDED, FAILED, MAX_ROUNDS, run_rounds
from edgebench.gate.outputs import junit, markdown, table
from edgebench.gate.verdict import Round, evaluate
from reports.budgets import AB, ABMetric, Budget, BudgetError, GateConfig, load_budgets
from tests import sources

ROOT = Path(__file__).resolve().parent.parent

CONFIG = GateConfig(
    budgets=[Budget(metric="service_mem_peak_mb", max=45), Budget(metric="oom_kills", max=0),
             Budget(metric="restarts", max=0), Budget(metric="metrics_failure_ratio", max=0.0, over="paired"),
             Budget(metric="mem_slope_kb_per_request", max=5.0, over="median")],
    ab=AB(metrics=[ABMetric(metric="cpu_ms_per_request", min_effect=0.10, spread=0.05),
                   ABMetric(metric="scrape_latency_ms", min_effect=0.10, spread=0.06),
                   ABMetric(metric="service_mem_steady_mb", min_effect=3.0, relative=False, spread=0.2)],
          alpha=0.05, min_rounds=3, max_rounds=8, time_budget_s=100))


def figures(cpu=2.0, lat=5.0, mem=27.0, **over):
    f = {"cpu_ms_per_request": cpu, "scrape_latency_ms": lat, "service_mem_steady_mb": mem,
         "service_mem_peak_mb": mem + 3, "stack_mem_peak_mb": mem + 10, "oom_kills": 0.0,
         "restarts": 0.0, "metrics_failure_ratio": 0.0, "scrape_p95_ms": lat * 2,
         "cpu_ms_per_scrape": cpu, "mem_slope_kb_per_request": 0.5, "requests": 100.0}
    f.update(over)
    return f


DRIFT = [1.0, 1.3, 0.85, 1.1, 0.95, 1.2, 0.9, 1.05]     # the machine moves both sides alike


def rounds(cpu_ratios, lat_ratio=1.0, mem_delta=0.0, **b_over):
    return [Round(i + 1, a=figures(2.0 * DRIFT[i], 5.0 * DRIFT[i]),
                  b=figures(2.0 * DRIFT[i] * r, 5.0 * DRIFT[i] * lat_ratio, 27.0 + mem_delta, **b_over))
            for i, r in enumerate(cpu_ratios)]


def by_name(result):
    return {c.name: c for c in result.checks}


def test_unchanged_code_passes_despite_drift():
    res = evaluate(rounds([1.01, 0.99, 1.0, 1.02]), CONFIG)
    assert res.verdict == "pass" and res.exit_code == 0, table(res)
    cpu = by_name(res)["A/B: cpu_ms_per_request"]
    assert cpu.rounds == 4 and cpu.high < 0.10 and cpu.p_value is not None
    assert any(n.startswith("resolution of the A/B on cpu_ms_per_request") for n in res.notes)


def test_cpu_regression_is_caught_and_every_line_shows_its_evidence():
    res = evaluate(rounds([1.20, 1.22, 1.19, 1.21]), CONFIG)
    assert res.verdict == "regression" and res.exit_code == 1
    cpu = by_name(res)["A/B: cpu_ms_per_request"]
    assert cpu.verdict == "regression" and cpu.change == pytest.approx(0.205, abs=0.01)
    line = [ln for ln in table(res).splitlines() if ln.startswith("regression: A/B: cpu")][0]
    assert "+20" in line and "[" in line and "4 rounds" in line and "p=" in line


def test_straddling_interval_waits_at_an_early_look_and_is_decided_at_the_last():
    rs = rounds([1.02, 1.12, 1.06, 1.10])
    early = evaluate(rs, CONFIG, final=False)
    assert early.verdict == "inconclusive" and early.exit_code == 3
    last = evaluate(rs, CONFIG, final=True)
    assert last.verdict in ("pass", "regression") and "(last look)" in by_name(last)["A/B: cpu_ms_per_request"].detail


def test_a_machine_noisier_than_calibrated_is_said():
    quiet = by_name(evaluate(rounds([1.01, 0.99, 1.0, 1.02]), CONFIG))["A/B: cpu_ms_per_request"]
    assert "noisier than the calibration" not in quiet.detail
    noisy = by_name(evaluate(rounds([1.15, 0.85, 1.12, 0.9]), CONFIG))["A/B: cpu_ms_per_request"]
    assert "noisier than the calibration, so the stated error rates do not hold" in noisy.detail


def test_too_few_rounds_is_could_not_measure():
    res = evaluate(rounds([1.0, 1.01]), CONFIG, final=True)
    cpu = by_name(res)["A/B: cpu_ms_per_request"]
    assert res.verdict == "inconclusive" and res.exit_code == 3
    assert cpu.detail.startswith("could not measure: 2 round(s)")


def test_leak_shows_in_resting_memory_and_slope_budget():
    res = evaluate(rounds([1.0, 1.01, 0.99], mem_delta=8.0, mem_slope_kb_per_request=60.0), CONFIG)
    c = by_name(res)
    assert c["A/B: service_mem_steady_mb"].verdict == "regression"
    assert c["A/B: service_mem_steady_mb"].change == pytest.approx(8.0)
    assert c["budget: mem_slope_kb_per_request"].verdict == "regression"


def test_one_oom_kill_in_any_round_fails_and_is_named():
    rs = rounds([1.0, 1.0, 1.0])
    rs[1].b["oom_kills"] = 1.0
    res = evaluate(rs, CONFIG)
    oom = by_name(res)["budget: oom_kills"]
    assert oom.verdict == "regression" and "OOM-killed 1 time(s)" in oom.detail
    assert "1 of 3 round(s) over" in oom.detail


def test_any_budget_is_judged_against_as_same_round():
    rs = rounds([1.0, 1.0, 1.0])
    rs[1].b["restarts"] = 1                       # a restart on B ...
    rs[1].a["restarts"] = 1                       # ... and on A in that round: the machine
    check = by_name(evaluate(rs, CONFIG))["budget: restarts"]
    assert check.verdict == "pass" and "1 with A as bad in the same round" in check.detail
    rs[2].b["restarts"] = 1                       # B alone in another round: the change
    assert by_name(evaluate(rs, CONFIG))["budget: restarts"].verdict == "regression"


def test_paired_budget_needs_b_to_be_the_worse_side_beyond_chance():
    """Scattered omitted scrapes on either side are the machine; B failing in every round
    where A does not is the change (one-sided sign test, p < 0.05)."""
    rs = rounds([1.0] * 7)
    rs[1].b["metrics_failure_ratio"] = 0.01       # a stall on B's side in one round ...
    rs[4].a["metrics_failure_ratio"] = 0.02       # ... and on A's in another
    rs[5].b["metrics_failure_ratio"] = 0.01
    check = by_name(evaluate(rs, CONFIG))["budget: metrics_failure_ratio"]
    assert check.verdict == "pass" and "B alone over in 2 round(s), A alone in 1" in check.detail
    for r in rs:                                  # B loses scrapes in every round, A in none
        r.b["metrics_failure_ratio"], r.a["metrics_failure_ratio"] = 0.05, 0.0
    check = by_name(evaluate(rs, CONFIG))["budget: metrics_failure_ratio"]
    assert check.verdict == "regression" and "p = 0.00781" in check.detail
    for r in rs[:3]:                              # 4 of 4 is not beyond chance (p = 0.0625)
        r.b["metrics_failure_ratio"] = 0.0
    assert by_name(evaluate(rs, CONFIG))["budget: metrics_failure_ratio"].verdict == "pass"


def test_paired_budget_does_not_count_rounds_where_both_sides_failed():
    """docs/gate.md: only rounds where exactly one side is over the bound count; both
    sides over, by whatever amounts (B the worse one), is the machine's stall."""
    rs = rounds([1.0] * 7)
    for r in rs:                                  # both sides lose scrapes, B a few more
        r.a["metrics_failure_ratio"], r.b["metrics_failure_ratio"] = 0.01, 0.03
    check = by_name(evaluate(rs, CONFIG))["budget: metrics_failure_ratio"]
    assert check.verdict == "pass" and "B alone over in 0 round(s), A alone in 0" in check.detail
    for r in rs[:5]:                              # A clean in 5 of them: B alone over, 5 of 5
        r.a["metrics_failure_ratio"] = 0.0
    check = by_name(evaluate(rs, CONFIG))["budget: metrics_failure_ratio"]
    assert check.verdict == "regression" and "B alone over in 5 round(s), A alone in 0" in check.detail


def test_median_budget_ignores_one_noisy_round():
    rs = rounds([1.0, 1.0, 1.0])
    rs[0].b["mem_slope_kb_per_request"] = 40.0     # one round's allocator warming up
    assert by_name(evaluate(rs, CONFIG))["budget: mem_slope_kb_per_request"].verdict == "pass"


def test_nothing_measured_is_an_error():
    res = evaluate([Round(1, b=dict.fromkeys(FIGURES))], CONFIG)
    assert res.verdict == "error" and res.exit_code == 2
    assert "nothing was measured" in res.errors[0]


def test_budgets_only_has_no_ab():
    res = evaluate([Round(1, b=figures())], CONFIG, compare=False)
    assert res.verdict == "pass" and not any(c.name.startswith("A/B") for c in res.checks)


def test_stored_baseline_rounds_are_compared_unpaired():
    stored = [figures(2.0), figures(2.1), figures(1.9)]
    rs = [Round(i + 1, b=figures(2.5 + 0.05 * i)) for i in range(3)]
    cpu = by_name(evaluate(rs, CONFIG, stored_a=stored))["A/B: cpu_ms_per_request"]
    assert cpu.verdict == "regression" and cpu.change == pytest.approx(0.26, abs=0.03)


# --------------------------------------------------------------------- the round loop

class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _loop(ratios, budget_s=100, round_s=15, max_rounds=8, fail_at=None):
    clock = Clock()
    made = rounds(ratios)

    def measure(i):
        clock.t += round_s
        r = made[i - 1]
        if i == fail_at:
            r.errors.append("B round 2: StackError: sensor-service never became healthy")
        return r

    return run_rounds(measure, lambda rs, final: evaluate(rs, CONFIG, final=final), CONFIG.min_rounds,
                      max_rounds, budget_s, clock)


def test_loop_stops_as_soon_as_it_can_decide():
    out = _loop([1.20, 1.21, 1.22, 1.2, 1.2, 1.2, 1.2, 1.2])
    assert out.stopped == DECIDED and len(out.rounds) == 3 and out.result.verdict == "regression"


def test_loop_adds_rounds_until_decided():
    # noisy first rounds straddle +10%, later ones settle near +1%: decided as a pass later
    out = _loop([1.02, 1.14, 0.98, 1.01, 1.0, 1.01, 1.0, 1.0], budget_s=1000)
    assert out.stopped == DECIDED and out.result.verdict == "pass"
    assert 3 < len(out.rounds) <= 8


def test_loop_decides_at_the_last_round_the_time_budget_allows():
    out = _loop([1.02, 1.12, 1.06, 1.10, 1.02, 1.12, 1.06, 1.10], budget_s=50, round_s=15)
    assert out.stopped == BUDGET and len(out.rounds) == 3      # a 4th would end at 60 s > 50 s
    assert out.result.verdict in ("pass", "regression") and out.elapsed_s == 45


def test_loop_decides_at_the_round_limit():
    out = _loop([1.02, 1.12, 1.06, 1.10, 1.02], budget_s=10_000, max_rounds=5)
    assert out.stopped == MAX_ROUNDS and len(out.rounds) == 5
    assert out.result.verdict in ("pass", "regression")


def test_loop_stops_on_a_failed_round_with_an_error():
    out = _loop([1.0, 1.0, 1.0], fail_at=2)
    assert out.stopped == FAILED and len(out.rounds) == 2
    assert out.result.verdict == "error" and "never became healthy" in out.result.errors[0]


# --------------------------------------------------------------------- figures, files, outputs

def test_figures_are_read_from_the_report_summary_by_name():
    f = figures_from_summary({"cpu_ms_per_request": 2.5, "scrape_latency_ms": {"p50": 4.0, "p95": 9.0},
                              "service_mem_steady_mb": 27.0, "oom_kills_total": 1,
                              "latency_ms_by_endpoint": {"/metrics": {"count": 50, "failures": 5}}})
    assert f["cpu_ms_per_request"] == 2.5 and f["scrape_latency_ms"] == 4.0 and f["scrape_p95_ms"] == 9.0
    assert f["oom_kills"] == 1 and f["metrics_failure_ratio"] == 0.1
    assert f["mem_slope_kb_per_request"] is None


def test_outputs_are_well_formed():
    res = evaluate(rounds([1.3, 1.31, 1.29]), CONFIG)
    suite = ET.fromstring(junit(res))
    assert int(suite.get("tests")) == len(res.checks) and int(suite.get("failures")) >= 1
    assert "**Verdict: regression** (exit 1) after 3 round(s)" in markdown(res)
    assert table(res).endswith("verdict: regression (exit 1)")


def test_repository_budgets_file_loads():
    cfg = load_budgets(ROOT / "budgets.yml")
    assert {"service_mem_peak_mb", "stack_mem_peak_mb", "oom_kills", "restarts"} <= {b.metric for b in cfg.budgets}
    assert all(b.why for b in cfg.budgets)
    assert cfg.time_budget_s == 180 and [m.metric for m in cfg.ab_metrics] == [
        "cpu_ms_per_request", "scrape_latency_ms", "service_mem_steady_mb"]


def test_every_budget_metric_is_a_figure_the_gate_reads():
    """budgets.yml's metric names (reports.figures) are the gate's round figures: a budget
    the file accepts is never 'not measured' for want of a name."""
    from reports.figures import BUDGET_FIGURES, GATE_FIGURES
    assert set(BUDGET_FIGURES) | set(GATE_FIGURES) <= set(FIGURES)


@pytest.mark.parametrize("text, message", [
    ("budgets: [", "invalid YAML at line 1 column 11: expected the node content"),
    ("nothing: 1", "no 'budgets:' section: write a 'budgets:' list"),
    ("budgets: {}", "budgets: {} is not valid: input should be a valid list"),
    ("budgets:\n  - metric: nope\n    max: 1", "budgets[0].metric: 'nope' is unknown: use one of "),
    ("budgets:\n  - metric: oom_kills", "budgets[0]: 'max' is missing: add it"),
    ("budgets:\n  - {metric: oom_kills, max: 0, over: mean}", "budgets[0].over: 'mean' is not valid: "
     "input should be 'any', 'paired' or 'median'"),
    ("budgets: []\nab: {alpha: 0.7}", "ab: alpha=0.7 must be between 0 and 0.5: use e.g. 0.01"),
    ("budgets: []\nab: {min_rounds: 1}", "min_rounds must be at least 2"),
    ("budgets: []\nab: {metrics: [{metric: throughput, min_effect: 0.1}]}",
     "ab.metrics[0].metric: 'throughput' is unknown: use one of cpu_ms_per_request"),
    # a typo is refused with the keys that exist, never taken as a default
    ("budgets: []\nab: {metrics: [{metric: cpu_ms_per_request, min_efect: 0.1}]}",
     "ab.metrics[0]: unknown key 'min_efect' (known: metric, min_effect, relative, unit, spread, margin, weight): "
     "fix the spelling or remove it"),
    ("budgets:\n  - {metric: oom_kills, max: 0, ovr: any}",
     "budgets[0]: unknown key 'ovr' (known: metric, max, why, over): fix the spelling"),
    ("budgets: []\nab: {alfa: 0.01}", "ab: unknown key 'alfa' (known: alpha, min_rounds,"),
    ("budgets: []\nbudget: []", "budgets.yml: unknown key 'budget' (known: budgets, ab, cost)"),
    # a wrong type is one line too, never coerced
    ("budgets:\n  - {metric: oom_kills, max: '3'}", "budgets[0].max: '3' is not valid: input should be a valid number"),
    ("budgets:\n  - {metric: oom_kills, max: true}", "budgets[0].max: True is not valid"),
    ("budgets: []\nab: {min_rounds: 2.5}", "ab.min_rounds: 2.5 is not valid: input should be a valid integer"),
    ("budgets: []\nab: {alpha: 0}", "ab.alpha: 0 is not valid: input should be greater than 0"),
    ("budgets: []\nab: 3", "ab: 3 is not valid: input should be a valid dictionary"),
])
def test_bad_budgets_file_is_refused(tmp_path, text, message):
    p = tmp_path / "budgets.yml"
    p.write_text(text)
    with pytest.raises(BudgetError) as e:
        load_budgets(p)
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith(str(p))


def _stored_gate_run(tmp_path, machine_overrides):
    from edgebench.fingerprint import machine_fingerprint
    run = tmp_path / "20260101T000000Z-gate"
    (run / "B.r1").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"machine": {**machine_fingerprint(), **machine_overrides}}))
    (run / "B.r1" / "scenario.json").write_text(json.dumps({"limits": {
        "sensor-service": {"mem_limit_bytes": 50 * 2**20, "cpus": 0.5}}}))
    return run


@pytest.mark.slow
def test_stored_baseline_from_this_machine_is_accepted(tmp_path):
    from edgebench.gate.baseline import check_stored_baseline
    run = _stored_gate_run(tmp_path, {})
    assert check_stored_baseline(run) == [run / "B.r1"]


@pytest.mark.slow
def test_stored_baseline_from_another_machine_is_refused(tmp_path):
    from edgebench.gate.baseline import check_stored_baseline
    from plumbing.errors import EdgebenchError
    run = _stored_gate_run(tmp_path, {"cpu_model": "Some Other CPU", "cores": 64})
    with pytest.raises(EdgebenchError, match="was measured elsewhere.*cpu_model.*Some Other CPU"):
        check_stored_baseline(run)
    assert check_stored_baseline(run, allow_other_machine=True) == [run / "B.r1"]
    out = subprocess.run([str(ROOT / "bin" / "edgebench"), "gate", "--baseline", str(run),
                          "--results", str(tmp_path / "res")], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "was measured elsewhere" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


@pytest.mark.slow
def test_stored_baseline_under_other_limits_is_refused(tmp_path):
    from edgebench.gate.baseline import check_stored_baseline
    from plumbing.errors import EdgebenchError
    run = _stored_gate_run(tmp_path, {})
    (run / "B.r1" / "scenario.json").write_text(json.dumps({"limits": {
        "sensor-service": {"mem_limit_bytes": 100 * 2**20, "cpus": 1.0}}}))
    with pytest.raises(EdgebenchError, match="sensor-service limits"):
        check_stored_baseline(run)


@pytest.mark.slow  # resolves the reverted step's commit with git
def test_calibration_conditions_and_knob_conversion(tmp_path):
    from edgebench.gate.calibrate import parse_conditions
    from edgebench.gate.faults import cpu_regression_knob
    conds = parse_conditions("unchanged,cpu+10%,cpu+20%,leak64k,leak4k,sensor1ms,revert:lean-server")
    assert [(c.kind, c.size) for c in conds] == [("unchanged", 0.0), ("cpu", 0.10), ("cpu", 0.20),
                                                 ("leak", 65536), ("leak", 4096), ("sensor", 1.0),
                                                 ("revert", 0.0)]
    assert conds[-1].step == "lean-server"
    with pytest.raises(Exception, match="'cpu10' is unknown"):
        parse_conditions("cpu10")
    with pytest.raises(Exception, match="revert:nope: no such step; steps are blob-bytes"):
        parse_conditions("revert:nope")
    with pytest.raises(Exception, match="changed the healthcheck, not service/"):
        parse_conditions("revert:wget-healthcheck")
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "config.py").write_text("SENSOR_EXTRA_CPU_MS = 'knob'\n")
    env, line = cpu_regression_knob(0.10, 2.0, tmp_path)
    assert env == {"SENSOR_EXTRA_CPU_MS": "0.2000"} and "+10% of 2 ms per scrape" in line
    env, line = cpu_regression_knob(0.10, 2.0, ROOT) if "SENSOR_EXTRA_CPU_MS" not in \
        (ROOT / "service" / "config.py").read_text() else ({"SENSOR_EXTRA_CPU_ITERATIONS": "1"}, "ns per iteration")
    assert "ns per iteration" in line and int(next(iter(env.values()))) >= 1


def test_calibration_table_gives_every_rate_an_exact_interval_and_the_spread():
    from edgebench.gate.calibrate import ConditionResult, markdown_table, pooled_spread
    r = ConditionResult("unchanged", "no change", {}, "none", verdicts=["pass"] * 10,
                        load=[(1.0, 1.5, 0.01)] * 10)
    lo, hi = r.interval("regression")
    assert lo == 0 and hi == pytest.approx(0.3085, abs=1e-3)         # 0 of 10: below 31%, no better
    md = markdown_table([r], "header", {"cpu_ms_per_request": (0.05, 12)})
    assert "0/10 [0%, 31%]" in md and "10/10 [69%, 100%]" in md and "1.25 (1.00 to 1.50)" in md
    assert "cpu_ms_per_request: 0.05 (12 degrees of freedom)" in md
    sd, df = pooled_spread([{"m": [0.1, -0.1]}, {"m": [1.1, 0.9, 1.0]}], "m")
    assert df == 3 and sd == pytest.approx(math.sqrt((0.02 + 0.02) / 3))   # each gate about its own mean


def test_slots_alternate_and_the_order_is_recorded():
    from edgebench.rounds import Side, slot_order
    sides = [Side("A", ROOT), Side("B", ROOT)]
    orders = [[s.label for s in slot_order(sides, i)] for i in (1, 2, 3, 4)]
    assert orders == [["A", "B"], ["B", "A"], ["A", "B"], ["B", "A"]]


def test_no_import_cycle_and_no_private_cross_module_import():
    """Imports inside functions count too: they used to hide a bench <-> gate <-> profile
    circle. Walks every import of the project's packages and looks for a cycle."""
    import ast
    packages = ("edgebench", "reports", "stack", "loadtests", "profiling", "service", "plumbing")

    def resolve(name):
        parts = name.split(".")
        while parts:
            if (ROOT.joinpath(*parts).with_suffix(".py")).exists() or ROOT.joinpath(*parts, "__init__.py").exists():
                return ".".join(parts)
            parts = parts[:-1]

    graph, private = {}, []
    for p in (f for pkg in packages for f in (ROOT / pkg).rglob("*.py")):
        rel = p.relative_to(ROOT)
        mod = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        deps = graph.setdefault(mod, set())
        for node in sources.imports(p):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
                if node.module.startswith("edgebench"):
                    private += [f"{mod}: {n}" for n in names if n.rsplit(".", 1)[1].startswith("_")]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for n in names:
                target = resolve(n) if n.split(".")[0] in packages else None
                if target and target != mod and not mod.startswith(target + "."):
                    deps.add(target)
    state = {}

    def visit(v, path):
        state[v] = "open"
        for w in graph.get(v, ()):
            assert state.get(w) != "open", "import cycle: " + " -> ".join(path + [v, w])
            if w not in state:
                visit(w, path + [v])
        state[v] = "done"

    for v in list(graph):
        if v not in state:
            visit(v, [])
    assert not private, private


@pytest.mark.parametrize("args, message", [
    (("--rounds", "1"), "--rounds=1: the statistics need at least 2 rounds"),
    (("--time-budget", "0"), "--time-budget=0: pass a positive number of seconds"),
    (("--inject", "NOEQUALS"), "--inject 'NOEQUALS': expected KEY=VALUE"),
    (("--budgets", "/nonexistent/budgets.yml"), "/nonexistent/budgets.yml: cannot read the file"),
])
@pytest.mark.slow
def test_bad_gate_parameters_are_one_line_exit_2(tmp_path, args, message):
    out = subprocess.run([str(ROOT / "bin" / "edgebench"), "gate", "--results", str(tmp_path / "r"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_every_command_is_reachable():
    """Each documented command is a subcommand of the parser, with a handler."""
    from edgebench.cli import build_parser
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in ("bench", "profile", "report", "gate", "gate-calibrate", "steps", "capacity", "up", "down",
                 "status"):
        assert name in sub.choices, name
        assert callable(sub.choices[name].get_default("command_fn")), name


def test_figures_of_a_constructed_scenario_come_from_the_report(tmp_path):
    """The names the gate reads exist in the report's summary: a renamed figure fails here."""
    from edgebench.gate.figures import measure_figures
    from tests.fixtures_results import build_scenario
    build_scenario(tmp_path, "optimized-vm")
    f = measure_figures(tmp_path / "optimized-vm")
    for name in ("cpu_ms_per_request", "scrape_latency_ms", "service_mem_steady_mb", "service_mem_peak_mb",
                 "oom_kills", "restarts", "metrics_failure_ratio", "scrape_p95_ms", "requests"):
        assert f[name] is not None, name
    assert f["cpu_ms_per_request"] > 0 and f["requests"] > 0 and f["metrics_failure_ratio"] == 0
    assert measure_figures(tmp_path / "missing") == dict.fromkeys(FIGURES)


@pytest.mark.slow
def test_a_killed_gates_worktree_is_removed_by_the_next(tmp_path):
    """A gate killed with SIGKILL cannot remove its checkout of A; the next gate does,
    and leaves a live gate's checkout alone."""
    import os

    from edgebench.gitref import PREFIX, remove_orphan_worktrees, worktree
    repo = tmp_path / "repo"
    (repo / "service").mkdir(parents=True)
    (repo / "service" / "__main__.py").write_text("")
    git = ["git", "-C", str(repo), "-c", "user.email=e@x", "-c", "user.name=e"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f"{PREFIX}{dead.pid}-x" / "ref"
    subprocess.run(git + ["worktree", "add", "--detach", "-q", str(orphan), "HEAD"], check=True)
    with worktree("HEAD", repo=repo) as live:
        assert live.parent.name.startswith(f"{PREFIX}{os.getpid()}-") and live.exists()
        assert not orphan.exists()                       # removed on the way in
        assert remove_orphan_worktrees(repo) == []       # our own, live, stays
        assert live.exists()
    assert not live.exists()
    listing = subprocess.run(git + ["worktree", "list"], capture_output=True, text=True).stdout
    assert len(listing.strip().splitlines()) == 1


def test_no_package_below_edgebench_imports_it():
    """The layers: plumbing -> service, stack, profiling, loadtests -> reports -> edgebench.
    A report module importing edgebench (as the capacity analysis once did) points upward."""
    import ast
    below = ("reports", "stack", "loadtests", "profiling", "service", "plumbing")
    upward = []
    for p in (f for pkg in below for f in (ROOT / pkg).rglob("*.py")):
        for node in sources.imports(p):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            upward += [f"{p.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "edgebench"]
    assert not upward, upward
