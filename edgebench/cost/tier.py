"""Run the cost tier: A (a source tree, e.g. a git ref's worktree) against B, every
instrument of both sides in parallel processes (counts do not depend on load)."""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgebench.cost.config import CostConfig
from edgebench.cost.figures import side_figures
from edgebench.cost.measure import INSTRUMENTS, check_tools, prime, run_side, workdir
from edgebench.cost.verdict import CostResult, compare

JOBS = 4     # two callgrind runs (the long ones) and the native runs beside them


def _copy(tree: Path, to: Path) -> Path:
    """The service (and plumbing, which it imports) at a path as long as every other
    side's: CPython's type-attribute cache is indexed by the addresses of name objects,
    so a start-up that allocates a longer path shifts the heap and the cache's hits,
    about 0.7 % of a /metrics scrape's instructions with no code changed."""
    for name in ("service", "plumbing"):
        if (tree / name).is_dir():
            shutil.copytree(tree / name, to / name, ignore=shutil.ignore_patterns("__pycache__"))
    return to


def measure_sides(trees: dict, config: CostConfig, env: dict | None = None,
                  instruments=INSTRUMENTS, jobs: int = JOBS) -> dict:
    """{side: {endpoint: figures}} for {side: tree}; ``env`` maps a side to extra
    environment (fault injection)."""
    check_tools()
    env = env or {}
    work = workdir()
    try:
        trees = {side: _copy(tree, work / f"tree-{i:02d}") for i, (side, tree) in enumerate(trees.items())}
        for tree in trees.values():
            prime(tree, work, config.plan.seed)
        order = sorted(instruments, key=lambda i: i != "callgrind")    # the long runs first
        with ThreadPoolExecutor(jobs) as pool:
            futures = {(side, i): pool.submit(run_side, tree, i, config.plan, work, env.get(side))
                       for i in order for side, tree in trees.items()}
            runs = {key: f.result() for key, f in futures.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {side: side_figures({i: runs[(side, i)] for i in instruments}, config.plan) for side in trees}


def run_cost(a_tree: Path, b_tree: Path, config: CostConfig, b_env: dict | None = None) -> tuple[CostResult, dict]:
    """The cost tier's result, and the figures of both sides."""
    t0 = time.monotonic()
    figures = measure_sides({"A": a_tree, "B": b_tree}, config, {"B": b_env or {}})
    result = compare(figures["A"], figures["B"], config)
    result.elapsed_s = time.monotonic() - t0
    return result, figures


def gate_tier(a_tree: Path, b_tree: Path, b_env: dict, budgets_file: Path, say=print) -> CostResult:
    """The cost tier as the gate's first tier; a failure to measure is a note and the
    result's ``error`` (the gate then answers 3, could not measure)."""
    from edgebench.cost.config import load_cost_config
    from edgebench.cost.measure import CostError
    config = load_cost_config(budgets_file)
    say("edgebench gate: cost tier (instructions, system calls, allocations per request) ...")
    try:
        result, _ = run_cost(a_tree, b_tree, config, b_env)
    except (CostError, OSError) as e:
        result = CostResult(error=f"cost tier could not measure: {e}")
    say(f"edgebench gate: cost tier {result.verdict if not result.error else 'not measured'} "
        f"in {result.elapsed_s:.0f} s")
    return result


def add_to_gate(gate_result, cost: CostResult, budgets_file: Path) -> str:
    """Put the cost tier's deciding rows first among the gate's checks, a disagreement with
    the wall-clock CPU into its notes; returns the cost table (markdown) for gate.md."""
    from edgebench.cost.verdict import SHOWN, UNITS, disagreement, markdown
    from edgebench.gate.stats import INCONCLUSIVE
    from edgebench.gate.verdict import Check
    from reports.budgets import load_budgets
    if cost.error:
        gate_result.checks.insert(0, Check("cost tier", "instructions", None, None, None, None, None, 0, None,
                                           "-", INCONCLUSIVE, detail=cost.error))
        return f"## Cost tier\n\n{cost.error}\n"
    checks = []
    for r in cost.rows:
        if r.verdict == SHOWN and r.figure != "modelled_cpu_us":
            continue
        bound = "shown" if r.threshold is None else (f"rise <= {r.threshold:.2%}" if r.relative
                                                     else f"rise <= {r.threshold:g} {UNITS[r.figure]}")
        detail = "; ".join(cost.movers.get(r.endpoint, [])[:3]) if r.verdict == "regression" else ""
        checks.append(Check(f"cost: {r.endpoint} {r.figure}", r.figure, r.a, r.b, r.change, None, None, 1, None,
                            bound, r.verdict, relative=r.relative, detail=detail,
                            unit="" if r.relative else UNITS[r.figure]))
    gate_result.checks[:0] = checks
    cpu = next((c for c in gate_result.checks if c.name == "A/B: cpu_ms_per_request"), None)
    min_effect = next((m.min_effect for m in load_budgets(budgets_file).ab_metrics
                       if m.metric == "cpu_ms_per_request"), 0.10)
    line = disagreement(cost, cpu.change if cpu else None, cpu.verdict if cpu else None, min_effect)
    if line:
        gate_result.notes.append(line)
    return markdown(cost)
