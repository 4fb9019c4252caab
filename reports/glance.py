"""The report's first screen: the five answers a robot engineer came for, before any detail.

Baseline against optimized (with VictoriaMetrics when the run has it): CPU per request, CPU
per scrape where the load was scrapes alone (under a mixed load the service's CPU over its
scrapes is not what one scrape costs), peak memory against the limit, /metrics p99 from the intended start, failed scrapes,
and the stack against its budget; then one sentence per collector and links to the sections
below. Every number is one the summary already holds: this module only chooses and words."""
from __future__ import annotations

from .numbers import NOT_MEASURED, fmt, human_mb, human_ms  # noqa: F401 (re-exported)

LATENCY = "scrape_latency_from_intended_ms.p99"


def change(m: dict | None, lower_is_better: bool = True) -> str:
    """'68.7× less' for a large change, '-54.4 %' for a modest one, '' when not measured."""
    if not m or m.get("a") is None or m.get("b") is None:
        return ""
    a, b = m["a"], m["b"]
    if a == b:
        return "no change"
    if a and b and (a / b >= 3 or b / a >= 3):
        factor = a / b if a > b else b / a
        word = ("less" if a > b else "more") if lower_is_better else ("lower" if a > b else "higher")
        return f"{fmt(factor)}× {word}"
    return fmt(m.get("change_pct"), " %", sign=True) if m.get("change_pct") is not None else ""


def _failed_count(s: dict) -> tuple[int, int] | None:
    counts = (s.get("request_counts_by_endpoint") or {}).get("/metrics") or {}
    due, ok = counts.get("intended"), counts.get("ok")
    return None if due is None or ok is None else (due - ok, due)


def _failed(s: dict) -> str:
    fc = _failed_count(s)
    return NOT_MEASURED if fc is None else f"{fc[0]:,d} of {fc[1]:,d}"


def _failed_change(a: dict, b: dict) -> str:
    fa, fb = _failed_count(a), _failed_count(b)
    if fa is None or fb is None:
        return ""
    return "no change" if fa[0] == fb[0] else f"{abs(fb[0] - fa[0]):,d} {'fewer' if fb[0] < fa[0] else 'more'}"


def _with_share(value_mb: float | None, limit_mb: float | None) -> str:
    if value_mb is None:
        return NOT_MEASURED
    if not limit_mb:
        return human_mb(value_mb)
    whole = fmt(int(limit_mb), " MB") if float(limit_mb).is_integer() else human_mb(limit_mb)
    return f"{human_mb(value_mb)} ({100 * value_mb / limit_mb:.0f} % of {whole})"


def _variant_comparison(summary: dict) -> dict | None:
    cmps = [c for c in (summary.get("comparisons") or {}).values() if c.get("kind") == "variant"]
    vm = [c for c in cmps if (summary["scenarios"].get(c["a"]) or {}).get("collector") == "victoriametrics"]
    return (vm or cmps or [None])[0]


def glance_table(summary: dict) -> tuple | None:
    """The table block baseline against optimized, or None without such a comparison."""
    cmp = _variant_comparison(summary)
    if cmp is None:
        return None
    a, b = summary["scenarios"][cmp["a"]], summary["scenarios"][cmp["b"]]
    m = cmp["metrics"]
    service = b.get("service_component") or "sensor-service"
    limit = (b.get("mem_limit_mb") or {}).get(service)
    budget = summary.get("budget_mb")
    rows = [
        ["CPU per request", human_ms(a.get("cpu_ms_per_request")), human_ms(b.get("cpu_ms_per_request")),
         change(m.get("cpu_ms_per_request"))],
        ["CPU per scrape", human_ms(a.get("cpu_ms_per_scrape")), human_ms(b.get("cpu_ms_per_scrape")),
         change(m.get("cpu_ms_per_scrape"))] if scrape_only(a) and scrape_only(b) else None,
        ["Service peak memory", _with_share(a.get("service_mem_peak_mb"), limit),
         _with_share(b.get("service_mem_peak_mb"), limit), change(m.get("service_mem_peak_mb"))],
        ["/metrics p99 from the intended start", human_ms(_p99(a)), human_ms(_p99(b)),
         change(m.get(LATENCY), lower_is_better=False)],
        ["Failed or omitted scrapes", _failed(a), _failed(b), _failed_change(a, b)],
        ["Stack peak, service + collector", _with_share(a.get("stack_mem_peak_mb"), budget),
         _with_share(b.get("stack_mem_peak_mb"), budget), change(m.get("stack_mem_peak_mb"))],
    ]
    return ("table", ["", f"Baseline ({cmp['a']})", f"Optimized ({cmp['b']})", "Change"], [r for r in rows if r])


def scrape_only(s: dict) -> bool:
    """Whether a scenario's load was /metrics alone: nothing else was due in its window."""
    counts = s.get("request_counts_by_endpoint") or {}
    return bool(counts.get("/metrics")) and not any((c or {}).get("intended") for e, c in counts.items()
                                                     if e != "/metrics")


def _p99(s: dict) -> float | None:
    return (s.get("scrape_latency_from_intended_ms") or {}).get("p99")


def collector_sentences(summary: dict) -> list[str]:
    """This run's collector peaks, for a report without a collector comparison beside it."""
    out = []
    for c in (summary.get("comparisons") or {}).values():
        if c.get("kind") != "collector":
            continue
        peak = c["metrics"].get("collector_mem_peak_mb") or {}
        if peak.get("a") is None or peak.get("b") is None:
            continue
        out.append(f"Collectors at this load: VictoriaMetrics peaks at {human_mb(peak['b'])}, Prometheus at "
                   f"{human_mb(peak['a'])} (Prometheus/VictoriaMetrics = {fmt(peak['a'] / peak['b'])}×) in this "
                   f"one run.")
    return out


GLANCE = "glance"   # a block ("glance", topic, sentence) that a section offers the first screen


def glance_notes(blocks: list) -> tuple[list, list]:
    """(the sentences other sections offer the first screen, the blocks without them)."""
    notes = [b for b in blocks if b[0] == GLANCE]
    return notes, [b for b in blocks if b[0] != GLANCE]


def anchor(title: str) -> str:
    """The anchor GitHub and report.html give a heading."""
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return keep.strip().replace(" ", "-")


def glance_section(summary: dict, later: list, notes: list = ()) -> list:
    """The 'At a glance' blocks; ``later`` is the rest of the document, for the section links;
    ``notes`` are ("glance", topic, sentence) blocks from the sections of other runs (a
    collector comparison's sentences replace this run's one-run collector sentence)."""
    table = glance_table(summary)
    if table is None:
        return []
    blocks = [("h", 2, "At a glance"), table]
    topics = {n[1] for n in notes}
    sentences = ([] if "collectors" in topics else collector_sentences(summary)) + [n[2] for n in notes]
    if sentences:
        blocks.append(("ul", sentences))
    return blocks + [("toc", [b[2] for b in later if b[0] == "h" and b[1] == 2])]
