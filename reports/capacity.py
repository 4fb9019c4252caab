"""The "Capacity" section (OPTIMIZATION_SUMMARY.md, report.html) and a capacity run's
own report: the sentences a robot engineer needs, each step's figures, the graphs.

Everything comes from capacity.json (docs/capacity.md); nothing is measured here."""
from __future__ import annotations

from pathlib import Path

from plumbing.files import write_atomic
from reports.contract import read_document, read_manifest
from reports.numbers import NOT_MEASURED, fmt, human


def _rate(c: dict | None, unit: str) -> tuple[str, str]:
    """(the capacity, what happened above it) as words."""
    if not c or c.get("rate") is None:
        why = (c or {}).get("limited_by") or "nothing measured"
        return "no rate that meets the scrape SLO", f"the lightest step: {why}"
    text = f"{c['rate']:g} {unit}"
    if c.get("lower_bound") and c.get("limited_by") == "load generator":
        return f"at least {text}", f"at {c['failed_at']:g} the load generator, not the service, was the bottleneck"
    if c.get("lower_bound"):
        return f"at least {text}", "every step offered met the SLO; higher steps would tell more"
    return text, f"at {c['failed_at']:g} {unit}: {c.get('limited_by')}"


def _step_at(steps: list, variant: str, axis: str, key: str, rate) -> dict:
    return next((s for s in steps if s["variant"] == variant and s["axis"] == axis and s[key] == rate), {})


def load_sentences(doc: dict) -> list[str]:
    steps = doc["load"]["steps"]
    out = []
    for v, a in ((doc.get("analysis") or {}).get("load") or {}).items():
        cap, knee = a.get("scrape_capacity") or {}, a.get("scrape_knee") or {}
        s = _step_at(steps, v, "scrape", "scrape_rate", cap.get("rate"))
        detail = (f" (p99 {fmt(s.get('scrape_p99_ms'), ' ms')} from the intended start, "
                  f"{fmt(s.get('cpu_cores'))} cores, peak {fmt(s.get('mem_peak_mb'), ' MB')})") if s else ""
        rate, above = _rate(cap, "scrapes/s")
        knee_text = (f"Its latency knee (p99 within {knee.get('factor'):g}× its {fmt(knee.get('reference_p99_ms'), ' ms')} "
                     f"at the lightest step, or {knee.get('min_rise_ms'):g} ms above it) is {knee['rate']:g} scrapes/s."
                     if knee.get("rate") is not None else "No step stayed near the lightest step's p99.")
        sensor = next((x["sensor_rate"] for x in steps if x["variant"] == v and x["axis"] == "scrape"), 0)
        out.append(f"At 0.5 CPU / 50 MB the {v} service sustains {rate} beside {sensor:g} /sensor requests/s"
                   f"{detail}; {above}. {knee_text}")
        sc = a.get("sensor_capacity") or {}
        if sc.get("rate") is not None or sc.get("limited_by"):
            rate, above = _rate(sc, "/sensor requests/s")
            beside = next((s["scrape_rate"] for s in steps if s["variant"] == v and s["axis"] == "sensor"), None)
            out.append(f"Beside {beside:g} scrape{'' if beside == 1 else 's'}/s the {v} service keeps the scrape SLO up to {rate}; {above}.")
    return out


def series_sentences(doc: dict) -> list[str]:
    a = (doc.get("analysis") or {}).get("series")
    if not a:
        return []
    c = a.get("costs") or {}
    cpu, size, mem = c.get("cpu_us_per_series"), c.get("exposition_bytes_per_series"), c.get("mem_bytes_per_series")
    parts = []
    if cpu:
        parts.append(f"{fmt(cpu['per_series'])} ms of CPU per scrape")   # µs/series = ms per 1,000 series
    if size:
        parts.append(f"{fmt(size['per_series'])} KB of exposition")     # bytes/series = KB per 1,000
    if mem:
        parts.append(f"{fmt(mem['per_series'] * 1000 / 2**20)} MB at rest")
    n = min((f["n"] for f in (cpu, size, mem) if f), default=0)
    out = []
    if parts:
        out.append(f"Each extra 1,000 series costs the optimized service {', '.join(parts)} "
                   f"(least-squares line over {n} completed steps, r² "
                   f"{', '.join(fmt(f['r2']) for f in (cpu, size, mem) if f)}).")
    big = a.get("largest") or {}
    limit = (doc.get("limits_mb") or {}).get("sensor-service")
    text = (f"The largest series count that kept p99 under 1 s, every scrape answered and memory under "
            f"{fmt(limit, ' MB')} at 0.5 CPU was {fmt(big.get('series'))}")
    if big.get("first_failing") is not None:
        text += f"; at {fmt(big['first_failing'])} series: {big.get('why')}"
    out.append(text + ".")
    return out


# (header, capacity.json key, catalogue unit): each cell in the unit that fits (reports.numbers.human)
LOAD_COLUMNS = (("offered scrapes/s", "scrape_rate", ""), ("/sensor/s", "sensor_rate", ""),
                ("p50", "scrape_p50_ms", "ms"), ("p99", "scrape_p99_ms", "ms"),
                ("/sensor p99", "sensor_p99_ms", "ms"),
                ("scrapes due", "scrapes_intended", ""), ("failed or omitted", "failed_scrapes", ""),
                ("CPU", "cpu_cores", "cores"), ("throttled", "throttled_ratio", "ratio"),
                ("memory peak", "mem_peak_mb", "MB"))
SERIES_COLUMNS = (("series", "series", ""), ("answer size", "exposition_bytes", "B"),
                  ("CPU per scrape", "cpu_ms_per_scrape", "ms"), ("p99", "scrape_p99_ms", "ms"),
                  ("failed", "failed_scrapes", ""), ("at rest", "mem_rest_mb", "MB"),
                  ("peak", "mem_peak_mb", "MB"), ("OOM kills", "oom_kills", ""))


RATE_KEYS = ("scrape_rate", "sensor_rate")   # settings, shown as given (1024, not 1,020)


def _cell(step: dict, key: str, unit: str = "") -> str:
    v = step.get(key)
    return f"{v:g}" if key in RATE_KEYS and isinstance(v, (int, float)) else human(v, unit)


def _table(steps, columns, first=None):
    from reports.capacity_analysis import slo_problem
    headers = ([first[0]] if first else []) + [c[0] for c in columns] + ["verdict"]
    rows = []
    for s in steps:
        verdict = ("load generator was the bottleneck" if s.get("loadgen_bottleneck") else
                   (slo_problem(s) or "meets the SLO"))
        rows.append(([first[1](s)] if first else []) + [_cell(s, k, u) for _, k, u in columns] + [verdict])
    return ("table", headers, rows)


def glance_sentence(doc: dict) -> str | None:
    """The capacity in one sentence, for the report's first screen."""
    a = doc.get("analysis") or {}
    rates = []
    for v, x in (a.get("load") or {}).items():
        cap = x.get("scrape_capacity") or {}
        if cap.get("rate") is not None:
            rates.append(f"the {v} service {'at least ' if cap.get('lower_bound') else ''}{cap['rate']:g} scrapes/s")
    if not rates:
        return None
    sensor = next((s["sensor_rate"] for s in doc["load"]["steps"] if s.get("axis") == "scrape"), None)
    rates[0] = rates[0].replace(" service ", " service sustains ", 1)
    text = (f"Capacity at 0.5 CPU / 50 MB (run {doc.get('run_id')}): {' and '.join(rates)}"
            + (f" beside {sensor:g} /sensor requests/s" if sensor is not None else "")
            + " (every scrape answered, p99 under 1 s)")
    big = (a.get("series") or {}).get("largest") or {}
    if big.get("series") is not None:
        text += f"; the optimized service still meets that with {fmt(big['series'])} series in its exposition"
        if big.get("first_failing") is not None:
            text += f" (at {fmt(big['first_failing'])}: {big.get('why')})"
    return text + "."


def capacity_blocks(doc: dict, images: list[dict] | None = None, level: int = 2) -> list:
    """The Capacity section's blocks (reports.markdown's block format)."""
    m = doc.get("machine") or {}
    blocks = [("h", level, "Capacity"),
              ("p", f"From capacity run {doc.get('run_id')} ({doc.get('status') or 'running'}), "
                    f"`bin/edgebench capacity`: one fresh stack under the compose limits per step, open-loop "
                    f"load, one step per offered rate; a ladder stops at its first step that misses the scrape SLO "
                    f"(p99 from the intended start under 1 s, no failed or omitted scrape, no OOM kill). "
                    f"Machine: {m.get('cpu_model') or NOT_MEASURED}, {m.get('cores') or '?'} cores. "
                    f"Definitions: docs/capacity.md."),
              ("ul", load_sentences(doc) + series_sentences(doc)
               or ["No step was measured."])]
    load = doc["load"]["steps"]
    if load:
        blocks += [("h", level + 1, "Load sweep"),
                   _table(load, LOAD_COLUMNS, ("variant", lambda s: f"{s['variant']} ({s['axis']} axis)"))]
    if doc["series"]["steps"]:
        blocks += [("h", level + 1, "Series sweep (optimized service, scrape-only load)"),
                   _table(doc["series"]["steps"], SERIES_COLUMNS)]
    for im in images or []:
        blocks.append(("img", im["title"], im["path"]))
    glance = glance_sentence(doc)       # offered to the first screen; the serialisers skip it
    return blocks + ([("glance", "capacity", glance)] if glance else [])


def to_markdown_text(blocks: list) -> str:
    """The blocks as Markdown (images relative to the current folder)."""
    from reports.markdown import to_markdown
    return to_markdown(blocks, Path.cwd())


def read_capacity(run_dir) -> dict:
    """capacity.json with the run's machine (from its manifest) attached."""
    from reports.capacity_analysis import analyse
    run_dir = Path(run_dir)
    doc = read_document(run_dir / "capacity.json")
    # the conclusions follow from the steps: re-derived, so a report always reads them
    # with today's definitions (docs/capacity.md)
    doc["analysis"] = analyse(doc, doc.get("limits_mb") or {})
    if (run_dir / "manifest.json").exists():
        doc.setdefault("machine", read_manifest(run_dir).machine)
    return doc


def render_capacity(run_dir, out_dir=None) -> list[Path]:
    """<run>/report/: the graphs, CAPACITY.md and capacity.html of a capacity run."""
    from reports.capacity_plots import make_capacity_plots
    from reports.html import to_html
    from reports.markdown import to_markdown
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    doc = read_capacity(run_dir)
    images = make_capacity_plots(doc, out)
    blocks = [("h", 1, f"Capacity: run {doc.get('run_id')}")] + capacity_blocks(doc, images, level=2)[1:]
    md = write_atomic(out / "CAPACITY.md", to_markdown(blocks, out))
    page = write_atomic(out / "capacity.html", to_html(blocks, out, f"edgebench capacity: {doc.get('run_id')}"))
    return [md, page] + [Path(i["path"]) for i in images]
