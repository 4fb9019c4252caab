"""`edgebench gate`: rounds of the change (B) side by side with a reference (A) until
the verdict is decided or the time budget is spent; budgets, A/B, outputs."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from edgebench.cost.tier import add_to_gate, gate_tier
from edgebench.gate.baseline import check_stored_baseline
from edgebench.gate.figures import measure_figures
from edgebench.gate.loop import LoopOutcome, run_rounds
from edgebench.gate.outputs import table, write_outputs
from edgebench.gate.params import GateParams
from edgebench.gate.verdict import GateResult, Round, evaluate
from edgebench.gitref import resolve_ref, worktree
from edgebench.params import RunParams
from edgebench.results import ROOT, Lifecycle, RunDir, git_info
from edgebench.rounds import Side, round_params, run_round
from reports.budgets import GateConfig, load_budgets


@dataclass
class GateRun:
    """One gate, finished: where it wrote, what it decided, how long it took."""
    path: Path
    result: GateResult
    outcome: LoopOutcome | None
    elapsed_s: float


@dataclass(frozen=True)
class GatePlan:
    """What a gate will do, settled before anything starts: A, the looks, the time budget
    and the rounds' load."""
    params: GateParams
    config: GateConfig             # budgets.yml, with the looks --rounds / --max-rounds set
    commit: str | None             # A's commit; None: a stored baseline, or budgets only
    how: str                       # how A was chosen, in words
    stored_dirs: list | None       # a stored baseline's scenario directories
    budget_s: float
    rparams: RunParams             # the rounds' load


def plan_gate(params: GateParams) -> GatePlan:
    """budgets.yml read, A chosen (a git ref, a stored run, or none) and the looks set;
    bad input is refused in one line before anything starts."""
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
    config = config.with_rounds(min_rounds, max_rounds)
    return GatePlan(params, config, commit, how, stored_dirs, budget_s, rparams)


def run_gate(params: GateParams, command: str, quiet: bool = False) -> GateRun:
    """The gate's steps in order, inside the run's lifecycle: an interrupted or failed
    gate's manifest says so, and Ctrl-C reaches the caller (a calibration stops too)."""
    plan = plan_gate(params)
    config = plan.config
    run = RunDir.create(params.results_root, params.label, command,
                        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                         "against_commit": plan.commit, "against_how": plan.how,
                         "config": config.model_dump(), "round_load": plan.rparams.to_dict()})
    say = (lambda *a: None) if quiet else print
    say(f"edgebench gate: B = {'working tree' if params.b_source is None else params.b_source}"
        f"{' + ' + str(params.inject) if params.inject else ''}; "
        f"A = {plan.commit[:12] + ' (' + plan.how + ')' if plan.commit else plan.how}; "
        f"{config.min_rounds}-{config.max_rounds} rounds within {plan.budget_s:g} s; results in {run.path}")
    t0 = time.monotonic()
    # latest=False: results/latest stays the newest bench
    with Lifecycle(run, reraise=True):   # every stack torn down, the worktree removed
        outcome, cost_table = _ab_rounds(run.path, plan, say)
        elapsed = time.monotonic() - t0
        _write(run.path, plan, outcome, cost_table, elapsed, say)
    return GateRun(run.path, outcome.result, outcome, elapsed)


def _ab_rounds(run_path: Path, plan: GatePlan, say) -> tuple[LoopOutcome, str]:
    """The cost tier (counts, edgebench/cost) of B against A's worktree first, then
    side-by-side rounds of B and A until the verdict is decided or the budget is spent;
    on a CPU regression, the top-function diff. Returns the outcome and the cost table."""
    params, config = plan.params, plan.config
    stored_a = [measure_figures(d) for d in plan.stored_dirs] if plan.stored_dirs is not None else None
    with (worktree(plan.commit) if plan.commit else nullcontext()) as ref_dir:
        sides = ([Side("A", ref_dir)] if ref_dir else []) + \
                [Side("B", params.b_source or ROOT, dict(params.inject))]
        cost = gate_tier(ref_dir, params.b_source or ROOT, dict(params.inject), params.budgets_file,
                         say) if ref_dir else None

        def measure(i: int) -> Round:
            rr = run_round(run_path, plan.rparams, i, sides)
            r = Round(i, b=measure_figures(rr.dirs["B"]),
                      a=measure_figures(rr.dirs["A"]) if "A" in rr.dirs else None,
                      errors=rr.errors, elapsed_s=rr.elapsed_s, order=rr.order)
            say(f"edgebench gate: round {i} done in {rr.elapsed_s:.0f} s "
                f"(started: {', '.join(rr.order)})")
            return r

        def judge(rounds: list, final: bool) -> GateResult:
            return evaluate(rounds, config, stored_a, compare=not params.budgets_only, final=final)

        outcome = run_rounds(measure, judge, config.min_rounds, config.max_rounds, plan.budget_s)
        result = outcome.result
        cost_table = add_to_gate(result, cost, params.budgets_file) if cost else ""
        result.notes.append(f"{len(outcome.rounds)} round(s) in {outcome.elapsed_s:.0f} s; "
                            f"stopped: {outcome.stopped}")
        if plan.stored_dirs is not None:
            result.notes.append(f"A is a stored run ({params.baseline}), measured at another "
                                f"time: rounds are compared unpaired, so drift counts as noise")
        if ref_dir and params.explain and _cpu_regression(result):
            # the time budget is the rounds': the cost tier before them does not spend it
            _explain(run_path, plan.rparams, sides, result, plan.budget_s - outcome.elapsed_s,
                     outcome.elapsed_s / len(outcome.rounds))
    return outcome, cost_table


def _write(run_path: Path, plan: GatePlan, outcome: LoopOutcome, cost_table: str, elapsed: float,
           say) -> None:
    """gate.md (the cost table first), junit.xml and gate.json, and the table on the terminal."""
    params, result = plan.params, outcome.result
    header = (f"B: {'working tree of `' + _head() + '`' if params.b_source is None else params.b_source}"
              f"{' with ' + str(params.inject) if params.inject else ''}; "
              f"A: `{plan.commit[:12] if plan.commit else 'none'}` ({plan.how}). Run `{run_path.name}`.")
    header += f"\n\n{cost_table}" if plan.commit and cost_table else ""
    write_outputs(run_path, result, header, {
        "elapsed_s": elapsed, "against": plan.commit, "inject": params.inject,
        "stopped": outcome.stopped, "round_elapsed_s": [r.elapsed_s for r in outcome.rounds],
        "round_order": [list(r.order) for r in outcome.rounds]})
    say(table(result))
    say(f"edgebench gate: gate.md, junit.xml and gate.json in {run_path}")


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
