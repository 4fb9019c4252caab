"""What `up`, `down` and `status` share: which stacks `down` and `status` act on (a named
state directory means that stack only; the default means every stack edgebench started
on this machine, stack/registry.py), and how a stack refusal ends the command."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from stack.api import DEFAULT_STATE_DIR


def every_stack(state_dir) -> bool:
    """True for the default state directory: act on every registered stack."""
    return Path(state_dir) == Path(DEFAULT_STATE_DIR)


def stack_exit(action: Callable[[], int]) -> int:
    """Run a stack action; a StackError (a stack that cannot start or stop) prints its one
    line and exits 1. A ComposeError (bad compose file) is an
    EdgebenchError: the command line prints it and exits 2."""
    from stack.api import StackError
    try:
        return action()
    except StackError as e:
        print(f"edgebench stack: error: {e}", file=sys.stderr)
        return 1
