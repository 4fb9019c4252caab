"""`edgebench report`: re-render graphs and summary from a results directory (a bench,
profile or capacity run)."""
from __future__ import annotations

from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "report"
HELP = "re-render graphs and summary from a results directory"


def add_arguments(p) -> None:
    p.add_argument("--run", default=str(ROOT / "results" / "latest"))
    p.add_argument("--out", default=None, help="output directory (default: RUN/report)")
    p.add_argument("--example", action="store_true",
                   help="also write the committed example (OPTIMIZATION_SUMMARY.md, docs/example/)")
    p.add_argument("--capacity", help="with --example: the capacity run whose section it carries "
                                      "(default: the newest complete one in results/)")
    p.add_argument("--collectors", help="with --example: the collector comparison run whose section it carries "
                                        "(default: the newest complete one in results/)")
    p.add_argument("--steps", help="with --example: the steps run whose section it carries "
                                   "(default: the newest complete one in results/)")


def _is_labelled_run(run_dir: Path, document: str, label: str) -> bool:
    """A `make capacity` / `make collectors` run: its own document and a run id with that
    label (the committed example carries capacity.json and comparison.json too, beside a
    profile run's manifest, and is still refused as a run without raw samples)."""
    from reports.contract import ContractError, read_manifest
    try:
        run_id = read_manifest(run_dir).run_id or ""
    except ContractError:
        run_id = run_dir.name
    return (run_dir / document).exists() and run_id.endswith(f"-{label}")


def run(args, command: str) -> int:
    run_dir = Path(args.run)
    if _is_labelled_run(run_dir, "comparison.json", "collectors"):
        from reports.comparison import render_comparison
        paths = render_comparison(run_dir, args.out)
        print(f"edgebench: wrote {len(paths)} files under {args.out or run_dir / 'report'}")
        return 0
    if _is_labelled_run(run_dir, "capacity.json", "capacity"):
        from reports.capacity import render_capacity
        paths = render_capacity(run_dir, args.out)
        print(f"edgebench: wrote {len(paths)} files under {args.out or run_dir / 'report'}")
        return 0
    from reports.render import render_run
    paths = render_run(run_dir, args.out)
    print(f"edgebench: wrote {len(paths)} files under {args.out or run_dir / 'report'}")
    if args.example:
        from edgebench.example import write_example
        paths = write_example(run_dir, capacity_run=Path(args.capacity) if args.capacity else None,
                              steps_run=Path(args.steps) if args.steps else None,
                              collectors_run=Path(args.collectors) if args.collectors else None)
        print(f"edgebench: example written: OPTIMIZATION_SUMMARY.md and {len(paths)} files in docs/example/")
    return 0
