"""`edgebench down`: stop every stack edgebench started here (or one) and remove its cgroups."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR

NAME = "down"
HELP = "stop every stack edgebench started on this machine"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                   help="one stack's state directory (default: every stack edgebench started here)")


def run(args, command: str) -> int:
    from edgebench.commands._scope import stack_scope
    from stack.__main__ import main as stack_main
    return stack_main(["down"] + stack_scope(args.state_dir))
