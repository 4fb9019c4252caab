"""`edgebench down`: stop every stack edgebench started here (or one) and remove its cgroups."""
from __future__ import annotations

from pathlib import Path

from stack.api import DEFAULT_STATE_DIR

NAME = "down"
HELP = "stop every stack edgebench started on this machine"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="one stack's state directory (default: every stack edgebench started here)")


def run(args, command: str) -> int:
    from edgebench.commands._scope import every_stack, stack_exit
    from stack.api import stop_all_stacks, stop_stack
    from stack.status_view import show_stopped

    def down() -> int:
        if every_stack(args.state_dir):
            stop_all_stacks()
        else:
            show_stopped(stop_stack(args.state_dir), args.state_dir)
        return 0

    return stack_exit(down)
