"""One way to wait for a condition: poll it until it holds or a deadline passes.

Readiness is always a condition checked against a deadline, never a sleep of a guessed
length; every wait in edgebench goes through `wait_until`, so the poll interval and the
timeout message are the same everywhere.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold before the deadline; ``str(e)`` names what was awaited."""


def wait_until(condition: Callable[[], T], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Call ``condition`` until it returns something truthy and return that value.

    Raises `WaitTimeout` ("timed out after 5.0 s waiting for <what>") once ``timeout``
    seconds have passed; the condition is always called at least once, and once more at
    the deadline, so a slow poll cannot miss a condition that became true meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(interval, remaining))
