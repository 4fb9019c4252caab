"""One module per command (as asv does): each has NAME, HELP, add_arguments(parser) and
run(args, command) -> exit code. edgebench/cli.py only collects them."""
from __future__ import annotations

from edgebench.commands import (
    bench,
    capacity,
    collectors,
    cost,
    cost_calibrate,
    down,
    gate,
    gate_calibrate,
    profile,
    report,
    status,
    steps,
    up,
)

COMMANDS = (bench, profile, report, gate, cost, cost_calibrate, gate_calibrate, steps, capacity, collectors, up, down, status)
