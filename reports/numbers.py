"""How a number is printed in every document and graph: three significant digits, in the
unit that fits its size.

A measurement on a shared 2-core machine is rarely good to more than three digits;
printing more suggests a precision the figure does not have. A reader takes in "40 B"
and "870 µs" at a glance, not "3.81e-05 MB" or "0.00087 s": :func:`human` picks the unit
from the figure's catalogue unit (reports/figures.py) and its size."""
from __future__ import annotations

import math

NOT_MEASURED = "not measured"
SIGNIFICANT = 3
KIB = 1024
# Below this many cores, CPU use reads as milliseconds of CPU per second (1 core = 1,000 ms/s).
CORES_AS_MS_PER_S_BELOW = 0.1


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


def _ladder(x: float, units: tuple, step: float, sign: bool) -> str:
    """x (in units[0]) in the first unit of the ladder where it reads below 1,000 once rounded
    (each unit ``step`` times the one before); zero reads in the smallest useful unit."""
    for i, name in enumerate(units):
        if i == len(units) - 1 or abs(round_sig(x)) < 999.5:
            return fmt(x, f" {name}", sign)
        x = x / step
    raise AssertionError("unreachable")


def human_bytes(b, sign: bool = False, per: str = "") -> str:
    """Bytes in the unit that fits: 40 B, 3.20 KB, 20.3 MB, 1.20 GB (KB = KiB, MB = MiB)."""
    if b is None:
        return NOT_MEASURED
    b = float(b)
    if abs(b) < 999.5:      # whole bytes: a fraction of a byte is noise
        return fmt(int(round(b)), f" B{per}", sign)
    return _ladder(b / KIB, tuple(f"{u}{per}" for u in ("KB", "MB", "GB", "TB")), KIB, sign)


def human_mb(mb, sign: bool = False) -> str:
    """Memory given in MB (MiB), in the unit that fits: 40 B, 3.20 KB, 20.3 MB."""
    return NOT_MEASURED if mb is None else human_bytes(mb * KIB * KIB, sign)


def human_ms(ms, sign: bool = False) -> str:
    """A duration given in ms, in the unit that fits: 870 µs, 3.74 ms, 1.20 s."""
    if ms is None:
        return NOT_MEASURED
    if ms != 0 and abs(round_sig(ms)) < 1:
        return fmt(ms * 1000, " µs", sign)
    if abs(round_sig(ms)) < 999.5:
        return fmt(float(ms), " ms", sign)
    return fmt(ms / 1000, " s", sign)


def human_cores(cores, sign: bool = False) -> str:
    """CPU use: 0.402 cores, or below a tenth of a core 5.84 ms/s (ms of CPU per second)."""
    if cores is None:
        return NOT_MEASURED
    if abs(cores) >= CORES_AS_MS_PER_S_BELOW:
        return fmt(float(cores), " cores", sign)
    return fmt(cores * 1000.0, " ms/s", sign)


def human_ratio(r, sign: bool = False) -> str:
    """A share (0..1) as a percentage: 0.00625 -> 0.625 %."""
    return NOT_MEASURED if r is None else fmt(r * 100.0, " %", sign)


def human(x, unit: str, sign: bool = False) -> str:
    """x, given in the catalogue ``unit`` (ms, s, MB, KB, B, bytes/s, cores, ratio, count,
    req/s, %), in the unit that fits its size; None -> "not measured"."""
    if x is None:
        return NOT_MEASURED
    if isinstance(x, bool) or unit in ("", "count"):
        return fmt(x, sign=sign)
    if unit == "ms":
        return human_ms(x, sign)
    if unit == "s":
        return human_ms(x * 1000.0, sign)
    if unit == "MB":
        return human_mb(x, sign)
    if unit == "KB":
        return human_bytes(x * KIB, sign)
    if unit in ("B", "bytes"):
        return human_bytes(x, sign)
    if unit in ("bytes/s", "B/s"):
        return human_bytes(x, sign, per="/s")
    if unit == "cores":
        return human_cores(x, sign)
    if unit == "ratio":
        return human_ratio(x, sign)
    return fmt(x, f" {unit}", sign)


def human_range(lo, hi, unit: str) -> str:
    """A min–max in the unit that fits, the unit written once when both ends share it
    ("41.0–43.0 MB", "870 µs–1.20 ms")."""
    a, b = human(lo, unit), human(hi, unit)
    ua, ub = a.rpartition(" ")[2], b.rpartition(" ")[2]
    if " " in a and ua == ub:
        return f"{a.rpartition(' ')[0]}–{b}"
    return f"{a}–{b}"


def human_tick(v: float, unit: str) -> str:
    """An axis tick in the unit that fits, without trailing zeros ("1 ms", "500 µs", "4 KB")."""
    num, _, rest = human(v, unit).partition(" ")
    if "." in num and "e" not in num:
        num = num.rstrip("0").rstrip(".")
    return f"{num} {rest}".strip()
