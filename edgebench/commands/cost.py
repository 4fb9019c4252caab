"""`edgebench cost`: the gate's cost tier alone. Counts what one request to /metrics,
/sensor and /healthz costs the service (instructions, system calls, allocations) for A
(a git ref) and B (the working tree), and decides on the thresholds in budgets.yml.
Exit status: 0 pass, 1 regression, 2 error, 3 could not measure."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "cost"
HELP = "count instructions, system calls and allocations per request, A (a git ref) against B"


def add_arguments(p) -> None:
    p.add_argument("--against", default=None, help="git ref for A (default: merge base with main)")
    p.add_argument("--b-source", default=None, help="source tree for B (default: this working tree)")
    p.add_argument("--a-source", default=None, help="source tree for A instead of a git ref")
    p.add_argument("--budgets", default=str(ROOT / "budgets.yml"))
    p.add_argument("--inject", action="append", metavar="KEY=VALUE",
                   help="environment for the B side, e.g. SENSOR_EXTRA_CPU_ITERATIONS=100")
    p.add_argument("--json", default=None, metavar="FILE", help="write both sides' figures and the rows here")


def _tree(value: str, flag: str) -> Path:
    from edgebench.scenarios import ParameterError
    path = Path(value).resolve()
    if not (path / "service" / "__main__.py").exists():
        raise ParameterError(f"{flag}={value}: no service/ package there; pass a checkout of this repository")
    return path


def run(args, command: str) -> int:
    from edgebench.cost.config import load_cost_config
    from edgebench.cost.tier import run_cost
    from edgebench.cost.verdict import REGRESSION, table
    from edgebench.gate.faults import parse_inject
    from edgebench.gitref import resolve_ref, worktree
    config = load_cost_config(Path(args.budgets))
    b_tree = _tree(args.b_source, "--b-source") if args.b_source else ROOT
    inject = parse_inject(args.inject)
    if args.a_source:
        a_ctx, how = nullcontext(_tree(args.a_source, "--a-source")), args.a_source
    else:
        commit, how = resolve_ref(args.against)
        a_ctx, how = worktree(commit), f"{commit[:12]} ({how})"
    with a_ctx as a_tree:
        print(f"edgebench cost: A = {how}; B = {b_tree}{' + ' + str(inject) if inject else ''}", flush=True)
        result, figures = run_cost(a_tree, b_tree, config, dict(inject))
    print(table(result))
    print(f"edgebench cost: {result.verdict} in {result.elapsed_s:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "rows": [r.to_dict() for r in result.rows],
                                               "movers": result.movers, "elapsed_s": result.elapsed_s}))
    return 1 if result.verdict == REGRESSION else 0
