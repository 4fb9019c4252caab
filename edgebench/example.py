"""The committed example: a real run's report copied to the repository root, so that
OPTIMIZATION_SUMMARY.md is always generated from measured data, never edited by hand."""
from __future__ import annotations

import shutil
from pathlib import Path

from edgebench.results import ROOT

EXAMPLE_DIR = ROOT / "docs" / "example"
KEEP = ("flamegraph.svg", "top_functions.csv", "top_functions_diff.csv",
        "allocation_peak.txt", "allocation_retained.txt", "memory.dat")


def write_example(run_dir: Path) -> list[Path]:
    """Render `run_dir` into docs/example/ and OPTIMIZATION_SUMMARY.md at the root."""
    from reports.contract import read_summary
    from reports.markdown import render_markdown
    from reports.render import render_run

    run_dir = Path(run_dir).resolve()
    if EXAMPLE_DIR.exists():
        shutil.rmtree(EXAMPLE_DIR)
    EXAMPLE_DIR.mkdir(parents=True)
    written = render_run(run_dir, out_dir=EXAMPLE_DIR)
    for name in ("summary.json", "manifest.json"):
        shutil.copy2(run_dir / name, EXAMPLE_DIR / name)
    for f in run_dir.glob("*/profile/*"):   # the profile files the summary links to
        if f.name in KEEP:
            dest = EXAMPLE_DIR / f.relative_to(run_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    summary = read_summary(run_dir / "summary.json")
    from reports.plots import GRAPHS
    images = [{"key": key, "title": title, "path": str(EXAMPLE_DIR / f"{key}.png")}
              for key, title, *_ in GRAPHS if (EXAMPLE_DIR / f"{key}.png").exists()]
    (EXAMPLE_DIR / "OPTIMIZATION_SUMMARY.md").unlink(missing_ok=True)  # one copy: the root's
    written.append(render_markdown(summary, ROOT, images, run_dir=EXAMPLE_DIR))
    return written
