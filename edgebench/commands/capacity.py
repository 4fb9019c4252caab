"""`edgebench capacity`: each variant's sustainable scrape and /sensor rates and the cost
per series in the exposition (how many series each collector holds: `edgebench collectors`)."""
from __future__ import annotations

from edgebench import REPO_ROOT as ROOT

NAME = "capacity"
HELP = "sweep load and series until each breaks; capacity.json, graphs, Capacity section"


def add_arguments(p) -> None:
    p.add_argument("--sweeps", help="subset of load,series (default: both)")
    p.add_argument("--steps", help="offered scrapes/s for every variant, e.g. '50,100,200' "
                                   "(default: a doubling ladder per variant)")
    p.add_argument("--sensor-steps", help="offered /sensor requests/s beside 4 scrapes/s, e.g. '4,16,64'")
    p.add_argument("--max-series", help="largest series count of the series sweep (default 200000)")
    p.add_argument("--variants", help="subset of baseline,optimized for the load sweep")
    p.add_argument("--duration", help="seconds of steady load per load or series step (default 8)")
    p.add_argument("--engine", default="auto", help="auto | native | docker")
    p.add_argument("--results", default=str(ROOT / "results"), help="results root folder")


def run(args, command: str) -> int:
    from edgebench.capacity.params import build_capacity_params
    from edgebench.capacity.runner import run_capacity
    params = build_capacity_params(sweeps=args.sweeps, steps=args.steps, sensor_steps=args.sensor_steps,
                                   max_series=args.max_series, variants=args.variants,
                                   duration=args.duration, engine=args.engine, results_root=args.results)
    _, code = run_capacity(params, command)
    return code
