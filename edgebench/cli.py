"""The edgebench command line; the Makefile calls it inside the project's venv."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edgebench.results import ROOT
from edgebench.scenarios import ParameterError

DEFAULT_STATE_DIR = ROOT / ".edgebench" / "stack"


def _add_load_args(p: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("bench", "every scenario under load, then the report"),
                       ("profile", "the bench with py-spy and memory-profiler attached")):
        _add_load_args(sub.add_parser(name, help=text))
    p = sub.add_parser("report", help="re-render graphs and summary from a results directory")
    p.add_argument("--run", default=str(ROOT / "results" / "latest"))
    p.add_argument("--example", action="store_true",
                   help="also write the committed example (OPTIMIZATION_SUMMARY.md, docs/example/)")
    p = sub.add_parser("gate", help="budgets and an A/B against a git ref")
    p.add_argument("--against", default=None)
    p.add_argument("--engine", default="auto")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--budgets", default=str(ROOT / "budgets.yml"))
    p.add_argument("--rounds", type=int, default=None, help="rounds per side (budgets.yml: ab.rounds)")
    p.add_argument("--inject", action="append", metavar="KEY=VALUE",
                   help="fault-injection env for the B side, e.g. SENSOR_EXTRA_CPU_ITERATIONS=20000")
    p.add_argument("--budgets-only", action="store_true", help="skip the A/B, check budgets only")
    p.add_argument("--baseline", default=None,
                   help="compare against a stored gate run (results/<id>-gate) instead of a git ref")
    p.add_argument("--allow-other-machine", action="store_true",
                   help="with --baseline: compare even if it was measured on another machine")
    for name, text in (("up", "start the stack in the background"), ("down", "stop it"),
                       ("status", "show what runs, limits, memory, CPU, restarts")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
        if name == "up":
            p.add_argument("--engine", default="auto")
            p.add_argument("--variant", default=None, help="baseline | optimized")
    return parser


def _known_errors() -> tuple[type, ...]:
    errors: list[type] = [ParameterError]
    for module, name in (("stack.compose", "ComposeError"), ("stack.api", "StackError"),
                         ("loadtests.runner", "LoadError"), ("reports.load", "ReportError"),
                         ("reports.render", "ReportError"),
                         ("reports.gate", "BudgetError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "edgebench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        return _dispatch(args, command)
    except _known_errors() as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgebench: interrupted", file=sys.stderr)
        return 130


def _dispatch(args, command: str) -> int:
    if args.command in ("bench", "profile"):
        from edgebench.bench import run_bench
        from edgebench.params import build_params
        params = build_params(duration=args.duration, warmup=args.warmup, users=args.users,
                              scenarios=args.scenarios, repeats=args.repeats,
                              workers=args.workers, target=args.target, engine=args.engine,
                              results_root=args.results, profile=args.command == "profile",
                              scrape_rate=args.scrape_rate, sensor_rate=args.sensor_rate)
        _, code = run_bench(params, command)
        return code
    if args.command == "report":
        from reports.render import render_run
        paths = render_run(Path(args.run))
        print(f"edgebench: wrote {len(paths)} files under {Path(args.run) / 'report'}")
        if args.example:
            from edgebench.example import write_example
            paths = write_example(Path(args.run))
            print(f"edgebench: example written: OPTIMIZATION_SUMMARY.md and {len(paths)} files in docs/example/")
        return 0
    if args.command == "gate":
        from edgebench.gate_plan import run_gate
        return run_gate(args, command)
    if args.command in ("up", "down", "status"):
        from edgebench import stack_commands
        return getattr(stack_commands, args.command)(args)
    raise AssertionError(args.command)
