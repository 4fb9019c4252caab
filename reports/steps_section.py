"""The report's "Optimisation steps" section, from a steps run's steps.json alone.

Blocks in reports.markdown's format (("h", level, text), ("p", text), ("ul", [text]),
("table", headers, rows)), so the example report inserts them with one line and the
markdown and HTML say the same thing. Every number comes from steps.json, three
significant digits; an unmeasured figure or step says so and why.
"""
from __future__ import annotations

from reports.numbers import NOT_MEASURED, fmt

HEADING = "Optimisation steps"
TABLE_HEADERS = ["Figure", "Before", "After", "Change [95 % CI]", "Rounds"]


def _pct(ratio: float) -> str:
    return fmt((ratio - 1) * 100, " %", sign=True)


def change_cell(fig: dict) -> str:
    """A ratio B/A as a relative change, a difference as MB, each with its interval."""
    if fig.get("estimate") is None:
        return f"{NOT_MEASURED} ({fig['error']})" if fig.get("error") else NOT_MEASURED
    if fig.get("relative"):
        return (f"{_pct(fig['estimate'])} [{_pct(fig['low'])}, {_pct(fig['high'])}] "
                f"(B/A {fmt(fig['estimate'])})")
    unit = f" {fig.get('unit')}" if fig.get("unit") else ""
    return (f"{fmt(fig['estimate'], unit, sign=True)} "
            f"[{fmt(fig['low'], sign=True)}, {fmt(fig['high'], sign=True)}]")


def _value(x, unit: str) -> str:
    return fmt(x, f" {unit}") if x is not None else NOT_MEASURED


def step_table(step: dict, figures: list[dict]) -> tuple:
    rows = []
    for spec in figures:
        fig = (step.get("figures") or {}).get(spec["key"]) or {}
        rows.append([spec["label"], _value(fig.get("before"), spec["unit"]),
                     _value(fig.get("after"), spec["unit"]), change_cell(fig) if fig else NOT_MEASURED,
                     fmt(fig.get("rounds")) if fig.get("rounds") else "0"])
    return ("table", TABLE_HEADERS, rows)


def _side_line(label: str, commit: str, facts: dict) -> str:
    """What one side really ran, from its own logs: the server and the healthcheck."""
    line = facts.get("start_line") or ""
    server = next((w.split("=", 1)[1] for w in line.split() if w.startswith("server=")), None)
    variant = next((w.split("=", 1)[1] for w in line.split() if w.startswith("variant=")), None)
    text = f"{label} ({commit}): {variant or 'variant ' + NOT_MEASURED} service on {server or NOT_MEASURED}"
    if facts.get("healthcheck"):
        cpu = facts.get("healthcheck_cpu_ms")
        text += f"; healthcheck `{facts['healthcheck']}`" + (f" ({fmt(cpu)} ms CPU per check)" if cpu else "")
    return text


def _machine(m: dict) -> str:
    parts = [m.get("cpu_model"), f"{m['cores']} cores" if m.get("cores") else None,
             f"kernel {m['kernel']}" if m.get("kernel") else None,
             f"cgroup v{m['cgroup_version']}" if m.get("cgroup_version") else None,
             f"Python {m['python']}" if m.get("python") else None]
    return ", ".join(p for p in parts if p) or NOT_MEASURED


def steps_blocks(steps: dict) -> list:
    """The "Optimisation steps" section of a steps run (the content of steps.json)."""
    figures = steps.get("figures") or []
    level = steps.get("interval_level", 0.95)
    status = steps.get("status")
    doc = [("h", 2, HEADING),
           ("p", f"Each optimisation step that was kept, re-measured side by side: in every round the "
                 f"service of the step's \"before\" commit (A) and of its \"after\" commit (B) run at the "
                 f"same time, each with its own collector and cgroups, fresh processes every round. "
                 f"Before and after are the median over the rounds; the change is the mean over the "
                 f"rounds of the paired B/A ratio (CPU, latency) or B - A difference (memory), with its "
                 f"{level:.0%} Student t interval. Run `{steps.get('run_id')}`"
                 f"{'' if status in (None, 'complete') else f' ({status}: steps below are what it measured)'}; "
                 f"load: {steps.get('load') or NOT_MEASURED}; machine: {_machine(steps.get('machine') or {})}. "
                 f"Command: `bin/edgebench steps` (docs/steps.md).")]
    for n, step in enumerate(steps.get("steps") or [], 1):
        doc.append(("h", 3, f"{n}. {step['name']}: {step['before']} → {step['after']}"))
        doc.append(("p", step.get("change") or ""))
        if step.get("note"):
            doc.append(("p", f"Note: {step['note']}"))
        if step.get("status") == "ok" or (step.get("status") == "interrupted" and step.get("rounds", 0) >= 2):
            doc.append(step_table(step, figures))
            sides = step.get("sides") or {}
            if sides:
                doc.append(("ul", [_side_line(lbl, step[side], sides[lbl])
                                   for lbl, side in (("A", "before"), ("B", "after")) if lbl in sides]))
            if step.get("status") == "interrupted":
                doc.append(("p", f"Interrupted: {step.get('reason')}."))
        else:
            doc.append(("p", f"Not measured: {step.get('reason') or step.get('status') or 'no reason recorded'}."))
    if not steps.get("steps"):
        doc.append(("p", f"No step measured ({status or 'no status'})."))
    return doc


def steps_markdown(steps: dict) -> str:
    """The section alone as markdown (the run's steps.md, the terminal)."""
    from reports.markdown import to_markdown
    return to_markdown(steps_blocks(steps), ".")
