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


def measure_sides(trees: dict, config: CostConfig, env: dict | None = None,
                  instruments=INSTRUMENTS, jobs: int = JOBS) -> dict:
    """{side: {endpoint: figures}} for {side: tree}; ``env`` maps a side to extra
    environment (fault injection)."""
    check_tools()
    env = env or {}
    work = workdir()
    try:
        for tree in dict.fromkeys(trees.values()):
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
