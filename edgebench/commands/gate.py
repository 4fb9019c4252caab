"""`edgebench gate`: the performance regression gate. Its exit status is the verdict:
0 pass, 1 regression, 2 error, 3 inconclusive."""
from __future__ import annotations

from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "gate"
HELP = "budgets and an A/B against a git ref, in side-by-side rounds"


def add_arguments(p) -> None:
    p.add_argument("--against", default=None, help="git ref for A (default: merge base with main)")
    p.add_argument("--engine", default="auto")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--budgets", default=str(ROOT / "budgets.yml"))
    p.add_argument("--rounds", type=int, default=None,
                   help="the first look (budgets.yml: ab.min_rounds); rounds are added until decided")
    p.add_argument("--max-rounds", type=int, default=None, help="the last look (budgets.yml: ab.max_rounds), if the time budget allows it")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds of rounds at most (budgets.yml: ab.time_budget_s)")
    p.add_argument("--inject", action="append", metavar="KEY=VALUE",
                   help="fault-injection env for the B side, e.g. SENSOR_EXTRA_CPU_MS=0.5")
    p.add_argument("--budgets-only", action="store_true", help="skip the A/B, check budgets only")
    p.add_argument("--baseline", default=None,
                   help="compare against a stored gate run (results/<id>-gate) instead of a git ref")
    p.add_argument("--allow-other-machine", action="store_true",
                   help="with --baseline: compare even if it was measured on another machine")


def params_from_args(args):
    from edgebench.gate.faults import parse_inject
    from edgebench.gate.params import GateParams
    from edgebench.scenarios import ParameterError
    for name in ("rounds", "max_rounds"):
        v = getattr(args, name)
        if v is not None and v < 2:
            raise ParameterError(f"--{name.replace('_', '-')}={v}: the statistics need at least 2 rounds")
    if args.time_budget is not None and args.time_budget <= 0:
        raise ParameterError(f"--time-budget={args.time_budget:g}: pass a positive number of seconds")
    return GateParams(against=args.against, engine=args.engine, results_root=Path(args.results),
                      budgets_file=Path(args.budgets), inject=parse_inject(args.inject),
                      budgets_only=args.budgets_only,
                      baseline=Path(args.baseline) if args.baseline else None,
                      allow_other_machine=args.allow_other_machine, min_rounds=args.rounds,
                      max_rounds=args.max_rounds, time_budget_s=args.time_budget)


def run(args, command: str) -> int:
    from edgebench.gate.plan import run_gate
    return run_gate(params_from_args(args), command).result.exit_code
