"""Pooled unchanged-code rounds: the wall-clock tier's spreads, measured.

``record_rounds`` runs N A/A rounds exactly as a gate does (``run_round``: A and B side
by side, fresh processes, the first-started slot alternating; figures by
``measure_figures``), both sides the same commit from two checkouts, and appends every
round's figures, load average and CPU steal to ``rounds.jsonl`` as soon as it is done,
so a recording cut short keeps every round it finished.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from edgebench.gate.budgets import load_budgets
from edgebench.gate.figures import measure_figures
from edgebench.gitref import resolve_ref, worktree
from edgebench.results import RunDir
from edgebench.rounds import Side, round_params, run_round

ROUNDS_FILE = "rounds.jsonl"


@dataclass(frozen=True)
class PoolParams:
    rounds: int
    engine: str = "auto"
    results_root: Path = Path("results")
    budgets_file: Path = Path("budgets.yml")
    against: str = "HEAD"


def _cpu_times() -> tuple[float, float]:
    """(steal, total) jiffies from /proc/stat: the hypervisor's share taken from this VM."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0.0), sum(fields[:8])


def record_rounds(params: PoolParams, command: str) -> Path:
    """N unchanged-code rounds into results/<id>-rounds/rounds.jsonl, one line per round."""
    commit, how = resolve_ref(params.against)
    config = load_budgets(params.budgets_file)
    run = RunDir.create(params.results_root, "rounds", command,
                        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                         "commit": commit, "warmup_s": config.warmup_s, "duration_s": config.duration_s,
                         "sensor_rate": config.sensor_rate})
    rp = round_params(config.warmup_s, config.duration_s, params.engine, run.path, config.sensor_rate)
    print(f"edgebench gate-rounds: {params.rounds} A/A rounds of {config.warmup_s:g} + "
          f"{config.duration_s:g} s on {commit[:12]} ({how}); results in {run.path}")
    status = "failed"
    try:
        with ExitStack() as stack:
            sides = [Side("A", stack.enter_context(worktree(commit))),
                     Side("B", stack.enter_context(worktree(commit)))]
            for i in range(1, params.rounds + 1):
                steal0, total0 = _cpu_times()
                load0, started = os.getloadavg(), time.time()
                rr = run_round(run.path, rp, i, sides)
                steal1, total1 = _cpu_times()
                line = {"index": i, "started": started, "elapsed_s": rr.elapsed_s, "order": list(rr.order),
                        "errors": rr.errors, "load_start": load0, "load_end": os.getloadavg(),
                        "steal": (steal1 - steal0) / (total1 - total0) if total1 > total0 else None,
                        "a": measure_figures(rr.dirs["A"]), "b": measure_figures(rr.dirs["B"])}
                with open(run.path / ROUNDS_FILE, "a") as f:
                    f.write(json.dumps(line) + "\n")
                print(f"edgebench gate-rounds: round {i}/{params.rounds} in {rr.elapsed_s:.0f} s "
                      f"(started: {', '.join(rr.order)}; load {load0[0]:.2f})"
                      + (f"; errors: {rr.errors}" if rr.errors else ""), flush=True)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        run.finish(status, update_latest=False)
    return run.path
