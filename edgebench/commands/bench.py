"""`edgebench bench`: every scenario under the robot's limits, then the report."""
from __future__ import annotations

import argparse

from edgebench import REPO_ROOT as ROOT

NAME = "bench"
HELP = "every scenario under load, then the report"


def add_load_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", help="seconds of steady load per scenario")
    p.add_argument("--warmup", help="seconds of warm-up excluded from every figure")
    p.add_argument("--users", help="sensor clients")
    p.add_argument("--scrape-rate", help="scrapes/s per /metrics scraper")
    p.add_argument("--sensor-rate", help="requests/s per sensor client")
    p.add_argument("--scenarios", help="subset, e.g. 'baseline-vm optimized-vm'")
    p.add_argument("--repeats", help="run each scenario N times, interleaved")
    p.add_argument("--workers", help="Locust worker processes")
    p.add_argument("--target", help="benchmark an external service URL instead of the stack")
    p.add_argument("--engine", default="auto", help="auto | native | docker")
    p.add_argument("--results", default=str(ROOT / "results"), help="results root folder")


add_arguments = add_load_arguments


def run_load_command(args, command: str, profile: bool) -> int:
    from edgebench.bench import run_bench
    from edgebench.params import build_params
    params = build_params(duration=args.duration, warmup=args.warmup, users=args.users,
                          scenarios=args.scenarios, repeats=args.repeats,
                          workers=args.workers, target=args.target, engine=args.engine,
                          results_root=args.results, profile=profile,
                          scrape_rate=args.scrape_rate, sensor_rate=args.sensor_rate)
    _, code = run_bench(params, command)
    return code


def run(args, command: str) -> int:
    return run_load_command(args, command, profile=False)
