"""`edgebench gate`: rounds of the change (B) side by side with a reference (A) until
the verdict is decided or the time budget is spent; budgets, A/B, outputs."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgebench.cost.tier import add_to_gate, gate_tier
from edgebench.gate.baseline import check_stored_baseline
from edgebench.gate.budgets import load_budgets
from edgebench.gate.figures import measure_figures
from edgebench.gate.loop import LoopOutcome, run_rounds
from edgebench.gate.outputs import table, write_outputs
from edgebench.gate.params import GateParams
from edgebench.gate.verdict import GateResult, Round, evaluate
from edgebench.gitref import resolve_ref, worktree
from edgebench.results import ROOT, RunDir, git_info
from edgebench.rounds import Side, round_params, run_round
from plumbing.process import sigterm_as_ctrl_c


@dataclass
class GateRun:
    """One gate, finished: where it wrote, what it decided, how long it took."""
    path: Path
    result: GateResult
    outcome: LoopOutcome | None
    elapsed_s: float


def run_gate(params: GateParams, command: str, quiet: bool = False) -> GateRun:
    config = load_budgets(params.budgets_file)
    stored_dirs = (check_stored_baseline(params.baseline, params.allow_other_machine)
                   if params.baseline else None)
    if stored_dirs is not None:
        commit, how = None, f"stored baseline {params.baseline}"
    elif params.budgets_only:
        commit, how = None, "budgets only"
    else:
        commit, how = resolve_ref(params.against)
    rparams = round_params(config.warmup_s, config.duration_s, params.engine, params.results_root,
                           config.sensor_rate)
    min_rounds = params.min_rounds or config.min_rounds
    max_rounds = max(min_rounds, params.max_rounds or config.max_rounds)
    if params.budgets_only:
        max_rounds = min_rounds        # nothing to decide by adding rounds
    budget_s = params.time_budget_s or config.time_budget_s
    # the design's looks are the loop's: --rounds / --max-rounds move both
    config = replace(config, min_rounds=min_rounds, max_rounds=max_rounds)
    run = RunDir.create(params.results_root, params.label, command,
                        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                         "against_commit": commit, "against_how": how,
                         "config": asdict(config), "round_load": rparams.to_dict()})
    say = (lambda *a: None) if quiet else print
    say(f"edgebench gate: B = {'working tree' if params.b_source is None else params.b_source}"
        f"{' + ' + str(params.inject) if params.inject else ''}; "
        f"A = {commit[:12] + ' (' + how + ')' if commit else how}; "
        f"{min_rounds}-{max_rounds} rounds within {budget_s:g} s; results in {run.path}")
    restore_sigterm = sigterm_as_ctrl_c()   # every stack torn down, the worktree removed
    t0 = time.monotonic()
    status = "failed"
    try:
        stored_a = [measure_figures(d) for d in stored_dirs] if stored_dirs is not None else None
        with (worktree(commit) if commit else nullcontext()) as ref_dir:
            sides = ([Side("A", ref_dir)] if ref_dir else []) + \
                    [Side("B", params.b_source or ROOT, dict(params.inject))]
            # the cost tier first (edgebench/cost): counts, then the wall-clock rounds
            cost = gate_tier(ref_dir, params.b_source or ROOT, dict(params.inject), params.budgets_file,
                             say) if ref_dir else None

            def measure(i: int) -> Round:
                rr = run_round(run.path, rparams, i, sides)
                r = Round(i, b=measure_figures(rr.dirs["B"]),
                          a=measure_figures(rr.dirs["A"]) if "A" in rr.dirs else None,
                          errors=rr.errors, elapsed_s=rr.elapsed_s, order=rr.order)
                say(f"edgebench gate: round {i} done in {rr.elapsed_s:.0f} s "
                    f"(started: {', '.join(rr.order)})")
                return r

            def judge(rounds: list, final: bool) -> GateResult:
                return evaluate(rounds, config, stored_a, compare=not params.budgets_only, final=final)

            outcome = run_rounds(measure, judge, min_rounds, max_rounds, budget_s)
            result = outcome.result
            cost_table = add_to_gate(result, cost, params.budgets_file) if cost else ""
            result.notes.append(f"{len(outcome.rounds)} round(s) in {outcome.elapsed_s:.0f} s; "
                                f"stopped: {outcome.stopped}")
            if stored_dirs is not None:
                result.notes.append(f"A is a stored run ({params.baseline}), measured at another "
                                    f"time: rounds are compared unpaired, so drift counts as noise")
            if ref_dir and params.explain and _cpu_regression(result):
                _explain(run.path, rparams, sides, result, budget_s - (time.monotonic() - t0),
                         outcome.elapsed_s / len(outcome.rounds))
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        restore_sigterm()
        if status != "complete":
            run.finish(status, update_latest=False)
    elapsed = time.monotonic() - t0
    header = (f"B: {'working tree of `' + _head() + '`' if params.b_source is None else params.b_source}"
              f"{' with ' + str(params.inject) if params.inject else ''}; "
              f"A: `{commit[:12] if commit else 'none'}` ({how}). Run `{run.path.name}`.")
    header += f"\n\n{cost_table}" if commit and cost_table else ""
    write_outputs(run.path, result, header, {
        "elapsed_s": elapsed, "against": commit, "inject": params.inject,
        "stopped": outcome.stopped, "round_elapsed_s": [r.elapsed_s for r in outcome.rounds],
        "round_order": [list(r.order) for r in outcome.rounds]})
    say(table(result))
    say(f"edgebench gate: gate.md, junit.xml and gate.json in {run.path}")
    run.finish("complete", update_latest=False)  # results/latest stays the newest bench
    return GateRun(run.path, result, outcome, elapsed)


def _cpu_regression(result: GateResult) -> bool:
    return any(c.verdict == "regression" and c.name == "A/B: cpu_ms_per_request" for c in result.checks)


def _explain(run_path: Path, rparams, sides: list, result: GateResult, remaining_s: float,
             round_s: float) -> None:
    """On a CPU regression, a py-spy round of both sides, when the budget still holds one."""
    from edgebench.gate.explain import profile_diff
    if remaining_s < round_s:
        result.notes.append(f"top-function diff skipped: {remaining_s:.0f} s left of the time "
                            f"budget, a round takes {round_s:.0f} s")
        return
    try:
        result.notes.append(profile_diff(run_path, rparams, sides))
    except Exception as e:  # noqa: BLE001 - the verdict stands without the explanation
        result.notes.append(f"top-function diff not captured: {type(e).__name__}: {e}")


def _head() -> str:
    info = git_info()
    return (info["commit"] or "unknown")[:12] + (" (dirty)" if info["dirty"] else "")
