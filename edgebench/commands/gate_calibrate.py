"""`edgebench gate-calibrate`: the gate's false-alarm rate and power, measured: N gates
per condition (unchanged code, a CPU regression of a stated size, a memory leak)."""
from __future__ import annotations

from pathlib import Path

from edgebench import REPO_ROOT as ROOT

NAME = "gate-calibrate"
HELP = "run N gates per condition and tabulate their verdicts and run times"


def add_arguments(p) -> None:
    from edgebench.gate.calibrate import DEFAULT_CONDITIONS
    p.add_argument("--runs", default=30, help="gates per condition (make N=)")
    p.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS),
                   help="comma-separated: unchanged, cpu+<N>%%, leak<N>k, sensor<N>ms, revert:<step>")
    p.add_argument("--engine", default="auto")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--budgets", default=str(ROOT / "budgets.yml"))
    p.add_argument("--against", default="HEAD", help="the code both sides run (default HEAD)")


def run(args, command: str) -> int:
    from edgebench.gate.calibrate import CalibrationParams, parse_conditions, run_calibration
    from edgebench.scenarios import ParameterError
    from plumbing.checks import number
    runs = number(args.runs, "N", whole=True, at_least=1, error=ParameterError,
                  fix="pass at least 1 (N=30 for the documented table)")
    params = CalibrationParams(runs=runs, conditions=parse_conditions(args.conditions),
                               engine=args.engine, results_root=Path(args.results),
                               budgets_file=Path(args.budgets), against=args.against)
    run_calibration(params, command)
    return 0
