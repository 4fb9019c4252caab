"""The gate's outputs: a terminal table, gate.md, junit.xml and gate.json."""
from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from edgebench.gate.stats import INCONCLUSIVE, REGRESSION
from edgebench.gate.verdict import ERROR, GateResult
from plumbing.files import write_atomic, write_json_atomic


def _num(v) -> str:
    return "not measured" if v is None else f"{v:.3g}"


def _change(c) -> str:
    if c.change is None:
        return ""
    f = (lambda x: ">+999%" if x > 9.99 else f"{x:+.1%}") if c.relative else (lambda x: f"{x:+.3g}")
    unit = "" if c.relative or not c.unit else f" {c.unit}"
    if c.low is None:       # a count (the cost tier): no interval
        return f"{f(c.change)}{unit}"
    return f"{f(c.change)} [{f(c.low)}, {f(c.high)}]{unit}"


def _p(c) -> str:
    return "" if c.p_value is None else f"{c.p_value:.2g}"


HEAD = ("check", "before", "after", "change [interval]", "rounds", "p", "bound", "verdict")


def _rows(result: GateResult) -> list[tuple]:
    return [(c.name, _num(c.before), _num(c.after), _change(c), str(c.rounds), _p(c), c.bound, c.verdict)
            for c in result.checks]


def text_table(head: tuple, rows: list[tuple]) -> list[str]:
    """A terminal table: the head, a rule, the rows, each column as wide as its widest cell."""
    rows = [head] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def table(result: GateResult) -> str:
    lines = text_table(HEAD, _rows(result))
    lines += [f"{c.verdict}: {c.name}: {c.detail}" for c in result.checks
              if c.detail and (c.verdict != "pass" or c.name.startswith("A/B"))]
    lines += [f"note: {n}" for n in result.notes] + [f"error: {e}" for e in result.errors]
    lines.append(f"verdict: {result.verdict} (exit {result.exit_code})")
    return "\n".join(lines)


def markdown(result: GateResult, header: str = "") -> str:
    out = ["# edgebench gate", ""]
    if header:
        out += [header, ""]
    out += [f"**Verdict: {result.verdict}** (exit {result.exit_code}) after {result.rounds} round(s)", "",
            "| " + " | ".join(HEAD) + " | detail |", "|" + " --- |" * (len(HEAD) + 1)]
    for c, row in zip(result.checks, _rows(result)):
        out.append("| " + " | ".join(row) + f" | {c.detail} |")
    out += [""] + [f"- {n}" for n in result.notes] + [f"- **error:** {e}" for e in result.errors]
    return "\n".join(out) + "\n"


def junit(result: GateResult) -> str:
    failures = sum(c.verdict == REGRESSION for c in result.checks)
    errors = sum(c.verdict in (ERROR, INCONCLUSIVE) for c in result.checks) + len(result.errors)
    cases = []
    for c in result.checks:
        msg = quoteattr(f"{c.metric}: after {_num(c.after)}, bound {c.bound}. {c.detail}")
        body = ""
        if c.verdict == REGRESSION:
            body = f"<failure message={msg}/>"
        elif c.verdict in (ERROR, INCONCLUSIVE):
            body = f"<error type={quoteattr(c.verdict)} message={msg}/>"
        cases.append(f'  <testcase classname="edgebench.gate" name={quoteattr(c.name)}>{body}</testcase>')
    for e in result.errors:
        cases.append(f'  <testcase classname="edgebench.gate" name="measurement">'
                     f'<error message={quoteattr(e)}/></testcase>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="edgebench-gate" tests="{len(cases)}" failures="{failures}" '
            f'errors="{errors}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def write_outputs(run_path: Path, result: GateResult, header: str, extra: dict) -> None:
    """gate.md, junit.xml and gate.json in the run; gate.md also into a CI step summary."""
    md = markdown(result, header)
    write_atomic(run_path / "gate.md", md)
    write_atomic(run_path / "junit.xml", junit(result))
    write_json_atomic(run_path / "gate.json", {
        "verdict": result.verdict, "exit_code": result.exit_code, "rounds": result.rounds,
        "checks": [c.to_dict() for c in result.checks], "notes": result.notes,
        "errors": result.errors, **extra})
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(md)
