"""The one check of a number a person sets: a make variable, a flag, an environment variable.

Every setting edgebench reads (the bench's and the capacity sweeps' make variables, the
sensor service's SENSOR_* variables, the load generator's flags) is parsed here, where the
user typed it, and refused with one line that names the setting as the user set it
(``SCRAPE_RATE=0``, ``--scrape-rate``, ``SENSOR_PORT``) and how to fix it. What passes is
typed (int or float, finite, within its bounds) and is not checked again further in.

Plain Python on purpose: the sensor service imports it inside its 50 MB limit.
"""
from __future__ import annotations

import math

from plumbing.errors import EdgebenchError


class SettingError(EdgebenchError, ValueError):
    """A setting that is not a number or is out of its bounds; ``str(e)`` is the one line."""


def _bound_text(at_least, above, at_most) -> str:
    if at_least is not None and at_most is not None:
        return f"from {at_least:g} to {at_most:g}"
    parts = []
    if above is not None:
        parts.append(f"> {above:g}")
    if at_least is not None:
        parts.append(f">= {at_least:g}")
    if at_most is not None:
        parts.append(f"<= {at_most:g}")
    return " and ".join(parts)


def number(raw, setting: str, *, whole: bool = False, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None, unit: str = "",
           what: str = "", fix: str = "", error: type[EdgebenchError] = SettingError) -> int | float:
    """``raw`` (text, or an int/float) as a finite int (``whole``) or float within the bounds.

    Refused with ``error`` (one line): "<setting>=<raw> is not a whole number", "... is not
    a finite number", or "... must be > 0 <unit>", each followed by ``fix`` (default: what
    to set it to; ``what`` names the kind, e.g. "a rate"). Booleans are not numbers; text
    is stripped; ``1_000`` reads as 1000.
    """
    kind = what or ("a whole number" if whole else "a number")
    bound = _bound_text(at_least, above, at_most)
    wanted = f"{kind} {bound}".strip() + (f" {unit}" if unit else "")
    fix = fix or f"set it to {wanted}"
    shown = f"{setting}={raw!r}"
    value = _parse(raw, whole)
    if value is None:
        raise error(f"{shown} is not {kind}: {fix}")
    if not math.isfinite(value):
        raise error(f"{shown} is not a finite number: {fix}")
    if ((at_least is not None and value < at_least) or (above is not None and value <= above)
            or (at_most is not None and value > at_most)):
        raise error(f"{shown} must be {bound}" + (f" {unit}" if unit else "") + f": {fix}")
    return value


def _parse(raw, whole: bool):
    """int/float from text or a number; None when it is not one (a bool, a fraction for an int)."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float)):
        value = raw
    else:
        text = str(raw).strip()
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            return None
    if whole:
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                return None
            value = int(value)
        return value
    return float(value)
