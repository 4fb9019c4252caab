"""The optimisation steps: the steps file, the report section's blocks, one real short run."""
from __future__ import annotations

import math
import os
import subprocess

import pytest
import yaml

from edgebench.results import ROOT
from edgebench.scenarios import ParameterError
from edgebench.steps import (
    FIGURES,
    NOT_MEASURED,
    OK,
    STEPS_FILE,
    StepsFileError,
    figure_effect,
    load_steps,
    resolve_commit,
    select_steps,
)
from reports.markdown import to_markdown
from reports.steps_section import HEADING, TABLE_HEADERS, steps_blocks

# --------------------------------------------------------------------------- the steps file

@pytest.mark.slow
def test_steps_file_is_valid_and_every_commit_resolves():
    steps = load_steps(STEPS_FILE)
    assert [s.name for s in steps] == ["blob-bytes", "wsgi-app", "wget-healthcheck", "process-collector",
                                       "no-created", "cached-exposition", "lean-server", "hardened-server"]
    for s in steps:
        before, after = resolve_commit(s.before), resolve_commit(s.after)
        assert before and after, f"{s.name}: {s.before} or {s.after} does not resolve"
        # before is an ancestor of after: the step goes forward in history
        assert subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", before, after]).returncode == 0


@pytest.mark.slow
def test_each_step_changes_what_it_claims():
    """A step's pair differs in service/ (or, for the healthcheck step, only in the deployment)."""
    for s in load_steps(STEPS_FILE):
        diff = subprocess.run(["git", "-C", str(ROOT), "diff", "--name-only", s.before, s.after, "--",
                               "service", "docker-compose.yml"], capture_output=True, text=True).stdout.split()
        if s.healthcheck == "commit":
            assert diff == ["docker-compose.yml"], s.name
        else:
            assert any(p.startswith("service/") for p in diff), s.name
            assert "docker-compose.yml" not in diff, s.name


def test_shipped_steps_file_loads_typed():
    steps = load_steps(STEPS_FILE)
    assert len(steps) == 8 and steps[0].name == "blob-bytes" and steps[0].note.startswith("before is 83e3375")
    assert [s.name for s in steps if s.healthcheck == "commit"] == ["wget-healthcheck"]


@pytest.mark.parametrize("doc, what", [
    ("steps: []", "steps: [] is not valid: list should have at least 1 item"),
    ("name: a", "no 'steps:' section: write steps as a list of {name, change, before, after}"),
    ("steps: [{name: a, change: c, before: x}]", "steps[0]: 'after' is missing: add it"),
    ("steps: [{name: a, change: c, before: x, after: ' '}]", "steps[0].after: ' ' is not valid: string should have at least 1 character"),
    ("steps: [{name: a, change: c, before: 1234567, after: y}]",
     "steps[0].before: 1234567 is not valid: input should be a valid string"),
    ("steps: [{name: a, change: c, before: x, after: y}, {name: a, change: c, before: x, after: y}]", "twice"),
    ("steps: [{name: a, change: c, before: x, after: y, healthcheck: mine}]",
     "steps[0].healthcheck: 'mine' is not valid: input should be 'commit'"),
    ("steps: [{name: a, change: c, before: x, after: y, colour: red}]",
     "steps[0]: unknown key 'colour' (known: name, change, before, after, healthcheck, note): fix the spelling"),
    ("steps: [", "invalid YAML at line 1 column 9: expected the node content"),
])
def test_bad_steps_file_is_one_line(tmp_path, doc, what):
    p = tmp_path / "steps.yml"
    p.write_text(doc)
    with pytest.raises(StepsFileError) as e:
        load_steps(p)
    assert what in str(e.value) and "\n" not in str(e.value)


def test_only_selects_and_refuses_unknown_names():
    steps = load_steps(STEPS_FILE)
    assert [s.name for s in select_steps(steps, ["lean-server"])] == ["lean-server"]
    with pytest.raises(ParameterError, match="no such step"):
        select_steps(steps, ["nope"])


# --------------------------------------------------------------------------- effects

def test_figure_effect_ratio_and_difference():
    cpu = next(f for f in FIGURES if f.key == "cpu_ms_per_request")
    a, b = [2.0, 2.2, 1.8, 2.1], [1.0, 1.2, 0.9, 1.0]
    e = figure_effect(cpu, a, b)
    geometric_mean_ratio = math.exp(sum(math.log(y / x) for x, y in zip(a, b)) / 4)
    assert e["estimate"] == pytest.approx(geometric_mean_ratio) and e["low"] < e["estimate"] < e["high"]
    assert e["before"] == pytest.approx(2.05) and e["after"] == pytest.approx(1.0) and e["rounds"] == 4
    mem = next(f for f in FIGURES if f.key == "service_mem_steady_mb")
    e = figure_effect(mem, [27.0, 27.5, 27.2], [20.0, 20.4, 20.1])
    assert e["estimate"] == pytest.approx(-7.067, abs=1e-3) and e["low"] < e["estimate"] < e["high"] < 0
    # a side not measured in a round leaves that round out; one round left is no interval
    e = figure_effect(mem, [27.0, None], [20.0, 20.5])
    assert e["estimate"] is None and "need 2" in e["error"]


def test_interval_is_95_percent_two_sided():
    """The t interval at 95 %: with n = 3 rounds, half-width = t(0.975, 2) * sd / sqrt(3)."""
    mem = next(f for f in FIGURES if f.key == "service_mem_steady_mb")
    e = figure_effect(mem, [0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert (e["high"] - e["low"]) / 2 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)


# --------------------------------------------------------------------------- the section

def _steps_doc() -> dict:
    def fig(before, after, est, low, high, relative=True, unit="ms"):
        return {"relative": relative, "unit": unit, "before": before, "after": after, "estimate": est,
                "low": low, "high": high, "rounds": 5, "error": None}
    return {
        "run_id": "20260101T000000Z-steps", "status": "complete", "interval_level": 0.95,
        "load": "default bench load: 2 sensor clients", "machine": {"cpu_model": "Test CPU", "cores": 2},
        "figures": [{"key": f.key, "label": f.label, "unit": f.unit, "relative": f.relative} for f in FIGURES],
        "steps": [
            {"name": "wsgi-app", "change": "Plain WSGI app.", "before": "83e3375", "after": "d4bb68e",
             "status": OK, "rounds": 5, "note": None,
             "sides": {"A": {"start_line": "sensor-service starting: variant=optimized server=waitress",
                             "healthcheck": "wget -q", "healthcheck_cpu_ms": 1.234}},
             "figures": {"cpu_ms_per_request": fig(1.78345, 1.3781, 0.77273, 0.70011, 0.85345),
                         "service_mem_steady_mb": fig(27.56, 20.18, -7.3812, -7.6, -7.1, False, "MB")}},
            {"name": "old", "change": "Something old.", "before": "aaaaaaa", "after": "bbbbbbb",
             "status": NOT_MEASURED, "reason": "round 1 failed, the step is skipped: A round 1: no waitress",
             "rounds": 0, "figures": {}},
        ]}


def test_steps_blocks_from_constructed_data():
    blocks = steps_blocks(_steps_doc())
    assert blocks[0] == ("h", 2, HEADING)
    assert "20260101T000000Z-steps" in blocks[1][1] and "default bench load" in blocks[1][1]
    assert "Test CPU" in blocks[1][1]
    tables = [b for b in blocks if b[0] == "table"]
    assert len(tables) == 1 and tables[0][1] == TABLE_HEADERS
    rows = {r[0]: r for r in tables[0][2]}
    cpu = rows["Service CPU per request"]
    assert cpu[1:] == ["1.78 ms", "1.38 ms", "-22.7 % [-30.0 %, -14.7 %] (B/A 0.773)", "5"]
    mem = rows["Service memory at rest (steady median)"]
    assert mem[1:] == ["27.6 MB", "20.2 MB", "-7.38 MB [-7.60, -7.10]", "5"]
    # a figure absent from the step reads "not measured", never 0
    assert rows["/sensor p99 from the intended start"][1:4] == ["not measured"] * 3
    assert ("ul", ["A (83e3375): optimized service on waitress; healthcheck `wget -q` (1.23 ms CPU per check)"]) \
        in blocks
    assert ("p", "Not measured: round 1 failed, the step is skipped: A round 1: no waitress.") in blocks
    # every block is one the report's serialiser knows
    md = to_markdown(blocks, ".")
    assert "## Optimisation steps" in md and "### 2. old: aaaaaaa → bbbbbbb" in md


def test_steps_blocks_of_an_interrupted_run_say_so():
    doc = _steps_doc()
    doc["status"] = "interrupted"
    doc["steps"] = []
    blocks = steps_blocks(doc)
    assert "interrupted" in blocks[1][1] and blocks[-1] == ("p", "No step measured (interrupted).")


# --------------------------------------------------------------------------- a real run

@pytest.mark.slow
def test_one_real_step_two_short_rounds(tmp_path, capsys):
    """One step (the last: both sides run on today's dependencies), 2 rounds of 2 s + 6 s."""
    from edgebench.steps import read_steps, run_steps
    steps = select_steps(load_steps(STEPS_FILE), ["cached-exposition"])
    run, code = run_steps(steps, 2, "auto", tmp_path, "edgebench steps (test)", duration_s=6, warmup_s=2)
    assert code == 0
    doc = read_steps(run.path)
    assert doc["status"] == "complete" and doc["run_id"] == run.path.name
    (step,) = doc["steps"]
    assert step["status"] == OK, step.get("reason")
    assert step["rounds"] == 2 and not step["errors"]
    for f in FIGURES:
        fig = step["figures"][f.key]
        assert len(fig["a"]) == len(fig["b"]) == 2
        assert all(x is not None and x > 0 for x in fig["a"] + fig["b"]), (f.key, fig)
        assert fig["low"] <= fig["estimate"] <= fig["high"], (f.key, fig)
        if f.relative:  # the estimate is the geometric mean of the two rounds' B/A ratios
            ratios = [b / a for a, b in zip(fig["a"], fig["b"])]
            assert fig["estimate"] == pytest.approx((ratios[0] * ratios[1]) ** 0.5), (f.key, fig)
    assert "server=waitress" in step["sides"]["A"]["start_line"]
    assert "server=waitress" in step["sides"]["B"]["start_line"]
    manifest = yaml.safe_load((run.path / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert (run.path / "steps.md").read_text().startswith("## Optimisation steps")
    # the worktrees of both commits are gone (this process's; another run may hold its own)
    wt = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert f"edgebench-ref-{os.getpid()}-" not in wt
