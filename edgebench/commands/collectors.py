"""`edgebench collectors`: VictoriaMetrics against Prometheus, shipped and tuned, at the
robot's operating point and over series in two workload shapes (docs/capacity.md)."""
from __future__ import annotations

from edgebench import REPO_ROOT as ROOT

NAME = "collectors"
HELP = "the collector comparison: operating-point ratio, series held in 150 MB (k of n), bytes per series"


def add_arguments(p) -> None:
    p.add_argument("--shapes", help="subset of one-target,many-targets (default both)")
    p.add_argument("--configs", help="subset of shipped,tuned (default both)")
    p.add_argument("--series", help="series ladder for every shape, e.g. '10000,30000,50000'")
    p.add_argument("--repeats", help="runs at each variant's boundary counts (default 3)")
    p.add_argument("--rounds", help="operating-point rounds (default 5; 0 skips them)")
    p.add_argument("--cap", help="longest a step waits for memory to settle, seconds (default 150)")
    p.add_argument("--engine", default="auto", help="auto | native | docker")
    p.add_argument("--results", default=str(ROOT / "results"), help="results root folder")


def run(args, command: str) -> int:
    from edgebench.capacity.comparison import build_comparison_params, run_comparison
    params = build_comparison_params(shapes=args.shapes, configs=args.configs, series=args.series,
                                     repeats=args.repeats, rounds=args.rounds, cap=args.cap,
                                     engine=args.engine, results_root=args.results)
    _, code = run_comparison(params, command)
    return code
