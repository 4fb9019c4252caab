"""`edgebench status`: what runs, limits, memory, CPU, restarts."""
from __future__ import annotations

from pathlib import Path

from stack.api import DEFAULT_STATE_DIR

NAME = "status"
HELP = "every stack edgebench started here: what runs, limits, memory, CPU, restarts"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="one stack's state directory (default: every stack edgebench started here)")
    p.add_argument("--json", action="store_true", help="with --state-dir: print that stack's state.json")


def run(args, command: str) -> int:
    from edgebench.commands._scope import every_stack, stack_exit
    from stack.status_view import show_all_status, show_status
    if every_stack(args.state_dir):
        return stack_exit(show_all_status)
    return stack_exit(lambda: show_status(args.state_dir, args.json))
