"""docs/gate.md's cost-tier tables from `edgebench cost-calibrate`'s measured sides:
the A/A spread of every figure (disjoint pairs of unchanged sides), the thresholds
rustc-perf's rule gives, the injected gates (each injected side against its own
unchanged side) with their detection rate, and the kept steps reverted."""
from __future__ import annotations

import statistics
import subprocess
import tempfile
from pathlib import Path

from edgebench.cost.calibrate import NAMED, clopper_pearson, load, q3_3iqr
from edgebench.cost.config import DECIDING, CostConfig
from edgebench.cost.measure import ENDPOINTS
from edgebench.cost.verdict import REGRESSION, compare
from edgebench.results import ROOT

STEPS = ("process-collector", "no-created", "cached-exposition", "lean-server", "hardened-server")
FIGURES = ("instructions", "alloc_blocks", "syscalls", "held_bytes", "sched_syscalls", "gc_per_1000")


def step_trees(names=STEPS) -> tuple[list, list]:
    """([(label, tree)], [dirs to remove]): the service trees of each step's before
    (label step:NAME:before) and after, exported with git archive."""
    from edgebench.steps import load_steps
    steps = {s.name: s for s in load_steps()}
    trees, dirs = [], []
    for name in names:
        for side in ("before", "after"):
            out = Path(tempfile.mkdtemp(prefix=f"edgebench-cost-{name}-{side}-"))
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", getattr(steps[name], side), "service", "plumbing"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
            trees.append((f"step:{name}:{side}", out))
            dirs.append(out)
    return trees, dirs


def _change(figure: str, a: float, b: float) -> float:
    relative = DECIDING.get(figure, (False, 0))[0]
    return (b - a) / a if relative and a else b - a


def aa_changes(sides: list, figure: str, endpoint: str) -> list[float]:
    """B - A (or relative) over disjoint pairs (0, 1), (2, 3), ... of unchanged sides."""
    return [_change(figure, sides[i][endpoint].get(figure, 0.0), sides[i + 1][endpoint].get(figure, 0.0))
            for i in range(0, len(sides) - 1, 2)]


def _fmt(figure: str, v: float) -> str:
    return f"{v:+.3%}" if DECIDING.get(figure, (False, 0))[0] else f"{v:+.3g}"


def spread_table(unchanged: list) -> tuple[str, dict]:
    """The A/A table and {(figure, endpoint): Q3 + 3 IQR} for the deciding figures."""
    rows = ["| endpoint | figure | per request (median of sides) | A/A changes: median abs | max abs | "
            "Q3 + 3 IQR |", "|" + " --- |" * 6]
    rule = {}
    for endpoint in ENDPOINTS:
        for figure in FIGURES:
            values = [s[endpoint].get(figure) for s in unchanged if s[endpoint].get(figure) is not None]
            if not values:
                continue
            changes = aa_changes(unchanged, figure, endpoint)
            if len(changes) < 4:
                continue
            q = q3_3iqr(changes)
            if figure in DECIDING:
                rule[(figure, endpoint)] = q
            rows.append(f"| {endpoint} | {figure} | {statistics.median(values):.6g} | "
                        f"{_fmt(figure, statistics.median(abs(c) for c in changes))} | "
                        f"{_fmt(figure, max(abs(c) for c in changes))} | {_fmt(figure, q)} |")
    return "\n".join(rows), rule


def gates(sides: dict, config: CostConfig) -> list[tuple[str, object]]:
    """Every comparison: A/A pairs, then each injected side against an unchanged side no
    A/A pair of its index shares (unchanged sides are taken in order, from the end)."""
    unchanged = sides.get("unchanged", [])
    out = [("unchanged", compare(unchanged[i], unchanged[i + 1], config)) for i in range(0, len(unchanged) - 1, 2)]
    spare = list(reversed(unchanged))
    k = 0
    for label, measured in sides.items():
        if label == "unchanged" or label.startswith("step:"):
            continue
        for b in measured:
            out.append((label, compare(spare[k % len(spare)], b, config)))
            k += 1
    for name in STEPS:
        before, after = sides.get(f"step:{name}:before"), sides.get(f"step:{name}:after")
        if before and after:
            # reverted: A = after (the kept code), B = before
            out.append((f"step:{name}", compare(after[0], before[0], config)))
    return out


def detection_table(comparisons: list, sides: dict) -> str:
    """Per comparison kind: gates flagged, the rate's interval, what the injection really
    added (its sides' median over the unchanged sides' median), the change per gate, and
    in how many gates the endpoint's movers named the injected function (or system call),
    anywhere and in the first line."""
    rows = ["| comparison | gates | flagged a regression | rate [95 % CI] | added (median of sides) | "
            "change per gate: median [min, max] | named first (last flagged gate) | named among the movers k/n |", "|" + " --- |" * 8]
    by: dict = {}
    for label, result in comparisons:
        by.setdefault(label, []).append(result)
    unchanged = sides.get("unchanged", [])
    for label, results in by.items():
        k = sum(r.verdict == REGRESSION for r in results)
        low, high = clopper_pearson(k, len(results))
        endpoint = "/sensor" if label.startswith("sensor") else "/metrics"
        moved = []
        for figure in ("instructions", "syscalls", "alloc_blocks"):
            changes = [r2.change for r in results for r2 in r.rows
                       if r2.endpoint == endpoint and r2.figure == figure and r2.change is not None]
            if changes:
                moved.append(f"{figure} {_fmt(figure, statistics.median(changes))} "
                             f"[{_fmt(figure, min(changes))}, {_fmt(figure, max(changes))}]")
        added = "-"
        if label in sides and unchanged and label != "unchanged":
            figure = "syscalls" if label == "syscall" else "instructions"
            a = statistics.median(s[endpoint][figure] for s in unchanged)
            b = statistics.median(s[endpoint][figure] for s in sides[label])
            added = f"{figure} {_fmt(figure, _change(figure, a, b))}"
        failed = [r for r in results if r.verdict == REGRESSION]
        named = (failed[-1].movers.get(endpoint, ["-"])[:1] or ["-"]) if failed else ["- (none failed)"]
        expected = NAMED.get(label, "_injected_cost" if label.startswith("metrics-") else None)
        hits = "-"
        if expected:
            anywhere = sum(any(expected in line for line in r.movers.get(endpoint, [])) for r in results)
            first = sum(expected in (r.movers.get(endpoint) or [""])[0] for r in results)
            hits = f"{anywhere}/{len(results)} (first line: {first}/{len(results)})"
        rows.append(f"| {label} | {len(results)} | {k} | {k / len(results):.0%} [{low:.1%}, {high:.1%}] | "
                    f"{endpoint}: {added} | {endpoint}: {'; '.join(moved)} | {named[0]} | {hits} |")
    return "\n".join(rows)


def summary(path: Path, config: CostConfig) -> str:
    sides = load(path)
    unchanged = sides.get("unchanged", [])
    spread, rule = spread_table(unchanged)
    lines = [f"{len(unchanged)} unchanged sides, {len(unchanged) // 2} disjoint A/A pairs", "", spread, "",
             "Q3 + 3 IQR of the A/A changes, per deciding figure: " +
             ", ".join(f"{f} {e} {_fmt(f, v)}" for (f, e), v in sorted(rule.items())), "",
             detection_table(gates(sides, config), sides)]
    return "\n".join(lines)
