"""OPTIMIZATION_SUMMARY.md, generated from summary.json alone.

The document is first built as a list of blocks (headings, paragraphs, lists,
tables, images, links) by :func:`build_document`; :func:`to_markdown` and
``reports.html`` serialise the same blocks, so the markdown and the HTML page say
the same thing. Every number comes from summary.json (formatted by :func:`fmt`);
an unmeasured figure reads "not measured".
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from plumbing.files import write_atomic
from reports import figures as FIG
from reports.glance import anchor, glance_notes, glance_section
from reports.load import collector_kind
from reports.numbers import NOT_MEASURED, SIGNIFICANT, fmt, human, human_mb, human_range, round_sig  # noqa: F401
from reports.summary import get_path, scenario_order
from reports.view import SCRAPE_ENDPOINT

NUMERIC_CELL = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?( %|×| [A-Za-zµ/]+)?( \(.*\))*$|^no change$")
COLLECTOR_NAMES = {"vm": "VictoriaMetrics", "prom": "Prometheus"}


# --------------------------------------------------------------------------- formatting

def numeric_column(cells) -> bool:
    """Right-align a column when most of its measured cells are numbers."""
    cells = [str(c) for c in cells if c != NOT_MEASURED]
    return bool(cells) and sum(bool(NUMERIC_CELL.match(c)) for c in cells) * 2 > len(cells)


def fmt_bucket(bounds) -> str:
    """A histogram quantile's bucket, e.g. "bucket 1,000–2,500 ms"."""
    if not bounds:
        return ""
    lo, hi = bounds
    return f"bucket {fmt(lo)}–{fmt(hi) if hi is not None else '+Inf'} ms"


def fmt_spread(s: dict, key: str, unit: str = "") -> str:
    """A scenario figure in the unit that fits (``unit``: its catalogue unit), with its
    min–max over repeats when there were several (the documents say the confidence of that
    interval), and the bucket of a histogram p95."""
    v = get_path(s, key)
    text = human(v, unit)
    sp = (s.get("spread") or {}).get(key)
    if v is not None and sp and human(sp[0], unit) != human(sp[1], unit):
        text += f" ({human_range(sp[0], sp[1], unit)})"
    if key == "server_scrape_p95_ms" and v is not None and s.get("server_scrape_p95_bucket_ms"):
        text += f" ({fmt_bucket(s['server_scrape_p95_bucket_ms'])})"
    return text


def fmt_side(m: dict, side: str, unit: str = "") -> str:
    """One side of a comparison in the unit that fits (``unit``: the catalogue unit): its
    value, min–max over repeats, histogram bucket."""
    text = human(m[side], unit)
    if m[side] is not None and m.get(f"{side}_spread"):
        lo, hi = m[f"{side}_spread"]
        if human(lo, unit) != human(hi, unit):
            text += f" ({human_range(lo, hi, unit)})"
    if m[side] is not None and m.get(f"{side}_bucket"):
        text += f" ({fmt_bucket(m[f'{side}_bucket'])})"
    return text


def fmt_pct(x, no_change: bool = False) -> str:
    if no_change:
        return "no change"
    return NOT_MEASURED if x is None else fmt(x, " %", sign=True)


def fmt_ratio(x, no_change: bool = False) -> str:
    if no_change:
        return "no change"
    return NOT_MEASURED if x is None else fmt(x, "×")


def collector_label(c) -> str:
    return COLLECTOR_NAMES.get(collector_kind(c), str(c) if c else "unknown collector")


# --------------------------------------------------------------------------- document model
# blocks: ("h", level, text) ("p", text) ("ul", [text]) ("table", headers, rows)
#         ("img", title, path) ("links", [(text, path)]) ("code", text)

def _rows(*keys) -> tuple:
    """(label, summary path) for each path; labels come from the figure catalogue, without
    their unit: each cell carries the unit that fits its size."""
    return tuple((FIG.label(k, with_unit=False), k) for k in keys)


# Rows whose summary key is not a catalogue figure: (label, key, unit) by hand.
UNCATALOGUED = {"mem_slope_stderr_kb_per_request": ("Service memory growth per request, standard error", "KB")}
PER_SCENARIO_ROWS = tuple((UNCATALOGUED[key][0], key, UNCATALOGUED[key][1]) if key in UNCATALOGUED
                          else (label, key, FIG.unit(key)) for label, key in _rows(
    "requests_intended", "requests", "requests_completed", "failures", "metrics_failure_ratio",
    "throughput_rps", "latency_ms.p50", "latency_ms.p95", "latency_ms.p99", "latency_ms.max",
    "latency_from_intended_ms.p50", "latency_from_intended_ms.p95", "latency_from_intended_ms.p99",
    "scrape_latency_ms.p95", "scrape_latency_from_intended_ms.p95", "server_scrape_p95_ms",
    "server_scrapes", "cpu_ms_per_request", "cpu_ms_per_scrape", "service_cpu_cores", "throttled_ratio",
    "service_mem_peak_mb", "service_mem_peak_kernel_mb", "service_mem_steady_mb", "mem_slope_kb_per_request",
    "mem_slope_stderr_kb_per_request", "mem_per_scrape_mb", "scrape_alloc_peak_mb", "scrape_alloc_retained_mb",
    "collector_mem_peak_mb", "collector_mem_steady_mb", "collector_cpu_cores", "collector_disk_write_bytes_per_s",
    "collector_disk_used_mb", "collector_up_ratio", "stack_mem_peak_mb", "stack_mem_steady_mb",
    "oom_kills_total", "restarts_total", "oom_kills", "restarts", "loadgen_cpu_ms_per_request"))

LATENCY_ROWS = _rows(
    "scrape_latency_ms.p50", "scrape_latency_ms.p95", "scrape_latency_ms.p99", "scrape_latency_ms.max",
    "scrape_latency_from_intended_ms.p50", "scrape_latency_from_intended_ms.p95",
    "scrape_latency_from_intended_ms.p99", "server_scrape_p50_ms", "server_scrape_p95_ms",
    "latency_ms.p50", "latency_ms.p95", "latency_ms.p99", "latency_from_intended_ms.p99")
CPU_ROWS = _rows("cpu_ms_per_request", "cpu_ms_per_scrape", "service_cpu_cores", "throttled_ratio",
                 "throughput_rps")
STABILITY_ROWS = _rows("oom_kills_total", "restarts_total", "oom_kills", "restarts", "requests_intended",
                       "requests", "requests_completed", "failures", "metrics_failure_ratio", "collector_up_ratio",
                       "mem_slope_kb_per_request", "mem_per_scrape_mb", "scrape_alloc_peak_mb",
                       "scrape_alloc_retained_mb", "service_mem_peak_kernel_mb")
COLLECTOR_ROWS = _rows("collector_mem_peak_mb", "collector_mem_steady_mb", "collector_cpu_cores",
                       "collector_cpu_ms_per_request", "collector_disk_write_bytes_per_s", "collector_disk_used_mb",
                       "stack_mem_peak_mb", "stack_mem_steady_mb")

def _cmp_table(cmp: dict, rows, a_label: str, b_label: str, last: str = "change") -> tuple:
    """A comparison's rows: each side in the unit that fits, and the change (or ratio)."""
    headers = ["Figure", a_label, b_label, "Change" if last == "change" else "Ratio"]
    out = []
    for label, key in rows:
        m = cmp["metrics"].get(key)
        if m is None:
            continue
        nc = bool(m.get("no_change"))
        last_cell = fmt_pct(m["change_pct"], nc) if last == "change" else fmt_ratio(m["ratio"], nc)
        if last == "change" and last_cell == "-100 %" and m.get("b"):    # not zero: say by how much
            last_cell += f" ({fmt(m['a'] / m['b'])}× less)"
        unit = FIG.unit(key)
        out.append([label, fmt_side(m, "a", unit), fmt_side(m, "b", unit), last_cell])
    return ("table", headers, out)


def _variant_findings(cmp: dict, summary: dict) -> list[str]:
    a, b = cmp["a"], cmp["b"]
    sa, sb = summary["scenarios"][a], summary["scenarios"][b]
    m = cmp["metrics"]
    return (_cpu_finding(m, a, b, collector_label(sa.get("collector")))
            + _scrape_latency_findings(m) + _side_health_findings(((a, sa), (b, sb)))
            + _memory_findings(m))


def _cpu_finding(m: dict, a: str, b: str, coll: str) -> list[str]:
    """CPU per request, baseline against optimized."""
    c = m["cpu_ms_per_request"]
    if c["ratio"] is None:
        return [f"CPU per request ({a} vs {b}) was not measured."]
    if c["ratio"] >= 1:
        return [f"With {coll}, the optimized service uses {fmt_ratio(c['ratio'])} less CPU per request "
                f"than the baseline ({fmt_side(c, 'a', 'ms')} → {fmt_side(c, 'b', 'ms')}, "
                f"{fmt_pct(c['change_pct'])})."]
    return [f"With {coll}, the optimized service uses MORE CPU per request than the baseline "
            f"({fmt_side(c, 'a', 'ms')} → {fmt_side(c, 'b', 'ms')}, {fmt_pct(c['change_pct'])})."]


def _scrape_latency_findings(m: dict) -> list[str]:
    """/metrics p95 from the client, from the intended start and from the service's histogram."""
    out = []
    p = m["scrape_latency_ms.p95"]
    if p["ratio"] is not None:
        how = f"{fmt_ratio(p['ratio'])} faster" if p["ratio"] >= 1 else f"{fmt_pct(p['change_pct'])}, slower"
        out.append(f"/metrics p95 service time (client side): {fmt_side(p, 'a', 'ms')} → "
                   f"{fmt_side(p, 'b', 'ms')} "
                   f"({how}).")
    pi = m.get("scrape_latency_from_intended_ms.p95") or {}
    if pi.get("a") is not None and pi.get("b") is not None and (pi["a"], pi["b"]) != (p["a"], p["b"]):
        out.append(f"/metrics p95 latency from the intended start (what the collector sees): "
                   f"{fmt_side(pi, 'a', 'ms')} → {fmt_side(pi, 'b', 'ms')}.")
    sv = m["server_scrape_p95_ms"]
    if sv["a"] is not None and sv["b"] is not None:
        out.append(f"The service's own histogram puts the /metrics p95 at {fmt_side(sv, 'a', 'ms')} (baseline) "
                   f"and {fmt_side(sv, 'b', 'ms')} (optimized).")
    return out


def _side_health_findings(sides: tuple) -> list[str]:
    """Per variant: scrapes lost to the timeout, OOM kills and restarts, scrape gaps."""
    out = []
    for name, s in sides:
        to = s.get("scrape_timeout_s")
        p99 = get_path(s, "scrape_latency_ms.p99")
        if to is not None and p99 is not None and p99 >= to * 1000.0:
            out.append(f"{name}: the /metrics p99 ({fmt(p99)} ms) reaches the collector's scrape timeout "
                       f"({fmt(to)} s): scrapes are lost.")
    for name, s in sides:
        if s.get("oom_kills_total"):
            out.append(f"{name} was OOM-killed {fmt(s['oom_kills_total'])} times and restarted "
                       f"{fmt(s.get('restarts_total'))} times (whole scenario, warm-up included).")
        elif s.get("oom_kills_total") == 0:
            out.append(f"{name} was never OOM-killed, warm-up included "
                       f"(restarts: {fmt(s.get('restarts_total'))}).")
        cnt = (s.get("request_counts_by_endpoint") or {}).get(SCRAPE_ENDPOINT)
        if cnt and cnt["intended"] > cnt["completed"]:
            out.append(f"{name}: of {fmt(cnt['intended'])} /metrics scrapes due, {fmt(cnt['sent'])} were sent and "
                       f"{fmt(cnt['completed'])} completed: {fmt(cnt['intended'] - cnt['completed'])} "
                       f"{'is a gap' if cnt['intended'] - cnt['completed'] == 1 else 'are gaps'} in "
                       f"the collector's data.")
    return out


def _memory_findings(m: dict) -> list[str]:
    """Per-scrape allocation peak, retained growth per scrape and the service's peak memory."""
    out = []
    sp = m.get("scrape_alloc_peak_mb") or {}
    if sp.get("a") is not None and sp.get("b") is not None:
        out.append(f"At its peak one /metrics scrape holds {human_mb(sp['a'])} of Python allocations in the "
                   f"baseline and {human_mb(sp['b'])} in the optimized service (tracemalloc of one scrape).")
    g = m["mem_per_scrape_mb"]
    if g["a"] is not None and g["b"] is not None:
        out.append(f"Retained memory growth per /metrics scrape (least-squares slope of service memory, "
                   f"not what a scrape costs): {human_mb(g['a'])} in the baseline, {human_mb(g['b'])} in the "
                   f"optimized service.")
    mp = m["service_mem_peak_mb"]
    if mp["a"] is not None and mp["b"] is not None:
        out.append(f"Service peak memory: {human_mb(mp['a'])} → {human_mb(mp['b'])} ({fmt_pct(mp['change_pct'])}).")
    return out


def _collector_findings(cmp: dict, summary: dict) -> list[str]:
    m = cmp["metrics"]
    out = []
    mem = m["collector_mem_peak_mb"]
    if mem["a"] is not None and mem["b"] is not None:
        out.append(f"VictoriaMetrics peaks at {human_mb(mem['b'])} against Prometheus' {human_mb(mem['a'])} "
                   f"(Prometheus/VictoriaMetrics = {fmt_ratio(mem['ratio'])}).")
    cpu = m["collector_cpu_cores"]
    if cpu["a"] is not None and cpu["b"] is not None:
        out.append(f"Collector CPU: Prometheus uses {human(cpu['a'], 'cores')}, VictoriaMetrics "
                   f"{human(cpu['b'], 'cores')} ({fmt_ratio(cpu['ratio'])}).")
    d = m["collector_disk_write_bytes_per_s"]
    if d["a"] is not None and d["b"] is not None:
        out.append(f"Disk writes: Prometheus {human(d['a'], 'bytes/s')}, VictoriaMetrics {human(d['b'], 'bytes/s')} "
                   f"({fmt_ratio(d['ratio'])}).")
    return out


def findings(summary: dict) -> list[str]:
    out = []
    if summary.get("status") not in (None, "complete"):
        out.append(f"This run's status is '{summary.get('status')}': it covers only what was measured "
                   f"(see Not measured).")
    for cmp in summary.get("comparisons", {}).values():
        out += (_variant_findings if cmp["kind"] == "variant" else _collector_findings)(cmp, summary)
    budget = summary.get("budget_mb")
    for name in scenario_order(summary):
        s = summary["scenarios"][name]
        peak = s.get("stack_mem_peak_mb")
        if peak is not None and budget:
            word = "within" if peak <= budget else "OVER"
            out.append(f"{name}: the stack (service + collector) peaks at {human_mb(peak)}, {word} the "
                       f"{fmt(budget)} MB budget.")
        if s.get("limits_enforced") is False:
            out.append(f"{name}: limits were not enforced, so OOM kills and throttling do not reflect the robot.")
        elif s.get("cgroup_view") == "host":
            out.append(f"{name}: the components read the host's limits at /sys/fs/cgroup, not their own, so a "
                       f"collector sized its caches and threads from the host rather than from its limit.")
    if not out:
        out.append("Nothing could be compared: see Not measured.")
    return out


PROFILE_HEADING = "Where the time and memory go"


def _loc(d: dict) -> str:
    f = d.get("file")
    if not f:
        return NOT_MEASURED
    return f"{f}:{d['line']}" if d.get("line") is not None else str(f)


def _baseline_of(summary: dict, name: str) -> str | None:
    """The baseline scenario a (profiled) scenario is compared with, if any."""
    for cmp in summary.get("comparisons", {}).values():
        if cmp["kind"] == "variant" and cmp["b"] == name:
            return cmp["a"]
    return None


def _optimized_of(summary: dict, name: str) -> str | None:
    for cmp in summary.get("comparisons", {}).values():
        if cmp["kind"] == "variant" and cmp["a"] == name:
            return cmp["b"]
    return None


def profile_findings(summary: dict, name: str) -> list[str]:
    """Sentences about one profiled scenario, every number from summary.json."""
    s = summary["scenarios"][name]
    variant = s.get("variant") or name
    out = []
    top = s.get("profile_top_functions") or []
    if top:
        t = top[0]
        text = (f"In {name} ({variant}), {t['function']} ({_loc(t)}) takes {fmt(t['self_pct'])} % of "
                f"on-CPU samples")
        other = _optimized_of(summary, name)
        o = summary["scenarios"].get(other) if other else None
        bt = (o or {}).get("profile_diff_before_top")
        if bt and bt["function"] == t["function"]:
            if bt["status"] == "gone":
                text += f"; it is gone in the optimized variant ({other})"
            elif bt.get("after_self_pct") is not None:
                text += f"; in the optimized variant ({other}) it takes {fmt(bt['after_self_pct'])} %"
        out.append(text + ".")
    else:
        out.append(f"{name}: CPU profile (top functions) not measured.")
    base = _baseline_of(summary, name)
    changes = s.get("profile_diff") or []
    grown = [c for c in changes if c["status"] in ("new", "grew")]
    if grown:
        g = grown[0]
        out.append(f"Compared with the baseline profile{f' ({base})' if base else ''}, the largest growth is "
                   f"{g['function']} ({g['file'] or NOT_MEASURED}): {fmt(g['before_self_pct'])} % → "
                   f"{fmt(g['after_self_pct'])} % of samples.")
    peak, ret = s.get("scrape_alloc_peak_mb"), s.get("scrape_alloc_retained_mb")
    ts = s.get("scrape_alloc_top_site")
    if peak is not None:
        text = f"At its peak one {name} scrape holds {human_mb(peak)} (sum of its largest allocation sites)"
        if ts:
            cnt = (f" in {fmt(ts['count'])} block{'' if ts['count'] == 1 else 's'}"
                   if ts.get("count") is not None else "")
            text += f", {human_mb(ts['size_mb'])} of it at {ts['site']}{cnt}"
        out.append(text + ".")
    else:
        out.append(f"What one {name} scrape holds at its peak: {NOT_MEASURED} (no profile/allocation_peak.csv).")
    if ret is not None:
        rs = (s.get("scrape_alloc_retained_sites") or [None])[0]
        text = f"After the scrape {human_mb(ret)} stays allocated"
        if rs:
            text += f", the largest site being {rs['site']} ({human_mb(rs['size_mb'])})"
        out.append(text + ".")
    else:
        out.append(f"What one {name} scrape leaves behind: {NOT_MEASURED} (no profile/allocation_retained.csv).")
    return out


def _sites_table(sites):
    return ("table", ["Allocation site", "Size", "Blocks"],
            [[x["site"], human_mb(x["size_mb"]), fmt(x.get("count"))] for x in sites])


def profile_section(summary: dict, names: list, run_dir: Path) -> list:
    """'Where the time and memory go': per profiled scenario, top functions, changes against
    the baseline profile, allocation sites of one scrape, links to the profiles."""
    doc = [("h", 2, PROFILE_HEADING)]
    prof = [n for n in names if summary["scenarios"][n].get("has_profile")
            or summary["scenarios"][n].get("scrape_alloc_peak_mb") is not None]
    if not prof:
        doc.append(("p", f"CPU profile and per-scrape allocations: {NOT_MEASURED} (no profile/ files in "
                         f"this run; `make profile` records them)."))
        return doc
    doc.append(("p", "py-spy samples the service while it is on CPU (self time = samples in the function "
                     "itself); tracemalloc traces one /metrics scrape: what it holds at its peak and what it "
                     "leaves behind (sums of the largest allocation sites listed in "
                     "profile/allocation_*.csv; KB = KiB, MB = MiB)."))
    for n in prof:
        s = summary["scenarios"][n]
        doc += [("h", 3, f"{n} ({s.get('variant') or 'unknown variant'}, {collector_label(s.get('collector'))})"),
                ("ul", profile_findings(summary, n))]
        top = s.get("profile_top_functions")
        doc.append(("p", "Functions with the most self time (py-spy):"))
        if top:
            doc.append(("table", ["Function", "File:line", "Self %", "Self samples"],
                        [[t["function"], _loc(t), fmt(t["self_pct"]), fmt(t.get("self_samples"))] for t in top]))
        else:
            doc.append(("p", NOT_MEASURED))
        ch = s.get("profile_diff")
        if ch:
            base = _baseline_of(summary, n)
            doc += [("p", f"Biggest changes in self time against the baseline profile"
                          f"{f' ({base})' if base else ''} (top_functions_diff.csv; change in points):"),
                    ("table", ["Function", "File", "Status", "Before self %", "After self %", "Change"],
                     [[c["function"], c["file"] or NOT_MEASURED, c["status"], fmt(c["before_self_pct"]),
                       fmt(c["after_self_pct"]), fmt(c["delta_self_pct"], sign=True)] for c in ch])]
        for key, what in (("scrape_alloc_peak_sites", "Largest allocation sites at a scrape's peak"),
                          ("scrape_alloc_retained_sites", "Largest allocation sites left after a scrape")):
            sites = s.get(key)
            if sites:
                doc += [("p", f"{what} (tracemalloc):"), _sites_table(sites)]
            else:
                doc.append(("p", f"{what}: {NOT_MEASURED}."))
        links = []
        for f in s.get("profile_files") or []:
            if Path(f).name in ("flamegraph.svg", "speedscope.json"):
                links.append((f"{n}: {Path(f).name}", str(run_dir / f)))
        if links:
            doc += [("p", "Profiles (flamegraph: open in a browser; speedscope.json: load into "
                          "https://www.speedscope.app):"), ("links", links)]
        else:
            doc.append(("p", f"Flamegraph and speedscope profile: {NOT_MEASURED}."))
    return doc


def _rel(path, out_dir) -> str:
    return os.path.relpath(Path(path), Path(out_dir)).replace(os.sep, "/")


def load_section(summary: dict, names: list) -> list:
    """Requests due, sent and completed per endpoint, and what clients saw (latency from
    the intended start) next to the service time: the load was open-loop."""
    rows = []
    for n in names:
        s = summary["scenarios"][n]
        lat = s.get("latency_ms_by_endpoint") or {}
        for ep, c in (s.get("request_counts_by_endpoint") or {}).items():
            e = lat.get(ep) or {}
            rows.append([n, ep, fmt(c["intended"]), fmt(c["sent"]), fmt(c["completed"]), fmt(c["ok"]),
                         human(e.get("p99"), "ms"), human((e.get("from_intended") or {}).get("p99"), "ms")])
    if not rows:
        return [("h", 2, "Load"), ("p", f"Requests per endpoint: {NOT_MEASURED}.")]
    return [("h", 2, "Load"),
            ("p", "Requests are scheduled at fixed intended times whatever the service does (open loop). "
                  "Due = intended in the steady window; a request never sent or never answered is a "
                  "failure (a /metrics scrape that was due and did not complete is a gap in the "
                  "collector's data). Latency from the intended start adds the time a request waited "
                  "to be sent to its service time."),
            ("table", ["Scenario", "Endpoint", "Due", "Sent", "Completed", "OK", "Service time p99",
                       "Latency from intended start p99"], rows)]


def _spread_note(summary: dict) -> str:
    ns = sorted({s.get("repeats") for s in summary.get("scenarios", {}).values() if (s.get("repeats") or 1) > 1})
    if not ns:
        return ""
    return " (" + "; ".join(f"the min–max of {n} repeats holds the median with {fmt(100 * (1 - 2.0 ** (1 - n)))} % "
                            f"confidence" for n in ns) + ")"


UNITS_NOTE = ("in the unit that fits (KB = KiB, MB = MiB; CPU used below a tenth of a core in ms of CPU "
              "per second, ms/s)")


def header_blocks(summary: dict) -> list:
    """The title and one line on where the figures come from (the first screen is the glance)."""
    return [("h", 1, f"Optimization summary: run {summary.get('run_id')}"),
            ("p", f"Measured by edgebench; generated {summary.get('generated_at')} from the results directory "
                  f"alone. Run status: {summary.get('status') or 'unknown'}.")]


def reading_note(summary: dict) -> list:
    """What every figure below is: its window, where it is defined, its digits and units."""
    return [("p", "Every figure is over each scenario's steady window (warm-up excluded) unless its name says "
                  "whole scenario; figures are defined in docs/figures.md; three significant digits "
                  f"{UNITS_NOTE}; with repeats a figure is the median, with its min–max in brackets"
                  + _spread_note(summary) + ".")]


def scenarios_section(summary: dict, names: list) -> list:
    rows = []
    for n in names:
        s = summary["scenarios"][n]
        rows.append([n, s.get("variant") or NOT_MEASURED, collector_label(s.get("collector")),
                     fmt(s.get("repeats")), human(s.get("duration_s"), "s"), fmt_spread(s, "requests"),
                     fmt_spread(s, "failures"), fmt_spread(s, "throughput_rps", "req/s"),
                     fmt(s.get("limits_enforced")) if s.get("limits_enforced") is not None else NOT_MEASURED])
    return [("h", 2, "Scenarios"),
            ("table", ["Scenario", "Variant", "Collector", "Repeats", "Steady window", "Requests",
                       "Failures", "Throughput", "Limits enforced"], rows)]


def variant_section(summary: dict, cmp: dict) -> list:
    """Baseline against optimized with one collector: memory, latency, CPU, stability."""
    a, b = cmp["a"], cmp["b"]
    coll = collector_label(summary["scenarios"][a].get("collector"))
    mem_rows = []
    for k in cmp["metrics"]:
        if k.startswith(("mem_peak_mb.", "mem_steady_mb.")):
            kind, comp = k.split(".", 1)
            mem_rows.append((f"{comp} {'peak' if kind == 'mem_peak_mb' else 'steady (median)'}", k))
    mem_rows += [("Stack peak, service + collector", "stack_mem_peak_mb"), ("Stack steady", "stack_mem_steady_mb")]
    return [("h", 2, f"Before and after with {coll}: {a} vs {b}"),
            ("h", 3, "Memory per component"), _cmp_table(cmp, mem_rows, a, b),
            ("h", 3, "Scrape latency"), _cmp_table(cmp, LATENCY_ROWS, a, b),
            ("h", 3, "CPU per scrape and per request"), _cmp_table(cmp, CPU_ROWS, a, b),
            ("h", 3, "OOM kills, restarts and memory growth"), _cmp_table(cmp, STABILITY_ROWS, a, b)]


def collector_section(cmp: dict) -> list:
    """This run's two collectors side by side (one run: the comparison section has the rounds)."""
    return [("h", 2, f"Collectors: Prometheus ({cmp['a']}) vs VictoriaMetrics ({cmp['b']})"),
            _cmp_table(cmp, COLLECTOR_ROWS, f"Prometheus ({cmp['a']})", f"VictoriaMetrics ({cmp['b']})",
                       last="ratio"),
            ("p", "Ratio = Prometheus / VictoriaMetrics.")]


def comparison_sections(summary: dict) -> list:
    cmps = list(summary.get("comparisons", {}).values())
    return ([b for c in cmps if c["kind"] == "variant" for b in variant_section(summary, c)]
            + [b for c in cmps if c["kind"] == "collector" for b in collector_section(c)])


def all_figures_section(summary: dict, names: list) -> list:
    doc = [("h", 2, "All figures per scenario"),
           ("table", ["Figure"] + names,
            [[label] + [fmt_spread(summary["scenarios"][n], key, unit) for n in names]
             for label, key, unit in PER_SCENARIO_ROWS])]
    # The kernel's high-water mark is a steady-window figure only where the kernel reset it
    # (cgroup v2 resets memory.peak from Linux 6.12 on): say what it covers where it was not.
    windows = {n: (summary["scenarios"][n] or {}).get("service_mem_peak_kernel_window") for n in names}
    unreset = [f"{n}: {w}" for n, w in windows.items() if w and w != "steady window"]
    if unreset:
        doc.append(("p", "Service memory peak, kernel high-water mark: not the steady window. "
                         + "; ".join(unreset) + "."))
    return doc


def graphs_section(images: list[dict]) -> list:
    if not images:
        return []
    return [("h", 2, "Graphs")] + [("img", im["title"], im["path"]) for im in images]


def _val(x) -> str:
    return NOT_MEASURED if x in (None, "") else str(x)


def environment_section(summary: dict, names: list) -> list:
    """Where and how the run was measured, from its manifest."""
    man = summary.get("manifest") or {}
    mach = man.get("machine") or {}
    git = man.get("git") or {}
    pk = ", ".join(f"{k} {v}" for k, v in sorted((mach.get("packages") or {}).items()) if v)
    osp = ", ".join(f"{k} {v}" for k, v in sorted((mach.get("os_packages") or {}).items()) if v)
    engines = sorted({str(summary["scenarios"][n].get("engine")) for n in names
                      if summary["scenarios"][n].get("engine")})
    mem = mach.get("mem_total_bytes")
    env = [["Run", _val(summary.get("run_id"))], ["Status", _val(summary.get("status"))],
           ["Git commit", _val(git.get("commit")) + (" (dirty)" if git.get("dirty") else "")],
           ["CPU", _val(mach.get("cpu_model"))], ["Cores", _val(mach.get("cores"))],
           ["Memory", human(mem, "B") if isinstance(mem, (int, float)) else _val(mem)],
           ["Kernel", _val(mach.get("kernel"))],
           ["Architecture", _val(mach.get("arch"))], ["cgroup version", _val(mach.get("cgroup_version"))],
           ["Python", _val(mach.get("python"))], ["Engine", _val(", ".join(engines))],
           ["Python packages", _val(pk)], ["OS packages", _val(osp)]]
    return [("h", 2, "Environment"), ("table", ["Setting", "Value"], env),
            ("p", "Command:"), ("code", _val(man.get("command")))]


def build_document(summary: dict, images: list[dict], run_dir=None, extra: list = ()) -> list:
    """The blocks of OPTIMIZATION_SUMMARY.md / report.html. ``images`` are
    {key, title, path} (absolute paths); ``run_dir`` locates profile files; ``extra``:
    sections from other runs (the example's optimisation steps and capacity), whose
    ("glance", topic, sentence) blocks go to the first screen."""
    run_dir = Path(run_dir or summary.get("run_dir") or ".")
    names = scenario_order(summary)
    notes, extra = glance_notes(list(extra))
    body = (reading_note(summary) + [("h", 2, "Findings"), ("ul", findings(summary))]
            + scenarios_section(summary, names)
            + load_section(summary, names)
            + comparison_sections(summary)
            + profile_section(summary, names, run_dir)
            + extra
            + all_figures_section(summary, names)
            + graphs_section(images)
            + environment_section(summary, names)
            + [("h", 2, "Not measured"), ("ul", summary.get("missing") or ["Everything listed above was measured."])])
    return header_blocks(summary) + glance_section(summary, body, notes) + body


# --------------------------------------------------------------------------- markdown

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: list, out_dir) -> str:
    lines = []
    for block in doc:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            numeric = [numeric_column([r[i] for r in rows]) for i in range(len(headers))]
            lines.append("|" + "|".join([" --- "] + [" ---: " if numeric[i] else " --- "
                                                      for i in range(1, len(headers))]) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"### {block[1]}", "", f"![{block[1]}]({_rel(block[2], out_dir)})", ""]
        elif kind == "links":
            lines += [f"- [{text}]({_rel(path, out_dir)})" for text, path in block[1]] + [""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
        elif kind == "toc":
            lines += ["Sections: " + " · ".join(f"[{t}](#{anchor(t)})" for t in block[1]), ""]
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(summary: dict, out_dir, images: list[dict] | None = None, run_dir=None,
                    filename: str = "OPTIMIZATION_SUMMARY.md", extra: list = ()) -> Path:
    """Write OPTIMIZATION_SUMMARY.md into out_dir, images linked relative to out_dir
    (so a copy at the repository root links into results/<run>/report/)."""
    out_dir = Path(out_dir)
    text = to_markdown(build_document(summary, images or [], run_dir, extra), out_dir)
    return write_atomic(out_dir / filename, text)
