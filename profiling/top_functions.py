"""Pure functions over collapsed stacks (py-spy ``--format raw``).

A collapsed-stack line is ``frame;frame;...;leaf count`` (root first); a py-spy
frame is ``function (file:line)``. Nothing here starts processes or reads
anything but the text it is given, except the small ``write_*`` helpers.

- ``parse_collapsed(text)``  -> Counter {stack tuple: samples}
- ``top_functions(stacks)``  -> DataFrame function, file, line, self_samples,
  total_samples, self_pct, total_pct (percent of all samples)
- ``diff_top_functions(before, after)`` -> what disappeared, what appeared, what
  grew or shrank, compared in percent of each profile's samples (the two runs
  need not have the same length).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

import pandas as pd

from plumbing.files import write_atomic

FRAME_RE = re.compile(r"^(?P<function>.*?) \((?P<file>.*):(?P<line>\d+)\)$")
TOP_COLUMNS = ["function", "file", "line", "self_samples", "total_samples", "self_pct", "total_pct"]
DIFF_COLUMNS = ["function", "file", "status", "before_self_pct", "after_self_pct", "delta_self_pct",
                "before_total_pct", "after_total_pct", "delta_total_pct",
                "before_self_samples", "after_self_samples"]


def parse_frame(frame: str) -> tuple[str, str, int | None]:
    """``"burn (service/app.py:42)"`` -> ("burn", "service/app.py", 42); a frame without a
    location (thread/process names) -> (frame, "", None)."""
    m = FRAME_RE.match(frame.strip())
    if not m:
        return frame.strip(), "", None
    return m.group("function"), m.group("file"), int(m.group("line"))


def parse_collapsed(text: str) -> Counter:
    """Parse collapsed stacks into a Counter {tuple(frames root..leaf): samples}.
    Blank and malformed lines are ignored; repeated stacks are summed."""
    out: Counter = Counter()
    for line in text.splitlines():
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        try:
            n = int(count)
        except ValueError:
            continue
        out[tuple(stack.split(";"))] += n
    return out


def merge_stacks(parts: Iterable[Counter]) -> Counter:
    total: Counter = Counter()
    for p in parts:
        total.update(p)
    return total


def format_collapsed(stacks: Counter) -> str:
    """Inverse of ``parse_collapsed`` (sorted, one line per stack)."""
    return "".join(f"{';'.join(s)} {n}\n" for s, n in sorted(stacks.items()) if n > 0)


def top_functions(stacks: Counter | str, by: str = "function") -> pd.DataFrame:
    """Self/total samples per function.

    ``by="function"``: one row per (function, file); ``line`` is the function's hottest
    line (most self samples, else most total samples) — py-spy records the current line,
    so a function is otherwise split over many lines. ``by="line"``: one row per
    (function, file, line). A frame that appears several times in one stack (recursion)
    counts once towards total_samples of that stack. Sorted by self then total samples.
    """
    if isinstance(stacks, str):
        stacks = parse_collapsed(stacks)
    if by not in ("function", "line"):
        raise ValueError(f"by must be 'function' or 'line', not {by!r}")
    grand = sum(stacks.values())
    self_c: Counter = Counter()
    total_c: Counter = Counter()
    line_self: Counter = Counter()
    line_total: Counter = Counter()
    for stack, n in stacks.items():
        if not stack:
            continue
        parsed = [parse_frame(f) for f in stack]
        keys_line = [(fn, fi, ln) for fn, fi, ln in parsed]
        keys = keys_line if by == "line" else [(fn, fi) for fn, fi, _ in parsed]
        self_c[keys[-1]] += n
        for k in set(keys):
            total_c[k] += n
        if by == "function":
            line_self[keys_line[-1]] += n
            for k in set(keys_line):
                line_total[k] += n
    lines_of: dict[tuple, list] = {}
    for (fn, fi, ln) in line_total:
        lines_of.setdefault((fn, fi), []).append(ln)
    rows = []
    for key, tot in total_c.items():
        if by == "line":
            fn, fi, ln = key
        else:
            fn, fi = key
            cands = [(line_self[(fn, fi, l)], line_total[(fn, fi, l)], l)
                     for l in lines_of.get((fn, fi), [])]
            ln = max(cands, key=lambda c: (c[0], c[1], -(c[2] or 0)))[2] if cands else None
        s = self_c.get(key, 0)
        rows.append({
            "function": fn, "file": fi, "line": ln,
            "self_samples": s, "total_samples": tot,
            "self_pct": 100.0 * s / grand if grand else 0.0,
            "total_pct": 100.0 * tot / grand if grand else 0.0,
        })
    df = pd.DataFrame(rows, columns=TOP_COLUMNS)
    if df.empty:
        return df
    df["line"] = df["line"].astype("Int64")
    df = df.sort_values(["self_samples", "total_samples", "function"],
                        ascending=[False, False, True], kind="mergesort")
    return df.reset_index(drop=True)


def diff_top_functions(before: pd.DataFrame, after: pd.DataFrame,
                       threshold_pct: float = 0.5) -> pd.DataFrame:
    """Compare two ``top_functions`` tables (by function) in percent of samples.

    status: ``gone`` (in before only), ``new`` (in after only), ``grew`` / ``shrank``
    (total_pct changed by more than ``threshold_pct`` points), else ``same``.
    Sorted by the absolute change of total_pct, largest first.
    """
    key = ["function", "file"]
    b = before.groupby(key, as_index=False, dropna=False)[["self_pct", "total_pct", "self_samples"]].sum()
    a = after.groupby(key, as_index=False, dropna=False)[["self_pct", "total_pct", "self_samples"]].sum()
    m = b.merge(a, on=key, how="outer", suffixes=("_before", "_after"), indicator=True)
    out = pd.DataFrame({
        "function": m["function"], "file": m["file"],
        "before_self_pct": m["self_pct_before"].fillna(0.0),
        "after_self_pct": m["self_pct_after"].fillna(0.0),
        "before_total_pct": m["total_pct_before"].fillna(0.0),
        "after_total_pct": m["total_pct_after"].fillna(0.0),
        "before_self_samples": m["self_samples_before"].fillna(0).astype(int),
        "after_self_samples": m["self_samples_after"].fillna(0).astype(int),
    })
    out["delta_self_pct"] = out["after_self_pct"] - out["before_self_pct"]
    out["delta_total_pct"] = out["after_total_pct"] - out["before_total_pct"]
    status = []
    for ind, d in zip(m["_merge"], out["delta_total_pct"]):
        if ind == "left_only":
            status.append("gone")
        elif ind == "right_only":
            status.append("new")
        elif d > threshold_pct:
            status.append("grew")
        elif d < -threshold_pct:
            status.append("shrank")
        else:
            status.append("same")
    out["status"] = status
    out = out.assign(_abs=out["delta_total_pct"].abs()).sort_values(
        ["_abs", "function"], ascending=[False, True], kind="mergesort").drop(columns="_abs")
    return out[DIFF_COLUMNS].reset_index(drop=True)


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_top_functions(collapsed_path: str | os.PathLike, out_csv: str | os.PathLike | None = None,
                        by: str = "function") -> pd.DataFrame:
    """collapsed.txt -> top_functions.csv (next to it unless ``out_csv`` is given)."""
    collapsed_path = Path(collapsed_path)
    df = top_functions(parse_collapsed(collapsed_path.read_text()), by=by)
    _atomic_write_csv(df, Path(out_csv) if out_csv else collapsed_path.with_name("top_functions.csv"))
    return df


def write_diff(before_csv: str | os.PathLike, after_csv: str | os.PathLike,
               out_csv: str | os.PathLike, threshold_pct: float = 0.5) -> pd.DataFrame:
    """top_functions.csv (before) + top_functions.csv (after) -> top_functions_diff.csv."""
    df = diff_top_functions(pd.read_csv(before_csv, keep_default_na=False),
                            pd.read_csv(after_csv, keep_default_na=False),
                            threshold_pct=threshold_pct)
    _atomic_write_csv(df, Path(out_csv))
    return df
