"""`edgebench profile`: the bench with py-spy, memory-profiler and tracemalloc attached."""
from __future__ import annotations

from edgebench.commands.bench import add_load_arguments, run_load_command

NAME = "profile"
HELP = "the bench with py-spy and memory-profiler attached"
add_arguments = add_load_arguments


def run(args, command: str) -> int:
    return run_load_command(args, command, profile=True)
