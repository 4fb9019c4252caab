"""One module per command (as asv does): each has NAME, HELP, add_arguments(parser) and
run(args, command) -> exit code. edgebench/cli.py only collects them."""
from __future__ import annotations

from edgebench.commands import (
    agreement,
    bench,
    capacity,
    collectors,
    cost,
    cost_calibrate,
    down,
    gate,
    gate_calibrate,
    gate_rounds,
    hostile,
    images_offline,
    load,
    profile,
    report,
    status,
    steps,
    up,
)

COMMANDS = (bench, profile, report, gate, cost, cost_calibrate, gate_calibrate, gate_rounds, steps, capacity,
            collectors, load, agreement, hostile, up, down, status, images_offline)
