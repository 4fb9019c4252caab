"""Which stacks `down` and `status` act on: a named state directory means that stack
only; the default means every stack edgebench started on this machine (stack/registry.py)."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR


def stack_scope(state_dir) -> list[str]:
    if str(state_dir) != str(DEFAULT_STATE_DIR):
        return ["--state-dir", str(state_dir)]
    return ["--state-dir", str(state_dir), "--all"]
