"""The report's "Optimisation steps" section, from a steps run's steps.json alone.

Blocks in reports.markdown's format (("h", level, text), ("p", text), ("ul", [text]),
("table", headers, rows)), so the example report inserts them with one line and the
markdown and HTML say the same thing. Every number comes from steps.json, three
significant digits; an unmeasured figure or step says so and why.
"""
from __future__ import annotations

import statistics

from reports.numbers import NOT_MEASURED, fmt, human

HEADING = "Optimisation steps"
TABLE_HEADERS = ["Figure", "Before (median)", "After (median)", "Paired change, mean over rounds [95 % CI]",
                 "Rounds"]


def _pct(ratio: float) -> str:
    return fmt((ratio - 1) * 100, " %", sign=True)


def _same_unit(values: list, unit: str, sign: bool = True) -> list[str]:
    """Each value in the unit that fits; when all share it, the unit is written once (first)."""
    texts = [human(v, unit, sign) for v in values]
    units = {t.rpartition(" ")[2] for t in texts}
    if len(units) == 1 and all(" " in t for t in texts):
        return [texts[0]] + [t.rpartition(" ")[0] for t in texts[1:]]
    return texts


def change_cell(fig: dict) -> str:
    """A ratio B/A as a relative change, a difference in the unit that fits, each with its interval."""
    if fig.get("estimate") is None:
        return f"{NOT_MEASURED} ({fig['error']})" if fig.get("error") else NOT_MEASURED
    if fig.get("relative"):
        return (f"{_pct(fig['estimate'])} [{_pct(fig['low'])}, {_pct(fig['high'])}] "
                f"(B/A {fmt(fig['estimate'])})")
    est, low, high = _same_unit([fig["estimate"], fig["low"], fig["high"]], fig.get("unit") or "")
    return f"{est} [{low}, {high}]"


def medians_change(fig: dict) -> float | None:
    """The change the Before and After medians show: After/Before for a ratio figure, After -
    Before for a difference; None when a side is missing (or Before is 0 for a ratio)."""
    a, b = fig.get("before"), fig.get("after")
    if a is None or b is None:
        return None
    if fig.get("relative"):
        return b / a if a else None
    return b - a


def median_round_ratio(fig: dict) -> float | None:
    """The median of the per-round B/A ratios (rounds where both sides were measured)."""
    pairs = [(a, b) for a, b in zip(fig.get("a") or [], fig.get("b") or []) if a and b is not None]
    return statistics.median(b / a for a, b in pairs) if pairs else None


def disagreement(label: str, fig: dict) -> str | None:
    """A sentence when the paired mean moves one way and the medians the other (a few rounds
    far off pull a mean, not a median), so the row cannot be read the wrong way."""
    m, est = medians_change(fig), fig.get("estimate")
    if m is None or est is None:
        return None
    centre = 1.0 if fig.get("relative") else 0.0
    if (m - centre) * (est - centre) >= 0:
        return None
    unit = fig.get("unit") or ""
    way = {True: "rise", False: "fall"}
    if fig.get("relative"):
        per_round = median_round_ratio(fig)
        medians = f"{_pct(m)}, ratio of the medians" + (
            f"; median of the per-round ratios {_pct(per_round)}" if per_round is not None else "")
        mean = f"the paired mean {'rises' if est > 1 else 'falls'} ({_pct(est)})"
    else:
        medians = f"{human(m, unit, sign=True)}, difference of the medians"
        mean = f"the paired mean {'rises' if est > 0 else 'falls'} ({human(est, unit, sign=True)})"
    verdict = ("its interval holds no change: no measured change either way"
               if fig["low"] <= centre <= fig["high"] else
               "its interval excludes no change: the paired mean, over rounds run side by side, is the estimate")
    return f"{label}: the medians {way[m > centre]} ({medians}) while {mean}; {verdict}."


def _value(x, unit: str) -> str:
    return human(x, unit)


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
                 f"rounds of the paired B/A ratio (CPU, latency; a geometric mean) or B - A difference "
                 f"(memory), with its {level:.0%} Student t interval. A few rounds far off pull a mean, not a median: "
                 f"where the two move opposite ways a line under the table says so. Run `{steps.get('run_id')}`"
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
            notes = [disagreement(spec["label"], (step.get("figures") or {}).get(spec["key"]) or {})
                     for spec in figures]
            doc += [("p", n) for n in notes if n]
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
