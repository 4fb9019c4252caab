"""The regression gate's verdict: budgets on the change, A/B against a reference,
A/A noise floor; written as a terminal table, gate.md, junit.xml and gate.json.

Works on measured rounds alone (scenario directories), never runs anything.
Exit codes: 0 pass, 1 regression, 2 error or nothing measured, 3 inconclusive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import yaml
from scipy.stats import theilslopes

from reports import stats
from reports.gate_stats import INCONCLUSIVE, PASS, REGRESSION, aa_compare, compare, compare_paired
from reports.load import Scenario, component_role
from reports.summary import summarize_scenario

EXIT = {PASS: 0, REGRESSION: 1, "error": 2, INCONCLUSIVE: 3}


class BudgetError(ValueError):
    """A malformed budgets file; the message names the file, the entry and the fix."""


@dataclass
class Check:
    name: str            # e.g. "budget: service_mem_peak_mb" or "A/B: cpu_ms_per_request"
    metric: str
    before: float | None
    after: float | None
    change: str
    bound: str
    verdict: str         # pass | regression | inconclusive | error
    detail: str = ""


@dataclass
class GateResult:
    checks: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.errors or any(c.verdict == "error" for c in self.checks) or not self.checks:
            return "error"
        if any(c.verdict == REGRESSION for c in self.checks):
            return REGRESSION
        if any(c.verdict == INCONCLUSIVE for c in self.checks):
            return INCONCLUSIVE
        return PASS

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]


# --------------------------------------------------------------------- budgets file

def load_budgets(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise BudgetError(f"{path}: budgets file not found (restore it from git: git checkout -- {path})")
    except yaml.YAMLError as e:
        raise BudgetError(f"{path}: not valid YAML ({str(e).splitlines()[0]}): fix the syntax")
    if not isinstance(data, dict) or not isinstance(data.get("budgets"), list):
        raise BudgetError(f"{path}: needs a 'budgets:' list of {{metric, max, why}} entries")
    for i, b in enumerate(data["budgets"]):
        if not isinstance(b, dict) or "metric" not in b or "max" not in b:
            raise BudgetError(f"{path}: budgets[{i}] needs 'metric' and 'max' (and 'why')")
        if b["metric"] not in ROUND_FIGURES:
            raise BudgetError(f"{path}: budgets[{i}] metric {b['metric']!r} is unknown: "
                              f"use one of {', '.join(ROUND_FIGURES)}")
        if not isinstance(b["max"], (int, float)):
            raise BudgetError(f"{path}: budgets[{i}] ({b['metric']}) max must be a number")
    ab = data.setdefault("ab", {})
    for i, m in enumerate(ab.get("metrics", [])):
        if m.get("metric") not in WINDOW_SAMPLES:
            raise BudgetError(f"{path}: ab.metrics[{i}] metric {m.get('metric')!r} is unknown: "
                              f"use one of {', '.join(WINDOW_SAMPLES)}")
    return data


# --------------------------------------------------------------------- per-round figures

def _service_rows(sc: Scenario):
    if sc.resources is None:
        return None
    df = sc.resources
    mask = df["component"].map(component_role) == "service"
    return df[mask]


def _window(sc: Scenario) -> tuple[float | None, float | None]:
    return sc.meta.get("steady_start"), sc.meta.get("steady_end")


def _steady_requests(sc: Scenario):
    if sc.requests is None:
        return None
    return stats.steady_requests(sc.requests, *_window(sc))


def _failure_ratio(sc: Scenario, name: str) -> float | None:
    req = _steady_requests(sc)
    if req is None:
        return None
    sel = req[req["name"] == name]
    return None if sel.empty else float(1 - sel["ok"].mean())


def _mem_slope_kb(sc: Scenario) -> float | None:
    """Theil-Sen slope of memory on requests served: a 5 MB blob answer in flight is a
    spike, not growth, and the median of pairwise slopes ignores such spikes where
    least squares would not (a short gate run has few samples)."""
    rows, req = _service_rows(sc), _steady_requests(sc)
    if rows is None or req is None or rows.empty:
        return None
    start, end = _window(sc)
    rows = rows[stats.in_window(rows["t"], start, end, closed_right=True)]
    x = stats.cumulative_requests_at(rows["t"], req["start"], start)
    y = rows["mem_bytes"].to_numpy(dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return None
    slope = theilslopes(y[ok], x[ok]).slope
    return float(slope) / stats.KIB


def _summary_figure(key: str, sub: str | None = None):
    """A figure the report computes too (reports.summary): one definition for both."""
    def get(sc: Scenario, summary: dict):
        v = summary.get(key)
        return v.get(sub) if sub and isinstance(v, dict) else v
    return get


# figure name -> (function of one round and its summary, how rounds combine)
ROUND_FIGURES = {
    "service_mem_peak_mb": (_summary_figure("service_mem_peak_mb"), max),
    "service_mem_steady_mb": (_summary_figure("service_mem_steady_mb"), max),
    "stack_mem_peak_mb": (_summary_figure("stack_mem_peak_mb"), max),
    "oom_kills": (_summary_figure("oom_kills"), sum),
    "restarts": (_summary_figure("restarts"), sum),
    "metrics_failure_ratio": (lambda sc, _: _failure_ratio(sc, "/metrics"), max),
    "sensor_failure_ratio": (lambda sc, _: _failure_ratio(sc, "/sensor"), max),
    "scrape_p95_ms": (_summary_figure("scrape_latency_ms", "p95"), max),
    "cpu_ms_per_scrape": (_summary_figure("cpu_ms_per_scrape"), max),
    # Theil-Sen, not the report's least squares; the median round: a leak grows in every
    # round, an allocator warming up in one
    "mem_slope_kb_per_request": (lambda sc, _: _mem_slope_kb(sc), lambda v: float(np.median(v))),
    "requests": (_summary_figure("requests"), sum),
}


def summaries(rounds: list) -> list[dict]:
    return [summarize_scenario(sc) for sc in rounds]


def round_figure(rounds: list, metric: str, round_summaries: list | None = None) -> float | None:
    fn, combine = ROUND_FIGURES[metric]
    round_summaries = round_summaries if round_summaries is not None else summaries(rounds)
    vals = [v for v in (fn(sc, s) for sc, s in zip(rounds, round_summaries))
            if v is not None and math.isfinite(v)]
    return float(combine(vals)) if vals else None


# --------------------------------------------------------------------- windowed samples

def _windows(sc: Scenario, width: float) -> list[tuple[float, float]]:
    start, end = _window(sc)
    if start is None or end is None:
        return []
    n = int((end - start) // width)
    return [(start + i * width, start + (i + 1) * width) for i in range(n)]


def _cpu_over(sc: Scenario, windows: list) -> list:
    """Service CPU ms per request in each (lo, hi) window; None where not measurable."""
    rows, req = _service_rows(sc), sc.requests
    if rows is None or req is None or rows.empty:
        return [None] * len(windows)
    return [stats.cpu_ms_per_request(rows["t"], rows["cpu_seconds"], req["start"], lo, hi)["value"]
            for lo, hi in windows]


def _cpu_windows(sc: Scenario, width: float) -> list:
    return [v for v in _cpu_over(sc, _windows(sc, width)) if v is not None]


def _latency_windows(sc: Scenario, width: float, q: float) -> list:
    if sc.requests is None:
        return []
    req = sc.requests[sc.requests["name"] == "/metrics"]
    out = []
    for lo, hi in _windows(sc, width):
        lat = req[(req["start"] >= lo) & (req["start"] < hi)]["latency_ms"]
        if len(lat) >= 5:
            out.append(float(np.percentile(lat, q)))
    return out


def _scrape_latencies(sc: Scenario) -> list:
    req = _steady_requests(sc)
    if req is None:
        return []
    return req[req["name"] == "/metrics"]["latency_ms"].astype(float).tolist()


def _mem_windows(sc: Scenario, width: float, reduce=np.max) -> list:
    rows = _service_rows(sc)
    if rows is None or rows.empty:
        return []
    out = []
    for lo, hi in _windows(sc, width):
        m = rows[(rows["t"] >= lo) & (rows["t"] < hi)]["mem_bytes"]
        if len(m):
            out.append(float(reduce(m)) / stats.MIB)
    return out


WINDOW_SAMPLES = {
    "cpu_ms_per_request": _cpu_windows,
    # every scrape's latency: a window's median of ~30 scrapes still moves +-10% on a
    # quiet machine, the median of hundreds does not
    "scrape_latency_ms": lambda sc, w: _scrape_latencies(sc),
    "scrape_p95_ms": lambda sc, w: _latency_windows(sc, w, 95),
    "service_mem_peak_mb": _mem_windows,
    # the median within a window: resting memory, unmoved by a blob answer in flight
    "service_mem_steady_mb": lambda sc, w: _mem_windows(sc, w, np.median),
}


PAIRED_SAMPLES = {"cpu_ms_per_request": _cpu_over}


def paired_samples(a_rounds: list, b_rounds: list, metric: str, width: float) -> tuple[list, list]:
    """A and B ran side by side in each round: the metric over the same wall-clock windows
    on both sides, so what the machine did meanwhile hits both values of a pair alike."""
    fn = PAIRED_SAMPLES[metric]
    a_vals, b_vals = [], []
    for a, b in zip(a_rounds, b_rounds):
        (sa, ea), (sb, eb) = _window(a), _window(b)
        if None in (sa, ea, sb, eb):
            continue
        lo, hi = max(sa, sb), min(ea, eb)
        grid = [(lo + i * width, lo + (i + 1) * width) for i in range(int((hi - lo) // width))]
        for va, vb in zip(fn(a, grid), fn(b, grid)):
            if va is not None and vb is not None:
                a_vals.append(va)
                b_vals.append(vb)
    return a_vals, b_vals


def window_samples(rounds: list, metric: str, width: float) -> list[list[float]]:
    """Per round, the metric in consecutive windows of the steady phase."""
    return [WINDOW_SAMPLES[metric](sc, width) for sc in rounds]


# --------------------------------------------------------------------- the verdict

def _fmt(v, unit="") -> str:
    if v is None:
        return "not measured"
    return f"{v:.4g}{unit}"


def evaluate(b_rounds: list, a_rounds: list | None, config: dict,
             side_by_side: bool = True) -> GateResult:
    """Budgets on B; A/B of B against A (when given); A/A noise floor from B's rounds.
    ``side_by_side``: A's and B's rounds ran at the same time, so windows can be paired."""
    result = GateResult()
    b_sum = summaries(b_rounds)
    a_sum = summaries(a_rounds) if a_rounds else None
    if round_figure(b_rounds, "requests", b_sum) in (None, 0.0):
        result.errors.append("nothing was measured: no request reached the service in the steady "
                             "phase (see the scenario logs)")
        return result
    for b in config["budgets"]:
        after = round_figure(b_rounds, b["metric"], b_sum)
        before = round_figure(a_rounds, b["metric"], a_sum) if a_rounds else None
        if after is None:
            verdict, detail = "error", "not measured"
        else:
            ok = after <= b["max"]
            verdict, detail = (PASS if ok else REGRESSION), b.get("why", "")
            if b["metric"] == "oom_kills" and not ok:
                detail = f"the service was OOM-killed {after:.0f} time(s) at its memory limit"
        result.checks.append(Check(f"budget: {b['metric']}", b["metric"], before, after,
                                   "", f"<= {b['max']}", verdict, detail))
    ab = config.get("ab", {})
    width = float(ab.get("window_s", 2))
    alpha = float(ab.get("alpha", 0.01))
    for m in ab.get("metrics", []):
        metric, eff, rel = m["metric"], float(m["min_effect"]), bool(m.get("relative", True))
        b_win = window_samples(b_rounds, metric, width)
        if len(b_win) >= 2:
            try:
                aa = aa_compare(b_win, eff, relative=rel, alpha=alpha)
                drift = (" (drift between rounds run at different times; the A/B below pairs "
                         "A and B in time, which cancels it)") if m.get("paired") and side_by_side else ""
                result.notes.append(
                    f"A/A of {metric}, the change's own rounds split in two halves: "
                    f"{_pct(aa.change, rel)}, 95% CI [{_pct(aa.ci_low, rel)}, {_pct(aa.ci_high, rel)}]"
                    f" against a minimum effect of {_pct(eff, rel)}{drift}")
            except ValueError:
                pass
        if not a_rounds:
            continue
        paired = (side_by_side and m.get("paired", False) and metric in PAIRED_SAMPLES
                  and len(a_rounds) == len(b_rounds))
        try:
            if paired:
                pa, pb = paired_samples(a_rounds, b_rounds, metric, width)
                c = compare_paired(pa, pb, eff, alpha=alpha)
            else:
                a_win = window_samples(a_rounds, metric, width)
                c = compare([x for r in a_win for x in r], [x for r in b_win for x in r],
                            eff, relative=rel, alpha=alpha)
        except ValueError as e:
            result.checks.append(Check(f"A/B: {metric}", metric, None, None, "",
                                       "", "error", str(e)))
            continue
        verdict = c.verdict
        detail = (f"p={c.p_value:.2g}, 95% CI of change [{_pct(c.ci_low, rel)}, "
                  f"{_pct(c.ci_high, rel)}], " + (f"{c.n_a} paired windows (Wilcoxon)" if paired
                                                 else f"n={c.n_a}/{c.n_b} (Mann-Whitney)"))
        if verdict == INCONCLUSIVE:
            detail += f"; the interval is wider than the {_pct(eff, rel)} effect asked for"
        result.notes.append(f"noise floor of the A/B on {metric}: this run resolves changes of "
                            f"{_pct((c.ci_high - c.ci_low) / 2, rel).lstrip('+')} (half the 95% CI), "
                            f"against a minimum effect of {_pct(eff, rel)}")
        bound = f"+{eff:.0%}" if rel else f"+{eff:g}"
        result.checks.append(Check(f"A/B: {metric}", metric, c.median_a, c.median_b,
                                   _pct(c.change, rel), bound, verdict, detail))
    return result


def _pct(x: float, relative: bool) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.1%}" if relative else f"{x:+.3g}"


# --------------------------------------------------------------------- outputs

def table(result: GateResult) -> str:
    rows = [("check", "before", "after", "change", "bound", "verdict")]
    for c in result.checks:
        rows.append((c.name, _fmt(c.before), _fmt(c.after), c.change or "", c.bound, c.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"{c.verdict}: {c.name}: {c.detail}" for c in result.checks
              if c.verdict != PASS and c.detail]
    lines += [f"note: {n}" for n in result.notes] + [f"error: {e}" for e in result.errors]
    lines.append(f"verdict: {result.verdict} (exit {result.exit_code})")
    return "\n".join(lines)


def markdown(result: GateResult, header: str = "") -> str:
    out = ["# edgebench gate", ""]
    if header:
        out += [header, ""]
    out += [f"**Verdict: {result.verdict}** (exit {result.exit_code})", "",
            "| check | before | after | change | bound | verdict | detail |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in result.checks:
        out.append(f"| {c.name} | {_fmt(c.before)} | {_fmt(c.after)} | {c.change} | "
                   f"{c.bound} | {c.verdict} | {c.detail} |")
    out += [""] + [f"- {n}" for n in result.notes] + [f"- **error:** {e}" for e in result.errors]
    return "\n".join(out) + "\n"


def junit(result: GateResult) -> str:
    failures = sum(c.verdict == REGRESSION for c in result.checks)
    errors = sum(c.verdict in ("error", INCONCLUSIVE) for c in result.checks) + len(result.errors)
    cases = []
    for c in result.checks:
        body = ""
        msg = quoteattr(f"{c.metric}: after {_fmt(c.after)}, bound {c.bound}. {c.detail}")
        if c.verdict == REGRESSION:
            body = f"<failure message={msg}/>"
        elif c.verdict in ("error", INCONCLUSIVE):
            body = f"<error type={quoteattr(c.verdict)} message={msg}/>"
        cases.append(f'  <testcase classname="edgebench.gate" name={quoteattr(c.name)}>{body}</testcase>')
    for e in result.errors:
        cases.append(f'  <testcase classname="edgebench.gate" name="measurement">'
                     f'<error message={quoteattr(e)}/></testcase>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="edgebench-gate" tests="{len(cases)}" failures="{failures}" '
            f'errors="{errors}">\n' + "\n".join(cases) + "\n</testsuite>\n")
