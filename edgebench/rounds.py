"""Side-by-side rounds: A and B started at the same time, each with its own service,
collector, ports and cgroups under the compose limits, fresh processes every round.

Whatever the machine does meanwhile (other tenants, frequency, caches) hits both sides
of a round alike, which is what lets a gate see a 10% change on a shared machine.
The gate and its CPU explanation round both measure through here.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.bench import measure_scenario
from edgebench.params import RunParams
from edgebench.scenarios import SCENARIOS

ROUND_SCENARIO = SCENARIOS["optimized-vm"]
# Same hash seed on both sides: dict and set layouts, and so their costs, match.
DETERMINISM = {"PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class Side:
    """One side of a round: a label (A, B), the service's source tree, extra env and,
    when not the repository's, the compose file it runs under."""
    label: str
    source: Path
    env: dict = field(default_factory=dict)
    compose_file: Path | None = None


@dataclass
class RoundRun:
    """What one round left behind: each side's scenario directory, any failure, and the
    order the sides were started in (first-started slot first)."""
    index: int
    dirs: dict            # label -> scenario directory
    errors: list
    elapsed_s: float
    order: tuple = ()


def slot_order(sides: list, index: int) -> list:
    """The sides in the order they start in round ``index``: as given in odd rounds,
    reversed in even ones, so neither side always holds the first-started slot (a helper
    thread, a head start on the CPU) and a slot's own bias cancels over pairs of rounds."""
    return list(sides) if index % 2 else list(reversed(sides))


def round_params(warmup_s: float, duration_s: float, engine: str, results_root: Path,
                 sensor_rate: float = 0.0) -> RunParams:
    """The rounds' load: 2 scrapers x 5 scrapes/s and, when ``sensor_rate`` > 0, one /sensor
    client at that rate, so a /sensor regression shows too. Light on purpose: /sensor's
    5 MB blob answers would add more noise than a 10% effect at the default bench rate;
    SENSOR_SEED makes both sides draw the same answers."""
    return RunParams(duration_s=duration_s, warmup_s=warmup_s, users=1 if sensor_rate > 0 else 0,
                     sensor_rate=sensor_rate or 1.0, scrapers=2, scrape_rate=5.0, engine=engine,
                     scenarios=[ROUND_SCENARIO], results_root=results_root)


def run_round(out_dir: Path, params: RunParams, index: int, sides: list[Side],
              swap: bool = True) -> RoundRun:
    """Every side at once, each into out_dir/<label>.r<index>, started in ``slot_order``
    (unless ``swap`` is off). The last side runs in this thread (so Ctrl-C reaches it), the
    others in helper threads started first and joined before returning."""
    sides = slot_order(sides, index) if swap else list(sides)
    errors: list[str] = []
    dirs = {s.label: out_dir / f"{s.label}.r{index}" for s in sides}

    def measure(side: Side) -> None:
        try:
            measure_scenario(dirs[side.label], params, ROUND_SCENARIO, repeat=index,
                             service_context=side.source, extra_env={**DETERMINISM, **side.env},
                             query=False, compose_file=side.compose_file)
        except Exception as e:  # noqa: BLE001 - the round's failure, reported by the caller
            errors.append(f"{side.label} round {index}: {type(e).__name__}: {e}")

    t0 = time.monotonic()
    helpers = [threading.Thread(target=measure, args=(s,), name=f"round-{s.label}-{index}")
               for s in sides[:-1]]
    for t in helpers:
        t.start()
    try:
        measure(sides[-1])
    finally:
        for t in helpers:
            t.join()
    return RoundRun(index, dirs, errors, time.monotonic() - t0, tuple(s.label for s in sides))
