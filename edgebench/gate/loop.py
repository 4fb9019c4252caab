"""The sequential round loop: measure rounds, look after each one from ``min_rounds`` on,
stop when the verdict is decided; the last round that ``max_rounds`` or the time budget
allows is the final look, where the design always decides. Pure: measuring and judging
are passed in, so the loop is testable with constructed rounds."""
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


def run_rounds(measure: Callable[[int], Round], judge: Callable[[list, bool], GateResult],
               min_rounds: int, max_rounds: int, budget_s: float,
               clock: Callable[[], float] = time.monotonic) -> LoopOutcome:
    """Rounds 1..min_rounds always; then one more while the verdict is open and another
    round (as long as the mean round so far) still fits in the budget. ``judge(rounds,
    final)`` is told when a look is the last one, so it spends what is left of alpha."""
    t0 = clock()
    rounds: list[Round] = []
    while True:
        r = measure(len(rounds) + 1)
        rounds.append(r)
        elapsed = clock() - t0
        if r.errors:
            return LoopOutcome(rounds, judge(rounds, True), FAILED, elapsed)
        n = len(rounds)
        if n < min_rounds:
            continue
        out_of_rounds = n >= max_rounds
        out_of_time = elapsed + elapsed / n > budget_s
        result = judge(rounds, out_of_rounds or out_of_time)
        if out_of_rounds:
            return LoopOutcome(rounds, result, MAX_ROUNDS, elapsed)
        if out_of_time:
            return LoopOutcome(rounds, result, BUDGET, elapsed)
        if decided(result):
            return LoopOutcome(rounds, result, DECIDED, elapsed)
