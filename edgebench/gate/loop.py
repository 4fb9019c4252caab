"""The adaptive round loop: measure rounds until the verdict is decided or the time
budget is spent. Pure: measuring and judging are passed in, so the loop is testable
with constructed rounds."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from edgebench.gate.verdict import GateResult, Round, decided

DECIDED, BUDGET, MAX_ROUNDS, FAILED = "decided", "time budget spent", "round limit reached", "a round failed"


@dataclass
class LoopOutcome:
    rounds: list
    result: GateResult
    stopped: str            # why the loop stopped: one of the constants above
    elapsed_s: float


def run_rounds(measure: Callable[[int], Round], judge: Callable[[list], GateResult],
               min_rounds: int, max_rounds: int, budget_s: float,
               clock: Callable[[], float] = time.monotonic) -> LoopOutcome:
    """Rounds 1..min_rounds always; then one more while the verdict is inconclusive and
    another round (as long as the mean round so far) still fits in the budget."""
    t0 = clock()
    rounds: list[Round] = []
    while True:
        r = measure(len(rounds) + 1)
        rounds.append(r)
        elapsed = clock() - t0
        if r.errors:
            return LoopOutcome(rounds, judge(rounds), FAILED, elapsed)
        if len(rounds) < min_rounds:
            continue
        result = judge(rounds)
        if decided(result):
            return LoopOutcome(rounds, result, DECIDED, elapsed)
        if len(rounds) >= max_rounds:
            return LoopOutcome(rounds, result, MAX_ROUNDS, elapsed)
        if elapsed + elapsed / len(rounds) > budget_s:
            return LoopOutcome(rounds, result, BUDGET, elapsed)
