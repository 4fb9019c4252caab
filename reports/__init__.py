"""reports/: results directory -> summary.json, graphs, OPTIMIZATION_SUMMARY.md, report.html.

It runs nothing: it reads a results directory alone (see docs/reports.md; the files it reads: docs/results.md).
"""
from reports.load import ReportError, load_run

__all__ = ["ReportError", "load_run", "render_run"]


def render_run(run_dir, out_dir=None):
    """Compute summary.json and write report/ for a run directory; return written paths."""
    from reports.render import render_run as _render
    return _render(run_dir, out_dir)
