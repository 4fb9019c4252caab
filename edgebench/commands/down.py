"""`edgebench down`: stop the stack and remove its cgroups."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR

NAME = "down"
HELP = "stop it"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))


def run(args, command: str) -> int:
    from edgebench import stack_commands
    return stack_commands.down(args)
