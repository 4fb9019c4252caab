"""`edgebench hostile`: hostile and broken clients against a real stack under the compose
limits (loadtests/hostile.py); exit 1 when an attack breaks the rule of docs/service.md."""
from __future__ import annotations

NAME = "hostile"
HELP = "hostile clients against a stack under its limits: what the collector and the service went through"


def add_arguments(p) -> None:
    p.add_argument("--variant", default="optimized", choices=("optimized", "baseline"))
    p.add_argument("--cases", help="comma-separated parts of case names (default: all)")
    p.add_argument("--source", help="run this checkout's service tree instead (e.g. a git archive "
                                    "of the commit before)")
    p.add_argument("--json", help="also write the records to this file")


def run(args, command: str) -> int:
    import json
    import sys
    from pathlib import Path

    from loadtests.hostile import run_suite, table, verdict
    from plumbing.process import sigterm_as_ctrl_c
    undo = sigterm_as_ctrl_c()
    try:
        records = run_suite(args.variant, args.cases.split(",") if args.cases else None,
                            progress=lambda m: print(m, file=sys.stderr, flush=True),
                            source=Path(args.source).resolve() if args.source else None)
    finally:
        undo()
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    print(table(records))
    failed = [(r["case"], verdict(r)) for r in records if verdict(r)]
    for name, problems in failed:
        print(f"FAILED {name}: {'; '.join(problems)}", file=sys.stderr)
    return 1 if failed else 0
