"""How a number is printed in every document and graph: three significant digits.

A measurement on a shared 2-core machine is rarely good to more than three digits;
printing more suggests a precision the figure does not have."""
from __future__ import annotations

import math

NOT_MEASURED = "not measured"
SIGNIFICANT = 3


def round_sig(x: float, digits: int = SIGNIFICANT) -> float:
    """x rounded to ``digits`` significant digits (1234.5 -> 1230, 0.012345 -> 0.0123)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def fmt(x, unit: str = "", sign: bool = False) -> str:
    """A number as shown in the documents: three significant digits (thousands separated,
    no exponent between 1e-4 and 1e15); whole counts exactly; None -> "not measured"."""
    if x is None:
        return NOT_MEASURED
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        text = f"{x:+,d}" if sign else f"{x:,d}"
    else:
        r = round_sig(float(x))
        if r != 0 and not 1e-4 <= abs(r) < 1e15:
            text = f"{r:+.{SIGNIFICANT - 1}e}" if sign else f"{r:.{SIGNIFICANT - 1}e}"
        else:
            decimals = max(0, SIGNIFICANT - 1 - int(math.floor(math.log10(abs(r))))) if r else 0
            text = f"{r:+,.{decimals}f}" if sign else f"{r:,.{decimals}f}"
    return f"{text}{unit}"
