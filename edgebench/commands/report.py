"""`edgebench report`: re-render graphs and summary from a results directory."""
from __future__ import annotations

from pathlib import Path

from edgebench.results import ROOT

NAME = "report"
HELP = "re-render graphs and summary from a results directory"


def add_arguments(p) -> None:
    p.add_argument("--run", default=str(ROOT / "results" / "latest"))
    p.add_argument("--example", action="store_true",
                   help="also write the committed example (OPTIMIZATION_SUMMARY.md, docs/example/)")


def run(args, command: str) -> int:
    from reports.render import render_run
    paths = render_run(Path(args.run))
    print(f"edgebench: wrote {len(paths)} files under {Path(args.run) / 'report'}")
    if args.example:
        from edgebench.example import write_example
        paths = write_example(Path(args.run))
        print(f"edgebench: example written: OPTIMIZATION_SUMMARY.md and {len(paths)} files in docs/example/")
    return 0
