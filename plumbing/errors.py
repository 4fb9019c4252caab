"""The one error every edgebench refusal raises: a single line naming the problem and
the fix. The CLI prints it and exits 2; anything else is a bug and keeps its traceback."""
from __future__ import annotations


class EdgebenchError(Exception):
    """A refusal for the user: ``str(e)`` is one line, "what is wrong: how to fix it"."""

    exit_code = 2
