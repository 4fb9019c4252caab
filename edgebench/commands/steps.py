"""`edgebench steps`: each kept optimisation step (docs/optimization-steps.yml) re-measured
side by side, before commit against after commit, under the default bench load."""
from __future__ import annotations

from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "steps"
HELP = "before/after of each kept optimisation step, in side-by-side rounds"


def add_arguments(p) -> None:
    from edgebench.steps import DEFAULT_DURATION_S, DEFAULT_WARMUP_S, STEPS_FILE
    p.add_argument("--rounds", default=5, help="side-by-side rounds per step (default 5)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="measure only this step (repeatable, or comma-separated)")
    p.add_argument("--engine", default="auto")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--steps-file", default=str(STEPS_FILE))
    p.add_argument("--duration", default=DEFAULT_DURATION_S, help="steady seconds per round")
    p.add_argument("--warmup", default=DEFAULT_WARMUP_S, help="warm-up seconds per round")


def run(args, command: str) -> int:
    from edgebench.scenarios import ParameterError
    from edgebench.steps import load_steps, run_steps, select_steps
    from plumbing.checks import number
    # ROUNDS is the make variable; --duration and --warmup are the command line's only
    rounds = number(args.rounds, "ROUNDS", whole=True, at_least=2, error=ParameterError,
                    fix="the interval needs at least 2 rounds, e.g. ROUNDS=5")
    duration_s = number(args.duration, "--duration", above=0, unit="s", error=ParameterError)
    warmup_s = number(args.warmup, "--warmup", at_least=0, unit="s", error=ParameterError)
    if args.engine not in ("auto", "native", "docker"):
        raise ParameterError(f"ENGINE={args.engine!r} is unknown: use auto, native or docker")
    only = [n.strip() for o in args.only or [] for n in o.split(",") if n.strip()]
    steps = select_steps(load_steps(Path(args.steps_file)), only)
    _, code = run_steps(steps, rounds, args.engine, Path(args.results), command,
                        duration_s=duration_s, warmup_s=warmup_s)
    return code
