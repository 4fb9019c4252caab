"""The capacity run's graphs: latency against offered load with the knee and capacity
marked, cost against series on log axes with the fit. Each returns the PNG path, or None
without data."""
from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reports.numbers import human, human_tick
from reports.plots import SCENARIO_COLOURS, _save, plt

VARIANT_COLOURS = {"baseline": SCENARIO_COLOURS[("baseline", "vm")],
                   "optimized": SCENARIO_COLOURS[("optimized", "vm")]}


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _load_panel(ax, steps, analysis, axis: str, rate_key: str, cap_key: str, knee_key: str, xlabel: str):
    from reports.capacity_analysis import SLO_P99_MS, meets_slo
    drawn = False
    for v in sorted({s["variant"] for s in steps if s.get("axis") == axis}):
        pts = sorted((s for s in steps if s.get("axis") == axis and s["variant"] == v), key=lambda s: s[rate_key])
        xs = [s[rate_key] for s in pts if _num(s.get("scrape_p99_ms"))]
        ys = [s["scrape_p99_ms"] for s in pts if _num(s.get("scrape_p99_ms"))]
        if not xs:
            continue
        colour = VARIANT_COLOURS.get(v, "0.4")
        ax.plot(xs, ys, "-", color=colour, lw=1.5, label=f"{v}: p99 from the intended start")
        for s in pts:
            if not _num(s.get("scrape_p99_ms")):
                continue
            if s.get("loadgen_bottleneck"):   # says nothing about the service
                ax.plot(s[rate_key], s["scrape_p99_ms"], "s", color="0.5", ms=9, mfc="none", mew=2,
                        label="load generator was the bottleneck")
                continue
            ok = meets_slo(s)
            ax.plot(s[rate_key], s["scrape_p99_ms"], "o" if ok else "x", color=colour, ms=7,
                    mfc=colour if ok else "none", mew=2)
        a = (analysis.get("load") or {}).get(v) or {}
        knee = (a.get(knee_key) or {}).get("rate")
        cap = (a.get(cap_key) or {}).get("rate")
        if knee is not None:
            ax.axvline(knee, color=colour, ls=":", lw=1.2, label=f"{v}: latency knee {knee:g}/s")
        if cap is not None:
            ax.plot(cap, next(s["scrape_p99_ms"] for s in pts if s[rate_key] == cap), "*", color=colour,
                    ms=16, mec="black", label=f"{v}: sustainable {cap:g}/s")
        drawn = True
    if not drawn:
        return False
    ax.axhline(SLO_P99_MS, color="black", lw=1, ls="--", label="scrape SLO: p99 1 s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: human_tick(y, "ms")))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("/metrics p99 from the intended start")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return True


def _beside(steps) -> str:
    rates = sorted({s["scrape_rate"] for s in steps if s.get("axis") == "sensor"})
    return f"{', '.join(f'{r:g}' for r in rates)} scrape(s)/s beside" if rates else ""


def plot_load(doc: dict, path: Path) -> Path | None:
    steps, analysis = doc["load"]["steps"], doc.get("analysis") or {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2))
    a = _load_panel(axes[0], steps, analysis, "scrape", "scrape_rate", "scrape_capacity", "scrape_knee",
                    "offered scrapes/s (log), default sensor load beside")
    b = _load_panel(axes[1], steps, analysis, "sensor", "sensor_rate", "sensor_capacity", "sensor_knee",
                    "offered /sensor requests/s (log), " + _beside(steps))
    if not (a or b):
        plt.close(fig)
        return None
    axes[0].set_title("Scrape latency against scrape rate (o meets the SLO, x misses it)")
    axes[1].set_title("Scrape latency against /sensor rate")
    fig.suptitle("Service under 0.5 CPU / 50 MB: one fresh stack per step; * = sustainable capacity, "
                 ": = latency knee", fontsize=10)
    return _save(fig, path)


def plot_series(doc: dict, path: Path) -> Path | None:
    steps = doc["series"]["steps"]
    costs = ((doc.get("analysis") or {}).get("series") or {}).get("costs") or {}
    limit = (doc.get("limits_mb") or {}).get("sensor-service")
    if not steps:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    ok = sorted((s for s in steps if s.get("status") == "ok"), key=lambda s: s["series"])
    bad = [s for s in steps if s.get("status") != "ok"]
    panels = ((axes[0], "cpu_ms_per_scrape", "CPU per scrape", "cpu_us_per_series",
               lambda f: f"{human(f['per_series'] / 1000, 'ms')}/series"),
              (axes[1], "exposition_bytes", "/metrics answer size", "exposition_bytes_per_series",
               lambda f: f"{human(f['per_series'], 'B')}/series"),
              (axes[2], "mem_peak_mb", "service memory, MB", "mem_bytes_per_series",
               lambda f: f"{human(f['per_series'], 'B')}/series at rest"))
    for ax, key, label, fit_key, fit_label in panels:
        xs = [s["series"] for s in ok if _num(s.get(key))]
        ys = [s[key] for s in ok if _num(s.get(key))]
        ax.plot(xs, ys, "o-", color="#2ca02c", label="measured")
        if key == "mem_peak_mb":
            rx = [s["series"] for s in ok if _num(s.get("mem_rest_mb"))]
            ax.plot(rx, [s["mem_rest_mb"] for s in ok if _num(s.get("mem_rest_mb"))], "o--", color="#98df8a",
                    label="at rest")
            ax.lines[0].set_label("kernel peak")
            ax.set_ylim(0, (limit or max(ys)) * 1.1)
            if limit:
                ax.axhline(limit, color="black", ls="--", lw=1, label=f"{limit:g} MB limit")
        fit = costs.get(fit_key)
        if fit and xs:
            lo, hi = min(xs), max(xs)
            grid = [lo * (hi / lo) ** (i / 40) for i in range(41)] if lo > 0 else [lo, hi]
            ax.plot(grid, [fit["intercept"] + fit["slope"] * g for g in grid], ":", color="black",
                    label=f"fit: {fit_label(fit)}")
        for s in bad:
            ax.axvline(s["series"], color="#d62728", lw=1.2, ls="-.",
                       label=f"{s['status']} at {s['series']:,} series")
        ax.set_xscale("log")
        if key != "mem_peak_mb":     # memory: linear, against its limit
            ax.set_yscale("log")
            unit = "ms" if key == "cpu_ms_per_scrape" else "B"
            if unit == "B":          # binary steps, so the ticks read 4 KB, 16 KB, 64 KB
                ax.yaxis.set_major_locator(LogLocator(base=1024, subs=(1, 4, 16, 64, 256)))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _, u=unit: human_tick(y, u)))
            if unit == "ms":         # a decade is wide: label its 2 and 5 too
                ax.yaxis.set_minor_formatter(FuncFormatter(
                    lambda y, _: human_tick(y, "ms") if f"{y:.0e}"[0] in "25" else ""))
        ax.set_xlabel("extra series (log)")
        ax.set_ylabel(label)
        ax.legend(loc="upper left")
    fig.suptitle("Optimized service cost against series in its exposition (0.5 CPU / 50 MB, scrape-only load)",
                 fontsize=10)
    fig.tight_layout()       # room for the unit tick labels ("256 KB") beside each panel
    return _save(fig, path)


GRAPHS = (("capacity_load", "Capacity: scrape latency against offered load", plot_load),
          ("capacity_series", "Capacity: service cost against series", plot_series))


def make_capacity_plots(doc: dict, out_dir: Path) -> list[dict]:
    images = []
    for key, title, plot in GRAPHS:
        p = plot(doc, Path(out_dir) / f"{key}.png")
        if p is not None:
            images.append({"key": key, "title": title, "path": str(p)})
    return images
