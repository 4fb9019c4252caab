"""render_run: a results directory -> summary.json and report/ (graphs, markdown, HTML).

The data flows one way: the summary is computed from the run, the graphs are drawn from
the run and that summary (they only read it), and the summary that is written is a new
document, the computed one plus what the graph step reported; nothing is changed after
another step has read it."""
from __future__ import annotations

from pathlib import Path

from reports.load import ReportError, load_run  # noqa: F401  (re-exported for edgebench)
from reports.summary import build_summary, write_summary


def with_graphs(summary: dict, images: list[dict], graph_missing: list[str], out: Path) -> dict:
    """The summary to write: ``summary`` plus the graphs drawn and those that were not (a new dict)."""
    return {**summary, "missing": list(summary.get("missing") or []) + list(graph_missing),
            "report": {"dir": str(out), "graphs": [Path(i["path"]).name for i in images]}}


def render_run(run_dir, out_dir=None) -> list[Path]:
    """Compute <run>/summary.json, then write graphs, OPTIMIZATION_SUMMARY.md and
    report.html into out_dir (default <run>/report/). Returns the written paths.
    Raises reports.ReportError when run_dir is not a run."""
    from reports.html import render_html
    from reports.markdown import render_markdown
    from reports.plots import make_plots

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    computed = build_summary(run)
    images, graph_missing = make_plots(run, computed, out)
    summary = with_graphs(computed, images, graph_missing, out)
    written = [write_summary(summary, run.dir / "summary.json")]
    written += [Path(i["path"]) for i in images]
    written.append(render_markdown(summary, out, images, run.dir))
    written.append(render_html(summary, out, images, run.dir))
    return written
