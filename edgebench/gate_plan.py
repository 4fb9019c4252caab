"""`make gate`: short measured rounds of the change (B) and a git ref (A), alternated
on the same machine in the same run; then budgets, A/B and the A/A noise floor."""
from __future__ import annotations

import os
import time
from pathlib import Path

from edgebench.bench import measure_scenario
from edgebench.fileio import write_json_atomic, write_text_atomic
from edgebench.gitref import resolve_ref, worktree
from edgebench.params import RunParams
from edgebench.results import ROOT, RunDir
from edgebench.scenarios import SCENARIOS, ParameterError

GATE_SCENARIO = SCENARIOS["optimized-vm"]


def parse_inject(items: list[str] | None) -> dict:
    """--inject KEY=VALUE (fault-injection knobs for the B side, used to prove the gate)."""
    env = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--inject {item!r}: expected KEY=VALUE, "
                                 f"e.g. --inject SENSOR_EXTRA_CPU_ITERATIONS=20000")
        env[key] = value
    return env


def gate_params(ab: dict, engine: str, results_root: Path) -> RunParams:
    # Mostly scrapes: CPU per request is then CPU per scrape, what the knobs move.
    return RunParams(duration_s=float(ab.get("duration_s", 12)), warmup_s=float(ab.get("warmup_s", 3)),
                     users=1, sensor_rate=0.5, scrapers=4, scrape_rate=5.0, engine=engine,
                     scenarios=[GATE_SCENARIO], results_root=results_root)


def run_gate(args, command: str) -> int:
    from reports.gate import evaluate, junit, load_budgets, markdown, table
    from reports.load import load_scenario

    config = load_budgets(Path(args.budgets))
    ab = config.get("ab", {})
    rounds = int(getattr(args, "rounds", None) or ab.get("rounds", 3))
    inject = parse_inject(getattr(args, "inject", None))
    budgets_only = getattr(args, "budgets_only", False)
    commit, how = (None, "budgets only") if budgets_only else resolve_ref(args.against)
    params = gate_params(ab, args.engine, Path(args.results))
    run = RunDir.create(params.results_root, "gate", command,
                        {**params.to_dict(), "rounds": rounds, "against": commit,
                         "against_how": how, "inject": inject})
    print(f"edgebench gate: B = working tree{' + ' + str(inject) if inject else ''}; "
          f"A = {commit[:12] + ' (' + how + ')' if commit else 'none (budgets only)'}; "
          f"{rounds} rounds each; results in {run.path}")
    t0 = time.monotonic()
    a_dirs, b_dirs, errors = [], [], []
    status = "failed"
    try:
        if commit:
            with worktree(commit) as ref_dir:
                _measure_rounds(run, params, rounds, ref_dir, inject, a_dirs, b_dirs, errors)
        else:
            _measure_rounds(run, params, rounds, None, inject, a_dirs, b_dirs, errors)
        status = "complete"
    except KeyboardInterrupt:
        run.finish("interrupted")
        print("edgebench gate: interrupted")
        return 130
    finally:
        if status != "complete":
            run.finish("failed")
    b_rounds = [load_scenario(d) for d in b_dirs if (d / "scenario.json").exists()]
    a_rounds = [load_scenario(d) for d in a_dirs if (d / "scenario.json").exists()]
    result = evaluate(b_rounds, a_rounds or None, config)
    result.errors.extend(errors)
    elapsed = time.monotonic() - t0
    result.notes.append(f"gate run time {elapsed:.0f} s, {rounds} round(s) per side")
    if any(c.verdict == "regression" and c.metric.startswith("cpu") for c in result.checks) and commit:
        _explain_cpu(run, params, commit, inject, result)
    header = (f"B: working tree of `{_head()}`{' with ' + str(inject) if inject else ''}; "
              f"A: `{commit[:12] if commit else 'none'}` ({how}). Run `{run.path.name}`.")
    write_text_atomic(run.path / "gate.md", markdown(result, header))
    write_text_atomic(run.path / "junit.xml", junit(result))
    write_json_atomic(run.path / "gate.json", {
        "verdict": result.verdict, "exit_code": result.exit_code, "elapsed_s": elapsed,
        "checks": [c.__dict__ for c in result.checks], "notes": result.notes,
        "errors": result.errors, "against": commit, "inject": inject})
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(markdown(result, header))
    print(table(result))
    print(f"edgebench gate: gate.md and junit.xml in {run.path}")
    run.finish("complete")
    return result.exit_code


def _head() -> str:
    from edgebench.results import git_info
    info = git_info()
    return (info["commit"] or "unknown")[:12] + (" (dirty)" if info["dirty"] else "")


def _measure_rounds(run, params, rounds, ref_dir, inject, a_dirs, b_dirs, errors) -> None:
    """A B, B A, A B …: alternate which side goes first so drift hits both alike."""
    for r in range(1, rounds + 1):
        sides = [("A", ref_dir), ("B", ROOT)] if ref_dir else [("B", ROOT)]
        if r % 2 == 0:
            sides.reverse()
        for side, context in sides:
            sdir = run.path / f"{side}.r{r}"
            (a_dirs if side == "A" else b_dirs).append(sdir)
            try:
                measure_scenario(sdir, params, GATE_SCENARIO, repeat=r, service_context=context,
                                 extra_env=inject if side == "B" else None, query=False)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                errors.append(f"{side} round {r}: {type(e).__name__}: {e}")
                return


def _explain_cpu(run, params, commit, inject, result) -> None:
    """On a CPU regression, a short py-spy capture of both sides: where the time went."""
    from edgebench.profile_plan import profile_diff
    try:
        note = profile_diff(run, params, commit, inject)
        result.notes.append(note)
    except Exception as e:  # the verdict stands without the explanation
        result.notes.append(f"top-function diff not captured: {type(e).__name__}: {e}")
