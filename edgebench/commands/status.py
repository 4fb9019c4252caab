"""`edgebench status`: what runs, limits, memory, CPU, restarts."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR

NAME = "status"
HELP = "show what runs, limits, memory, CPU, restarts"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))


def run(args, command: str) -> int:
    from edgebench import stack_commands
    return stack_commands.status(args)
