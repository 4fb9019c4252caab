"""`edgebench up`: the stack alone, in the background."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR

NAME = "up"
HELP = "start the stack in the background"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    p.add_argument("--engine", default="auto")
    p.add_argument("--variant", default=None, help="baseline | optimized")


def run(args, command: str) -> int:
    from edgebench import stack_commands
    return stack_commands.up(args)
