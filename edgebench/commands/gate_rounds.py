"""`edgebench gate-rounds`: N unchanged-code rounds recorded (--rounds), or recorded rounds
analysed and replayed through the gate (--replay DIR): the wall-clock tier's spreads."""
from __future__ import annotations

from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "gate-rounds"
HELP = "record N unchanged-code A/B rounds, or analyse and replay recorded ones"


def add_arguments(p) -> None:
    p.add_argument("--rounds", default=100, help="A/A rounds to record")
    p.add_argument("--replay", default=None, metavar="DIR",
                   help="analyse a recording (its directory or rounds.jsonl) and replay gates from it")
    p.add_argument("--gates", default=5000, help="with --replay: gates replayed on the recorded rounds")
    p.add_argument("--resamples", default=100, help="with --replay: bootstrap resamples of the rounds")
    p.add_argument("--inner", default=200, help="with --replay: gates replayed per bootstrap resample")
    p.add_argument("--seed", default=1, help="with --replay: the generator's seed")
    p.add_argument("--engine", default="auto")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--budgets", default=str(ROOT / "budgets.yml"))
    p.add_argument("--against", default="HEAD", help="the code both sides run (default HEAD)")


def run(args, command: str) -> int:
    from edgebench.gate.pool import PoolParams, record_rounds, report
    from edgebench.scenarios import ParameterError
    from plumbing.checks import number
    from reports.budgets import load_budgets
    if args.replay:
        n = {k: number(getattr(args, k), f"--{k}", whole=True, at_least=at, error=ParameterError)
             for k, at in (("gates", 1), ("resamples", 0), ("inner", 1), ("seed", 0))}
        print(report(Path(args.replay), load_budgets(Path(args.budgets)), n["gates"], n["resamples"],
                     n["inner"], n["seed"], command), end="")
        return 0
    rounds = number(args.rounds, "--rounds", whole=True, at_least=2, error=ParameterError,
                    fix="pass at least 2 (100 for the documented spreads)")
    record_rounds(PoolParams(rounds=rounds, engine=args.engine, results_root=Path(args.results),
                             budgets_file=Path(args.budgets), against=args.against), command)
    return 0
