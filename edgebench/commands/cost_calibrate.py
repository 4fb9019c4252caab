"""`edgebench cost-calibrate`: measure the cost tier's evidence (docs/gate.md, "Cost
tier"): unchanged sides for the A/A spread, sides with an injected cost, the kept
optimisation steps; `--summary` turns the measured lines into docs/gate.md's tables."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "cost-calibrate"
HELP = "the cost tier's A/A spread, injected costs and reverted steps, as JSON lines"
KINDS = ("metrics-0.5", "metrics-1", "metrics-2", "metrics-5", "metrics-inline", "sensor-2", "syscall")
SIZED = re.compile(r"metrics-\d+(\.\d+)?")     # metrics-<pct>: a new function sized for +pct %


def add_arguments(p) -> None:
    p.add_argument("--out", default=str(ROOT / "results" / "cost-calibrate.jsonl"))
    p.add_argument("--unchanged", type=int, default=0, help="unchanged-code sides to measure")
    p.add_argument("--inject", action="append", default=[], metavar="KIND[:COUNT]",
                   help=f"sides with an injected cost, COUNT of them (default 10); KIND: {', '.join(KINDS)} "
                        "or metrics-<pct>")
    p.add_argument("--steps", action="store_true", help="each kept step's before and after service tree")
    p.add_argument("--parallel", type=int, default=2, help="sides measured at once")
    p.add_argument("--budgets", default=str(ROOT / "budgets.yml"))
    p.add_argument("--summary", action="store_true", help="print the tables from --out")
    p.add_argument("--model", action="store_true",
                   help="measure the CPU model's constants here; print budgets.yml's cost.model")


def run(args, command: str) -> int:
    from edgebench.cost.calibrate import measure_many, patch
    from edgebench.cost.config import load_cost_config
    from edgebench.scenarios import ParameterError
    out = Path(args.out)
    if args.model:
        import yaml

        from edgebench.cost.model import ns_per_instruction, syscall_costs
        model = {"ns_per_instruction": round(ns_per_instruction(ROOT), 4), "ns_per_syscall": syscall_costs()}
        print(yaml.safe_dump({"model": model}, default_flow_style=None, sort_keys=False))
        return 0
    if args.summary:
        from edgebench.cost.summary import summary
        print(summary(out, load_cost_config(Path(args.budgets))))
        return 0
    config = load_cost_config(Path(args.budgets))
    out.parent.mkdir(parents=True, exist_ok=True)
    trees = [("unchanged", ROOT)] * args.unchanged
    made = []
    try:
        for item in args.inject:
            kind, _, count = item.partition(":")
            if not (kind in KINDS or SIZED.fullmatch(kind)) or (count and not count.isdigit()):
                raise ParameterError(f"--inject {item}: use KIND[:COUNT] with KIND one of {', '.join(KINDS)} "
                                     "or metrics-<pct>")
            made.append(patch(ROOT, kind))
            trees += [(kind, made[-1])] * int(count or 10)
        if args.steps:
            from edgebench.cost.summary import step_trees
            found, dirs = step_trees()
            trees += found
            made += dirs
        measure_many(trees, config, out, args.parallel)
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
    return 0
