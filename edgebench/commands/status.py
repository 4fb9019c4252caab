"""`edgebench status`: what runs, limits, memory, CPU, restarts."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR

NAME = "status"
HELP = "every stack edgebench started here: what runs, limits, memory, CPU, restarts"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                   help="one stack's state directory (default: every stack edgebench started here)")


def run(args, command: str) -> int:
    from edgebench.commands._scope import stack_scope
    from stack.__main__ import main as stack_main
    return stack_main(["status"] + stack_scope(args.state_dir))
