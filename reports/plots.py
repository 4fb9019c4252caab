"""Graphs of a run (matplotlib, Agg backend, PNG at ~100 dpi).

Colours are fixed per scenario everywhere: baseline red-ish, optimized green
(VictoriaMetrics) / blue (Prometheus); the collector also sets the line style
(VictoriaMetrics solid, Prometheus dashed). Components have their own colours in
per-component graphs. A graph whose data is missing is skipped and named in the
returned ``missing`` list.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from loadtests.samples import steady  # noqa: E402
from plumbing.files import write_atomic  # noqa: E402
from reports import figures as FIG  # noqa: E402
from reports import stats as S  # noqa: E402
from reports.load import Run, Scenario, collector_kind  # noqa: E402
from reports.numbers import KIB, fmt, human, human_tick  # noqa: E402
from reports.summary import scenario_order  # noqa: E402
from reports.view import SCRAPE_ENDPOINT, SENSOR_ENDPOINT  # noqa: E402

DPI = 100
MAX_POINTS = 4000
SCENARIO_COLOURS = {("baseline", "vm"): "#d62728", ("baseline", "prom"): "#ff7f0e",
                    ("optimized", "vm"): "#2ca02c", ("optimized", "prom"): "#1f77b4"}
COLLECTOR_STYLE = {"vm": "-", "prom": "--"}
COMPONENT_COLOURS = {"service": "#6a3d9a", "vm": "#17becf", "prom": "#8c564b", "other": "#7f7f7f"}

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
                     "legend.fontsize": 8, "figure.dpi": DPI, "savefig.dpi": DPI})


def scenario_colour(s: dict) -> str:
    return SCENARIO_COLOURS.get((s.get("variant"), collector_kind(s.get("collector"))), "#7f7f7f")


def scenario_style(s: dict) -> str:
    return COLLECTOR_STYLE.get(collector_kind(s.get("collector")), ":")


def component_colour(c: str, role: str) -> str:
    if role == "service":
        return COMPONENT_COLOURS["service"]
    if role == "collector":
        return COMPONENT_COLOURS.get(collector_kind(c) or "other", COMPONENT_COLOURS["other"])
    return COMPONENT_COLOURS["other"]


def _save(fig, path: Path) -> Path:
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def _first_repeats(run: Run, summary: dict) -> list[tuple[str, Scenario, dict]]:
    """(name, first repeat's Scenario, aggregated summary entry) in display order."""
    first = {}
    for sc in run.scenarios:
        if sc.name not in first or sc.repeat < first[sc.name].repeat:
            first[sc.name] = sc
    return [(n, first[n], summary["scenarios"][n]) for n in scenario_order(summary) if n in first]


def _rel(t, s: dict) -> np.ndarray:
    t0 = (s.get("window") or {}).get("steady_start")
    return np.asarray(t, dtype=float) - (t0 or 0.0)


def _steady_shade(ax, s: dict):
    w = s.get("window") or {}
    if w.get("steady_start") is not None and w.get("steady_end") is not None:
        ax.axvline(0, color="0.5", lw=0.8, ls=":")
        ax.axvline(w["steady_end"] - w["steady_start"], color="0.5", lw=0.8, ls=":")
        lo, _ = ax.get_xlim()
        if lo < 0:
            ax.axvspan(lo, 0, color="0.85", alpha=0.5, lw=0, zorder=0)
            ax.set_xlim(left=lo)


def _label(name: str, s: dict) -> str:
    r = s.get("repeats", 1)
    return name if r == 1 else f"{name} (repeat 1 of {r})"


# --------------------------------------------------------------------------- graphs

def plot_latency_over_time(items, path: Path):
    fig, ax = plt.subplots(figsize=(11, 4.6))
    drawn = False
    timeouts = set()
    for name, sc, s in items:
        if sc.requests is None:
            continue
        r = sc.requests[(sc.requests["name"] == SCRAPE_ENDPOINT) & (sc.requests["sent"] == 1)]
        if len(r) == 0:
            continue
        drawn = True
        x = _rel(r["start"], s)
        y = r["latency_ms"].to_numpy()
        col = scenario_colour(s)
        idx = np.arange(len(r)) if len(r) <= MAX_POINTS else np.linspace(0, len(r) - 1, MAX_POINTS).astype(int)
        ax.scatter(x[idx], y[idx], s=6, color=col, alpha=0.25, lw=0, rasterized=True)
        bins = np.floor(x / 2.0) * 2.0 + 1.0
        med = pd.Series(y).groupby(bins).median()
        ax.plot(med.index, med.values, color=col, ls=scenario_style(s), lw=1.8,
                label=f"{_label(name, s)}: median per 2 s")
        bad = r["ok"].to_numpy() == 0
        if bad.any():
            ax.scatter(x[bad], y[bad], marker="x", s=22, color=col, lw=1.2,
                       label=f"{name}: failed request")
        if s.get("scrape_timeout_s"):
            timeouts.add(float(s["scrape_timeout_s"]))
    if not drawn:
        plt.close(fig)
        return None
    for to in sorted(timeouts):
        ax.axhline(to * 1000.0, color="k", ls="--", lw=1.2, label=f"collector scrape timeout ({to:g} s)")
    ax.set_yscale("log")
    _steady_shade(ax, items[0][2])
    ax.set_xlabel("time since steady window start (s); grey = warm-up, excluded from figures")
    ax.set_ylabel("/metrics latency (ms, log scale)")
    ax.set_title("/metrics latency over time (client side): baseline vs optimized")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    return _save(fig, path)


def plot_latency_cdf(items, path: Path):
    endpoints = []
    for _, sc, _ in items:
        if sc.requests is not None:
            endpoints += [e for e in sorted(sc.requests["name"].unique()) if e not in endpoints]
    endpoints = [e for e in (SCRAPE_ENDPOINT, SENSOR_ENDPOINT) if e in endpoints] + \
        [e for e in endpoints if e not in (SCRAPE_ENDPOINT, SENSOR_ENDPOINT)]
    if not endpoints:
        return None
    fig, axes = plt.subplots(1, len(endpoints), figsize=(11, 4.2), squeeze=False)
    for ax, ep in zip(axes[0], endpoints):
        timeouts = set()
        for name, sc, s in items:
            if sc.requests is None:
                continue
            w = (s.get("window") or {})
            r = sc.requests
            if w.get("steady_start") is not None and w.get("steady_end") is not None:
                r = steady(r, w["steady_start"], w["steady_end"])
            y = np.sort(r.loc[r["name"] == ep, "latency_ms"].dropna().to_numpy())
            if y.size == 0:
                continue
            y = np.maximum(y, 1e-3)
            ax.step(y, np.arange(1, y.size + 1) / y.size, where="post", color=scenario_colour(s),
                    ls=scenario_style(s), lw=1.8, label=_label(name, s))
            if s.get("scrape_timeout_s"):
                timeouts.add(float(s["scrape_timeout_s"]))
        if ep == SCRAPE_ENDPOINT:
            for to in sorted(timeouts):
                ax.axvline(to * 1000.0, color="k", ls="--", lw=1.2, label=f"scrape timeout ({to:g} s)")
        ax.axhline(0.95, color="0.4", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"{ep} latency (ms, log scale)")
        ax.set_ylabel("fraction of requests ≤ latency")
        ax.set_title(f"{ep} latency CDF (steady window; dotted line = p95)")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.tight_layout()
    if handles:      # below the panels: inside, it hid the baseline's curve
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels),
                   frameon=False)
    return _save(fig, path)


def plot_throughput(items, path: Path):
    have = [(n, sc, s) for n, sc, s in items if sc.requests is not None and len(sc.requests)]
    if not have:
        return None
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True)
    for name, sc, s in have:
        x = _rel(sc.requests["intended"], s)
        sec = np.floor(x)
        full = np.arange(sec.min(), sec.max() + 1)
        n = pd.Series(1, index=sec).groupby(level=0).sum().reindex(full, fill_value=0)
        f = pd.Series((sc.requests["ok"].to_numpy() == 0).astype(int), index=sec).groupby(level=0).sum() \
            .reindex(full, fill_value=0)
        col, ls = scenario_colour(s), scenario_style(s)
        a1.plot(n.index + 0.5, n.values, color=col, ls=ls, lw=1.5, label=_label(name, s))
        a2.plot(f.index + 0.5, f.values, color=col, ls=ls, lw=1.5, label=_label(name, s))
    a1.set_ylim(bottom=0, top=max(a1.get_ylim()[1] * 1.1, 1))
    a2.set_ylim(bottom=-0.05 * max(a2.get_ylim()[1], 1), top=max(a2.get_ylim()[1] * 1.1, 1))
    a1.set_ylabel("requests / s (all endpoints)")
    a1.set_title("Throughput and failures over time (client side)")
    a2.set_ylabel("failed requests / s")
    a2.set_xlabel("time since steady window start (s); grey = warm-up")
    a1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))      # outside: inside it hid data
    from matplotlib.ticker import MaxNLocator
    a2.yaxis.set_major_locator(MaxNLocator(integer=True))
    for a in (a1, a2):
        _steady_shade(a, have[0][2])
    fig.tight_layout()
    return _save(fig, path)


def plot_collector_view(items, path: Path):
    have = [(n, sc, s) for n, sc, s in items if "up" in sc.collector or "collector_scrape_duration" in sc.collector]
    if not have:
        return None
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True)
    timeouts = set()
    for name, sc, s in have:
        col, ls = scenario_colour(s), scenario_style(s)
        for ser in S.prom_series(sc.collector.get("up")):
            a1.step(_rel(ser["t"], s), ser["v"], where="post", color=col, ls=ls, lw=1.5, label=_label(name, s))
        for ser in S.prom_series(sc.collector.get("collector_scrape_duration")):
            a2.plot(_rel(ser["t"], s), ser["v"], color=col, ls=ls, lw=1.5, marker="o", ms=3,
                    label=_label(name, s))
        if s.get("scrape_timeout_s"):
            timeouts.add(float(s["scrape_timeout_s"]))
    for to in sorted(timeouts):
        a2.axhline(to, color="k", ls="--", lw=1.2, label=f"scrape timeout ({to:g} s)")
    a1.set_ylim(-0.1, 1.15)
    a1.set_yticks([0, 1])
    a1.set_yticklabels(["0 (down)", "1 (up)"])
    a1.set_ylabel("up")
    a1.set_title("The collector's view of the service: up and scrape_duration_seconds")
    a2.set_ylabel("scrape_duration_seconds (s)")
    a2.set_xlabel("time since steady window start (s); grey = warm-up")
    a1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))      # outside: inside it hid data
    a2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for a in (a1, a2):
        _steady_shade(a, have[0][2])
    fig.tight_layout()
    return _save(fig, path)


def _event_times(g: pd.DataFrame, col: str) -> np.ndarray:
    v = g[col].to_numpy(dtype=float)
    t = g["t"].to_numpy(dtype=float)
    if v.size < 2 or not np.isfinite(v).any():
        return np.array([])
    d = np.diff(np.nan_to_num(v, nan=0.0))
    return t[1:][d > 0]


def plot_memory(items, path: Path):
    have = [(n, sc, s) for n, sc, s in items if sc.resources is not None and sc.resources["mem_bytes"].notna().any()]
    if not have:
        return None
    fig, axes = plt.subplots(len(have), 1, figsize=(11, 3.2 * len(have) + 0.6), squeeze=False, sharex=True)
    for ax, (name, sc, s) in zip(axes[:, 0], have):
        for c, g in sc.resources.groupby("component", sort=True):
            if sc.role(c) == "loadgen":
                continue
            col = component_colour(c, sc.role(c))
            x = _rel(g["t"], s)
            ax.plot(x, g["mem_bytes"] / S.MIB, color=col, lw=1.6, label=f"{c} memory")
            lim = (s.get("mem_limit_mb") or {}).get(c)
            if lim:
                dash = (0, (6, 3)) if sc.role(c) == "service" else (3, (2, 2))
                ax.axhline(lim, color=col, ls=dash, lw=1.3, label=f"{c} limit ({fmt(lim)} MB)")
            for i, te in enumerate(_event_times(g, "oom_kills")):
                ax.axvline(te - (s["window"]["steady_start"] or 0), color="#d62728", lw=2.0, alpha=0.8,
                           label="OOM kill" if i == 0 else None)
            for i, te in enumerate(_event_times(g, "restarts")):
                ax.axvline(te - (s["window"]["steady_start"] or 0), color="k", lw=1.2, ls=":",
                           label="restart" if i == 0 else None)
        ax.set_ylabel("memory (MB = MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{_label(name, s)}: memory per component (usage − inactive file)",
                     color=scenario_colour(s))
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
        _steady_shade(ax, s)
    axes[-1, 0].set_xlabel("time since steady window start (s); grey = warm-up")
    fig.tight_layout()
    return _save(fig, path)


def plot_cpu(items, path: Path):
    have = [(n, sc, s) for n, sc, s in items if sc.resources is not None and sc.resources["cpu_seconds"].notna().any()]
    if not have:
        return None
    fig, axes = plt.subplots(len(have), 1, figsize=(11, 3.2 * len(have) + 0.6), squeeze=False, sharex=True)
    for ax, (name, sc, s) in zip(axes[:, 0], have):
        ax2 = None
        for c, g in sc.resources.groupby("component", sort=True):
            if sc.role(c) == "loadgen":
                continue
            col = component_colour(c, sc.role(c))
            tm, r = S.rate_series(g["t"], g["cpu_seconds"])
            ax.plot(_rel(tm, s), r, color=col, lw=1.6, label=f"{c} cores used")
            q = (s.get("cpus_by_component") or {}).get(c)
            if q:
                dash = (0, (6, 3)) if sc.role(c) == "service" else (3, (2, 2))
                ax.axhline(q, color=col, ls=dash, lw=1.3, label=f"{c} quota ({q:g} CPU)")
            if sc.role(c) == "service" and g["throttled_periods"].notna().any():
                tt, thr = S.rate_series(g["t"], g["throttled_periods"])
                if g["nr_periods"].notna().any():     # the throttled_ratio figure's definition, per interval
                    _, per = S.rate_series(g["t"], g["nr_periods"])
                    pct = np.clip(np.where(per > 0, thr / np.where(per > 0, per, 1.0), 0.0) * 100.0, 0, 100)
                    what = f"{c} throttled (% of CFS periods)"
                else:                                 # older runs: wall-clock periods, a lower bound
                    pct = np.clip(thr * S.CFS_PERIOD_S * 100.0, 0, 100)
                    what = f"{c} throttled (% of wall-clock periods, a lower bound)"
                ax2 = ax.twinx()
                ax2.fill_between(_rel(tt, s), pct, step="mid", color="0.5", alpha=0.25, label=what)
                ax2.set_ylim(0, 105)
                ax2.set_ylabel("throttled (% of periods)")
                ax2.grid(False)
                ax.set_zorder(ax2.get_zorder() + 1)        # CPU lines above the throttling fill
                ax.patch.set_visible(False)
        ax.set_ylabel("CPU (cores)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{_label(name, s)}: CPU per component vs quota, with throttling", color=scenario_colour(s))
        h, lab = ax.get_legend_handles_labels()
        if ax2 is not None:
            h2, l2 = ax2.get_legend_handles_labels()
            h, lab = h + h2, lab + l2
        ax.legend(h, lab, loc="center left", bbox_to_anchor=(1.08, 0.5))
        _steady_shade(ax, s)
    axes[-1, 0].set_xlabel("time since steady window start (s); grey = warm-up")
    fig.tight_layout()
    return _save(fig, path)


def plot_memory_budget(summary: dict, path: Path):
    names = [n for n in scenario_order(summary) if summary["scenarios"][n].get("mem_peak_mb")]
    if not names:
        return None
    comps, roles = [], {}
    for n in names:
        roles.update(summary["scenarios"][n].get("components") or {})
        for c in summary["scenarios"][n]["mem_peak_mb"]:
            if roles.get(c) != "loadgen" and c not in comps:
                comps.append(c)
    comps.sort(key=lambda c: (roles.get(c) != "service", c))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    xs, labels = [], []
    pos = 0.0
    for n in names:
        s = summary["scenarios"][n]
        for kind, key in (("peak", "mem_peak_mb"), ("steady", "mem_steady_mb")):
            bottom = 0.0
            for c in comps:
                v = (s.get(key) or {}).get(c)
                if v is None:
                    continue
                ax.bar(pos, v, bottom=bottom, width=0.8, color=component_colour(c, roles.get(c)),
                       alpha=1.0 if kind == "peak" else 0.6, edgecolor=scenario_colour(s), lw=2,
                       label=c)
                bottom += v
            ax.text(pos, bottom + 4, fmt(bottom), ha="center", va="bottom", fontsize=8)
            xs.append(pos)
            labels.append(f"{n}\n{kind}")
            pos += 1.0
        pos += 0.6
    budget = summary.get("budget_mb", 300.0)
    ax.axhline(budget, color="k", ls="--", lw=1.4, label=f"stack budget ({fmt(budget)} MB)")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    for tick, n in zip(ax.get_xticklabels(), [n for n in names for _ in (0, 1)]):
        tick.set_color(scenario_colour(summary["scenarios"][n]))
    ax.set_ylabel("memory (MB = MiB)")
    ax.set_ylim(0, max(budget * 1.15, ax.get_ylim()[1]))
    ax.set_title("Stack memory vs the 300 MB budget: service + collector, peak and steady (median)")
    from matplotlib.patches import Patch
    handles = [Patch(color=component_colour(c, roles.get(c)), label=c) for c in comps]
    handles += [Patch(facecolor="white", edgecolor=scenario_colour(summary["scenarios"][n]), lw=2, label=n)
                for n in names]
    hs, ls_ = ax.get_legend_handles_labels()
    handles += [h for h, lab in zip(hs, ls_) if lab.startswith("stack budget")][:1]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="fill: component; edge: scenario;\nlighter bar = steady", title_fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def bar_errors(summary: dict, names: list, key: str) -> list | None:
    """[below, above] of each bar: the min–max over repeats; None when no scenario has
    repeats to draw it from (then no bar gets an error bar)."""
    lo, hi, any_spread = [], [], False
    for n in names:
        s = summary["scenarios"][n]
        v, sp = s.get(key), (s.get("spread") or {}).get(key)
        if sp and v is not None and sp[0] is not None and sp[1] is not None:
            lo.append(v - sp[0])
            hi.append(sp[1] - v)
            any_spread = True
        else:
            lo.append(0.0)
            hi.append(0.0)
    return [lo, hi] if any_spread else None


def _bars(ax, summary, names, key, ylabel, title, note_key=None):
    """One bar per scenario, labelled in the unit that fits; error bars only from repeats.
    ``note_key``: a figure printed beside each value (the slope's standard error)."""
    unit = FIG.unit(key)
    scale = KIB * KIB if unit == "MB" else 1.0      # memory is drawn in bytes, so its ticks read B, KB, MB
    tick_unit = "B" if unit == "MB" else unit
    vals, cols = [], []
    for n in names:
        s = summary["scenarios"][n]
        v = s.get(key)
        vals.append(np.nan if v is None else v * scale)
        cols.append(scenario_colour(s))
    err = bar_errors(summary, names, key)
    lo, hi = ([list(np.array(e) * scale) for e in err] if err else [[0.0] * len(names)] * 2)
    x = np.arange(len(names))
    ax.bar(x, vals, color=cols, **({"yerr": [lo, hi], "capsize": 4, "ecolor": "k"} if err else {}))
    fin = np.array([v for v in vals if np.isfinite(v)])
    from matplotlib.ticker import FuncFormatter, LogLocator
    if fin.size >= 2 and (fin > 0).all() and fin.max() / fin.min() > 20:
        ax.set_yscale("log")
        if unit == "MB":
            ax.yaxis.set_major_locator(LogLocator(base=KIB, subs=(1, 4, 16, 64, 256)))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        else:
            ax.yaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: human_tick(v, tick_unit) if f"{v:.0e}"[0] in "25" else ""))
        ax.set_ylim(fin.min() / 3.0, fin.max() * 2.0)
        ylabel += " (log scale)"
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human_tick(v, tick_unit)))
    for i, (xi, v, h, low) in enumerate(zip(x, vals, hi, lo)):
        text = human(v, tick_unit) if np.isfinite(v) else "not measured"
        extra = summary["scenarios"][names[i]].get(note_key) if note_key else None
        if np.isfinite(v) and extra is not None:
            text += f" ± {human(extra * scale, tick_unit)}"
        if np.isfinite(v) and v < 0:           # below a negative bar (and its error bar)
            ax.annotate(text, (xi, v - low), xytext=(0, -3), textcoords="offset points",
                        ha="center", va="top", fontsize=8)
        elif np.isfinite(v):
            ax.annotate(text, (xi, v + h), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
        else:
            ax.annotate(text, (xi, 0), xytext=(0, 3), textcoords="offset points",
                        xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8)
    if fin.size and ax.get_yscale() == "linear":     # room for the value labels
        lo_, hi_ = ax.get_ylim()
        pad = 0.12 * (hi_ - lo_)
        ax.set_ylim(lo_ - (pad if (fin < 0).any() else 0), hi_ + (pad if (fin > 0).any() else 0))
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return err is not None


def plot_per_request(summary: dict, path: Path):
    names = scenario_order(summary)
    if not any(summary["scenarios"][n].get("cpu_ms_per_request") is not None for n in names):
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.4))
    left = _bars(a1, summary, names, "cpu_ms_per_request", "service CPU per request",
                 "Service CPU per request")
    if any(summary["scenarios"][n].get("scrape_alloc_peak_mb") is not None for n in names):
        right = _bars(a2, summary, names, "scrape_alloc_peak_mb", "Python allocations",
                      "Memory one scrape holds at its peak (tracemalloc)")
        note = "right: one traced /metrics scrape per scenario (sum of its largest allocation sites)"
    else:
        right = _bars(a2, summary, names, "mem_per_scrape_mb", "retained per /metrics scrape",
                      "Retained memory growth per scrape (slope)", note_key="mem_per_scrape_stderr_mb")
        a2.axhline(0, color="k", lw=0.8)
        note = ("right: least-squares slope of service memory against /metrics requests "
                "(± its standard error)")
    bars = "error bars: min–max over repeats" if (left or right) else "one run per scenario: no error bars"
    fig.text(0.5, -0.02, f"{bars}; {note}", ha="center", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_top_functions(items, path: Path, top: int = 12):
    have = [(n, sc, s) for n, sc, s in items if sc.top_functions is not None and len(sc.top_functions)]
    if not have:
        return None
    rows = max(min(top, len(sc.top_functions)) for _, sc, _ in have)
    fig, axes = plt.subplots(1, len(have), figsize=(5.6 * len(have) + 1, 0.4 * rows + 1.4), squeeze=False)
    for ax, (name, sc, s) in zip(axes[0], have):
        df = sc.top_functions.assign(self_pct=pd.to_numeric(sc.top_functions["self_pct"], errors="coerce"))
        if (df["self_pct"] > 0).any():
            df = df[df["self_pct"] > 0]            # frames with no self time are not "top" functions
        df = df.sort_values("self_pct", ascending=False).head(top).iloc[::-1]

        def lab(r):
            f = str(r["function"])
            loc = os.path.basename(str(r["file"])) if pd.notna(r.get("file")) else ""
            if loc and pd.notna(r.get("line")):
                loc += f":{int(r['line'])}"
            if len(f) > 30:                        # shorten the name, keep the location
                f = f[:29] + "…"
            return f"{f} ({loc})" if loc else f
        y = np.arange(len(df))
        ax.barh(y, df["self_pct"], color=scenario_colour(s))
        for yi, v in zip(y, df["self_pct"]):
            ax.annotate(f"{fmt(v)} %", (v, yi), xytext=(3, 0), textcoords="offset points",
                        va="center", ha="left", fontsize=8)
        ax.set_yticks(y)
        ax.set_yticklabels([lab(r) for _, r in df.iterrows()], fontsize=8)
        ax.set_xlabel("self time (% of on-CPU samples)")
        ax.set_xlim(0, 112)
        ax.set_ylim(len(df) - rows - 0.5, len(df) - 0.5)      # same bar height in every panel
        top1 = df.iloc[-1] if len(df) else None      # samples in all = its self samples ÷ its share
        total = (round(float(top1["self_samples"]) * 100 / float(top1["self_pct"]))
                 if top1 is not None and "self_samples" in df and pd.notna(top1.get("self_samples"))
                 and top1["self_pct"] else None)
        count = f", {int(total):,d} samples" if total else ""    # 27 samples: a share is coarse
        ax.set_title(f"{name}: top functions (py-spy{count})", color=scenario_colour(s))
    fig.tight_layout()
    return _save(fig, path)


GRAPHS = (
    ("latency_over_time", "/metrics latency over time", "items", plot_latency_over_time,
     "no /metrics requests (requests.csv.gz)"),
    ("latency_cdf", "Latency CDF", "items", plot_latency_cdf, "no requests (requests.csv.gz)"),
    ("throughput_failures", "Throughput and failures", "items", plot_throughput, "no requests"),
    ("collector_view", "The collector's view: up and scrape duration", "items", plot_collector_view,
     "no collector/up.json or collector/collector_scrape_duration.json"),
    ("memory", "Memory per component", "items", plot_memory, "no memory samples (resources.csv)"),
    ("cpu", "CPU per component", "items", plot_cpu, "no CPU samples (resources.csv)"),
    ("memory_budget", "Stack memory vs budget", "summary", plot_memory_budget, "no memory figures"),
    ("per_request", "CPU per request and memory per scrape", "summary", plot_per_request,
     "no CPU per request figure"),
    ("top_functions", "Top functions (profile)", "items", plot_top_functions,
     "no profile/top_functions.csv (run `make profile`)"),
)


def make_plots(run: Run, summary: dict, out_dir) -> tuple[list[dict], list[str]]:
    """Write every graph it has data for into out_dir. Returns ([{key, title, path}], missing)."""
    out_dir = Path(out_dir)
    items = _first_repeats(run, summary)
    written, missing = [], []
    for key, title, arg, fn, why in GRAPHS:
        path = out_dir / f"{key}.png"
        try:
            p = fn(items if arg == "items" else summary, path)
        finally:
            plt.close("all")
        if p is None:
            path.unlink(missing_ok=True)      # a stale graph from an earlier render must not linger
            missing.append(f"graph {key}.png skipped: {why}")
        else:
            written.append({"key": key, "title": title, "path": str(p)})
    return written, missing
