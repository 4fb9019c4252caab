"""Go-style durations, as compose files, Prometheus configs and VictoriaMetrics flags
write them (``500ms``, ``10s``, ``1m30s``, ``2h``, ``1d``): one parser for all three."""
from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
            "d": 86400.0, "w": 7 * 86400.0, "y": 365 * 86400.0}


def parse_duration(value) -> float:
    """Seconds in a duration with units; raises ValueError for anything else (a bare
    number included: a unit is what tells 5 seconds from 5 milliseconds)."""
    if isinstance(value, bool) or not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a duration with a unit (e.g. 5s, 500ms, 1m30s)")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"{value!r} is not a duration with a unit (e.g. 5s, 500ms, 1m30s)")
    return total
