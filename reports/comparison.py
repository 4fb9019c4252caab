"""The "Collector comparison" section (OPTIMIZATION_SUMMARY.md, report.html) and a
comparison run's own report (`make collectors`): sentences that say only what the runs
support, the tables, and the memory graph. Everything comes from comparison.json."""
from __future__ import annotations

from pathlib import Path

from plumbing.files import write_atomic
from reports.contract import read_document, read_manifest
from reports.numbers import NOT_MEASURED, fmt, human

NAMES = {"victoriametrics": "VictoriaMetrics", "prometheus": "Prometheus"}
VERSIONS = "Debian's VictoriaMetrics 1.79.5 and Prometheus 2.42 (both built with Go 1.19.8)"
COLOURS = {"victoriametrics-shipped": "#17becf", "victoriametrics-tuned": "#0b6e7a",
           "prometheus-shipped": "#c49c94", "prometheus-tuned": "#8c564b"}


def _interval(r: dict | None, unit: str = "×") -> str:
    if not r:
        return NOT_MEASURED
    return (f"{fmt(r['ratio'])}{unit} (95 % interval {fmt(r['low'])}–{fmt(r['high'])}, "
            f"{r['rounds']} rounds)")


def _per_series(f: dict | None, at: dict | None) -> str:
    line = ("no line (held at fewer than three counts)" if not f else
            f"{fmt(f['bytes_per_series'] / 1024)} KB a series more (slope, 95 % interval "
            f"{fmt(f['low'] / 1024)}–{fmt(f['high'] / 1024)}, {f['n']} held runs over "
            f"{fmt(int(f['series_range'][0]))}–{fmt(int(f['series_range'][1]))}, r² {fmt(f['r2'])})")
    if at:
        line += (f"; {fmt(at['bytes_per_series'] / 1024)} KB a series all in at {fmt(at['series'])} "
                 f"({fmt(at['low'] / 1024)}–{fmt(at['high'] / 1024)} over {at['runs']} runs)")
    return line


def operating_point_sentences(doc: dict) -> list[str]:
    op = (doc.get("analysis") or {}).get("operating_point") or {}
    if not op:
        return []
    out = []
    for config in ("shipped", "tuned"):
        peak = op.get(f"prometheus_over_victoriametrics_{config}_peak_mb")
        anon = op.get(f"prometheus_over_victoriametrics_{config}_anon_mb")
        if not peak and not anon:
            continue
        sides = op.get("sides") or {}
        vm, pr = sides.get(f"victoriametrics-{config}") or {}, sides.get(f"prometheus-{config}") or {}
        less = (f" VictoriaMetrics' peak is {fmt((1 - 1 / peak['ratio']) * 100)} % lower "
                f"({fmt((1 - 1 / peak['low']) * 100)}–{fmt((1 - 1 / peak['high']) * 100)} %); the seed document's "
                f"−66 % would be a ratio of 2.94×." if peak and config == "shipped" else "")
        out.append(f"At the robot's operating point (the default bench load, a few dozen series), {config} "
                   f"configuration: Prometheus' kernel peak memory is {_interval(peak)} VictoriaMetrics' "
                   f"(means {fmt(pr.get('peak_mb_mean'), ' MB')} and {fmt(vm.get('peak_mb_mean'), ' MB')}), "
                   f"and its anonymous memory over the last settle window {_interval(anon)}.{less}")
    for c in ("victoriametrics", "prometheus"):
        r = op.get(f"{c}_tuned_over_shipped_peak_mb")
        if r:
            verdict = ("lower" if r["high"] < 1 else "higher" if r["low"] > 1 else "not distinguishable")
            out.append(f"{NAMES[c]} tuned against shipped at the operating point: peak ratio {_interval(r)}, "
                       f"{verdict}.")
    return out


def sweep_sentences(doc: dict) -> list[str]:
    sw = (doc.get("analysis") or {}).get("sweep") or {}
    limit = (doc.get("limits_mb") or {}).get("victoriametrics")
    out = []
    for key, a in sorted(sw.items(), key=lambda kv: (kv[1]["shape"], kv[1]["collector"], kv[1]["config"])):
        shape = "one target × N series" if a["shape"] == "one-target" else "N over targets of 500–2,000 series"
        out.append(f"{NAMES.get(a['collector'], a['collector'])} {a['config']}, {shape}, in {fmt(limit, ' MB')} / 0.5 CPU: "
                   f"{a['boundary']['statement']}; anonymous memory per active series "
                   f"{_per_series(a.get('anon_bytes_per_series'), a.get('anon_per_series_at_capacity'))}; "
                   f"{a['settled_runs']} of {a['runs']} runs "
                   f"settled, {a['capped_runs']} reached the cap.")
    return out


def glance_sentences(doc: dict) -> list[str]:
    """One sentence per collector for the report's first screen: its peak at the robot's
    load (shipped configuration, mean over side-by-side rounds) and the series it held in
    its limit (shipped, over targets of 500–2,000 series and as one target)."""
    a = doc.get("analysis") or {}
    op = a.get("operating_point") or {}
    sides = op.get("sides") or {}
    ratio = op.get("prometheus_over_victoriametrics_shipped_peak_mb")
    limit = (doc.get("limits_mb") or {}).get("victoriametrics") or 150
    out = []
    for c in ("victoriametrics", "prometheus"):
        side = sides.get(f"{c}-shipped") or {}
        parts = []
        if side.get("peak_mb_mean") is not None:
            peak = f"peaks at {fmt(side['peak_mb_mean'], ' MB')} at the robot's load (mean of {side['rounds']} rounds)"
            if c == "prometheus" and ratio:
                peak += (f", {fmt(ratio['ratio'])}× VictoriaMetrics' (95 % interval "
                         f"{fmt(ratio['low'])}–{fmt(ratio['high'])})")
            parts.append(peak)
        held = {shape: ((a.get("sweep") or {}).get(f"{c}/shipped/{shape}") or {}).get("boundary") or {}
                for shape in ("many-targets", "one-target")}
        if held["many-targets"].get("held_all") is not None:
            text = (f"holds {fmt(held['many-targets']['held_all'])} series over targets of 500–2,000 series in "
                    f"{fmt(limit, ' MB')} / 0.5 CPU")
            if held["one-target"].get("held_all") is not None:
                text += f" ({fmt(held['one-target']['held_all'])} as one target)"
            parts.append(text)
        if parts:
            out.append(f"{NAMES[c]} (as shipped, run {doc.get('run_id')}): {'; '.join(parts)}.")
    return out


# (header, comparison.json key, catalogue unit): each cell in the unit that fits (reports.numbers.human)
OP_COLUMNS = (("round", "round", ""), ("peak", "peak_mb", "MB"), ("steady", "steady_mb", "MB"),
              ("anon", "anon_mb", "MB"), ("page cache", "page_cache_mb", "MB"),
              ("slope MB/min", "slope_mb_per_min", ""), ("settled", "settled", ""))
SWEEP_COLUMNS = (("shape", "shape", ""), ("series", "series", ""), ("targets", "targets", ""), ("run", "run", ""),
                 ("status", "status", ""), ("anon", "anon_mb", "MB"), ("page cache", "page_cache_mb", "MB"),
                 ("Go heap", "go_heap_mb", "MB"), ("peak", "peak_mb", "MB"), ("slope MB/min", "slope_mb_per_min", ""),
                 ("settled after", "settled_after_s", "s"), ("active series (own count)", "active_series_reported", ""))


def _table(rows: list[dict], columns, first=("variant", "variant")) -> tuple:
    headers = [first[0]] + [c[0] for c in columns]
    return ("table", headers, [[str(r.get(first[1]))] + [human(r.get(k), u) if not isinstance(r.get(k), str)
                                                         else r.get(k) for _, k, u in columns] for r in rows])


def comparison_blocks(doc: dict, images: list[dict] | None = None, level: int = 2) -> list:
    """The section's blocks (reports.markdown's block format)."""
    a = doc.get("analysis") or {}
    rule = a.get("settle_rule") or {}
    m = doc.get("machine") or {}
    blocks = [("h", level, "Collector comparison"),
              ("p", f"From run {doc.get('run_id')} ({doc.get('status') or 'running'}, `make collectors`), "
                    f"{VERSIONS}, each under the compose limits (150 MB / 0.5 CPU) and seeing them in its own "
                    f"cgroup namespace. *shipped* is docker-compose.yml as it is; *tuned* adds GOMEMLIMIT at 90 % "
                    f"of the limit to both, `-promscrape.streamParse` and GOGC=30 to VictoriaMetrics and GOGC=75 "
                    f"to Prometheus (docs/capacity.md cites each). A step ends when a collector's anonymous "
                    f"memory has settled (slope over the last {rule.get('scrapes')} scrapes within "
                    f"{fmt((rule.get('fraction_of_limit_per_min') or 0) * 100)} % of the limit per minute) or "
                    f"at the cap; a collector holds N when it settled or reached the cap with every scrape on "
                    f"time and no OOM kill. Machine: {m.get('cpu_model') or NOT_MEASURED}, shared with other "
                    f"work (memory figures, not timings)."),
              ("ul", operating_point_sentences(doc) + sweep_sentences(doc) or ["Nothing was measured."])]
    rounds = (doc.get("operating_point") or {}).get("rounds") or []
    if rounds:
        blocks += [("h", level + 1, "The robot's operating point (default bench load, side by side)"),
                   _table(rounds, OP_COLUMNS)]
    steps = (doc.get("sweep") or {}).get("steps") or []
    if steps:
        blocks += [("h", level + 1, "Series sweep (synthetic target outside the limits)"),
                   _table(sorted(steps, key=lambda s: (s["shape"], s["variant"], s["series"], s.get("run", 1))),
                          SWEEP_COLUMNS)]
    for im in images or []:
        blocks.append(("img", im["title"], im["path"]))
    # offered to the first screen; the serialisers skip it
    return blocks + [("glance", "collectors", text) for text in glance_sentences(doc)]


def plot_comparison(doc: dict, path: Path) -> Path | None:
    """Settled anonymous memory against active series, a panel per shape, a line per
    variant, crosses where runs failed, the limit line."""
    from matplotlib.ticker import FuncFormatter

    from reports.plots import _save, plt
    steps = (doc.get("sweep") or {}).get("steps") or []
    if not steps:
        return None
    limit = (doc.get("limits_mb") or {}).get("victoriametrics") or 150
    shapes = [s for s in ("one-target", "many-targets") if any(x["shape"] == s for x in steps)]
    fig, axes = plt.subplots(1, len(shapes), figsize=(6 * len(shapes), 4.8), squeeze=False, sharey=True)
    for ax, shape in zip(axes[0], shapes):
        for v in sorted({s["variant"] for s in steps if s["shape"] == shape}):
            mine = [s for s in steps if s["shape"] == shape and s["variant"] == v]
            ok = sorted((s for s in mine if s.get("anon_mb") is not None), key=lambda s: s["series"])
            colour = COLOURS.get(v, "0.4")
            ax.plot([s["series"] for s in ok], [s["anon_mb"] for s in ok], "o", color=colour, alpha=0.8, label=v)
            ns = sorted({s["series"] for s in ok})
            ax.plot(ns, [sum(s["anon_mb"] for s in ok if s["series"] == n) / sum(1 for s in ok if s["series"] == n)
                         for n in ns], "-", color=colour, lw=1)
            ax.plot([s["series"] for s in ok], [s["anon_mb"] + (s.get("page_cache_mb") or 0) for s in ok], "_",
                    color=colour, ms=10)
            bad = [s for s in mine if s.get("status") not in ("settled", "capped")]
            for s in bad:
                ax.plot(s["series"], s.get("peak_mb") or limit, "X", color=colour, ms=11, mec="black")
        ax.axhline(limit, color="black", ls="--", lw=1, label=f"{limit:g} MB limit")
        # what the marks are, in the legend (a "–" above a point is a second figure, not an error bar)
        ax.plot([], [], "o", color="0.5", label="one run: anonymous memory (line: mean)")
        ax.plot([], [], "_", color="0.5", ms=10, label="the same run with its page cache")
        ax.plot([], [], "X", color="0.5", ms=9, mec="black", label="a failed run's peak")
        ax.set_title("one target × N series" if shape == "one-target" else "targets of 500–2,000 series")
        ax.set_xlabel("series scraped every 5 s")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:,.0f}k"))
        ax.set_ylim(0, limit * 1.1)
    axes[0][0].set_ylabel("collector memory, MB")
    labelled = {}                               # one legend for both panels, below them, off the data
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(lab, h)
    fig.legend(labelled.values(), labelled.keys(), loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("Collector memory against series under 150 MB / 0.5 CPU", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, path)


def plot_operating_point(doc: dict, path: Path) -> Path | None:
    """Each variant's kernel peak and settled anonymous memory in every round."""
    from reports.plots import _save, plt
    rounds = [r for r in (doc.get("operating_point") or {}).get("rounds") or [] if not r.get("error")]
    if not rounds:
        return None
    variants = [v for v in COLOURS if any(r["variant"] == v for r in rounds)]
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, v in enumerate(variants):
        mine = [r for r in rounds if r["variant"] == v]
        for key, marker, dx in (("peak_mb", "o", -0.12), ("anon_mb", "s", 0.12)):
            ys = [r[key] for r in mine if isinstance(r.get(key), (int, float))]
            ax.plot([i + dx] * len(ys), ys, marker, color=COLOURS[v], mfc="none" if key == "anon_mb" else COLOURS[v],
                    label=("kernel peak" if key == "peak_mb" else "anonymous, settled") if i == 0 else None)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants, fontsize=8)
    ax.set_ylim(0, None)
    ax.set_ylabel("MB per round")
    ax.set_title("Collector memory at the robot's operating point (default bench load), every round", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def make_comparison_plots(doc: dict, out_dir: Path) -> list[dict]:
    out = []
    for key, title, plot in (("collector_operating_point", "Collector comparison: the robot's operating point",
                              plot_operating_point),
                             ("collector_comparison", "Collector comparison: memory against series",
                              plot_comparison)):
        p = plot(doc, Path(out_dir) / f"{key}.png")
        if p:
            out.append({"key": key, "title": title, "path": str(p)})
    return out


def read_comparison(run_dir) -> dict:
    """comparison.json, re-analysed with today's definitions, with the run's machine."""
    from reports.collector_stats import analyse
    run_dir = Path(run_dir)
    doc = read_document(run_dir / "comparison.json")
    doc["analysis"] = analyse(doc)
    if (run_dir / "manifest.json").exists():
        doc.setdefault("machine", read_manifest(run_dir).machine)
    return doc


def render_comparison(run_dir, out_dir=None) -> list[Path]:
    """<run>/report/: the graph, COLLECTORS.md and collectors.html of a comparison run."""
    from reports.html import to_html
    from reports.markdown import to_markdown
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    doc = read_comparison(run_dir)
    images = make_comparison_plots(doc, out)
    blocks = [("h", 1, f"Collector comparison: run {doc.get('run_id')}")] + comparison_blocks(doc, images)[1:]
    md = write_atomic(out / "COLLECTORS.md", to_markdown(blocks, out))
    page = write_atomic(out / "collectors.html", to_html(blocks, out, f"edgebench collectors: {doc.get('run_id')}"))
    return [md, page] + [Path(i["path"]) for i in images]
