"""The explanation of a CPU regression: one more side-by-side round with py-spy on
both services, then the functions whose share of the samples grew from A to B."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from edgebench.params import RunParams
from edgebench.rounds import Side, run_round


def profile_diff(run_path: Path, params: RunParams, sides: list[Side]) -> str:
    """One line naming where the CPU went; top_functions_diff.csv beside it."""
    from profiling.top_functions import write_diff

    # an idle-ish optimized service gives py-spy few on-CPU samples at 100 Hz
    p = dataclasses.replace(params, profile=True, tracemalloc=False, pyspy_rate=500)
    rr = run_round(run_path / "explain", p, 1, sides)
    if rr.errors:
        raise RuntimeError("; ".join(rr.errors))
    before = rr.dirs["A"] / "profile" / "top_functions.csv"
    after = rr.dirs["B"] / "profile" / "top_functions.csv"
    out = run_path / "top_functions_diff.csv"
    df = write_diff(before, after, out)
    # functions that appear only in B lead (new code is the usual culprit), then those
    # whose share grew most
    df = df[df["delta_self_pct"] > 0].assign(is_new=lambda d: d["status"] == "new")
    grew = df.sort_values(["is_new", "delta_self_pct"], ascending=[False, False]).head(3)
    where = ", ".join(f"{r.function} ({r.file}, {r.status}, {r.delta_self_pct:+.1f} pts of samples)"
                      for r in grew.itertuples()) or "no single function stands out"
    return f"where the CPU went (py-spy, A -> B): {where}; see {out.name}"
