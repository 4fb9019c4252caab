"""The committed example: a real run's report copied to the repository root, so that
OPTIMIZATION_SUMMARY.md is always generated from measured data, never edited by hand.

Sections from other runs join it: the newest complete steps run's (bin/edgebench steps)
capacity run's (make capacity) and collector comparison's (make collectors); with none in results/, the steps.json or
capacity.json the example already carries."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from edgebench.results import ROOT
from plumbing.files import write_json_atomic
from reports.contract import ContractError, read_document, read_manifest

EXAMPLE_DIR = ROOT / "docs" / "example"
KEEP = ("flamegraph.svg", "top_functions.csv", "top_functions_diff.csv",
        "allocation_peak.txt", "allocation_retained.txt", "memory.dat")


def newest_complete(results_root: Path, label: str) -> Path | None:
    """The newest results/<id>-<label> whose manifest says complete."""
    for d in sorted(Path(results_root).glob(f"*-{label}"), reverse=True):
        try:
            if read_manifest(d).status == "complete":
                return d
        except ContractError:
            continue
    return None


def _section_doc(label: str, run: Path | None, results_root: Path, example_dir: Path, read) -> dict | None:
    """The <label>.json of ``run``, else of the newest complete <label> run, else the one
    the example already carries."""
    run = run or newest_complete(results_root, label)
    if run is not None:
        return read(run)
    kept = example_dir / f"{label}.json"
    return read_document(kept) if kept.exists() else None


def _comparison_doc(run: Path | None, results_root: Path, example_dir: Path) -> dict | None:
    """The collector comparison's document: of ``run``, else of the newest complete
    collectors run, else the one the example already carries."""
    from reports.comparison import read_comparison
    run = run or newest_complete(results_root, "collectors")
    if run is not None:
        return read_comparison(run)
    kept = example_dir / "comparison.json"
    return read_document(kept) if kept.exists() else None


def write_example(run_dir: Path, capacity_run: Path | None = None, results_root: Path = ROOT / "results",
                  example_dir: Path = EXAMPLE_DIR, summary_dir: Path = ROOT,
                  steps_run: Path | None = None, collectors_run: Path | None = None) -> list[Path]:
    """Render `run_dir` into docs/example/ and OPTIMIZATION_SUMMARY.md at the root."""
    from edgebench.steps import read_steps
    from reports.capacity import capacity_blocks, read_capacity
    from reports.capacity_plots import make_capacity_plots
    from reports.contract import read_summary
    from reports.html import render_html
    from reports.markdown import render_markdown
    from reports.render import render_run
    from reports.steps_section import steps_blocks

    run_dir = Path(run_dir).resolve()
    # read before the folder is replaced
    steps = _section_doc("steps", steps_run, results_root, example_dir, read_steps)
    capacity = _section_doc("capacity", capacity_run, results_root, example_dir, read_capacity)
    comparison = _comparison_doc(collectors_run, results_root, example_dir)
    if example_dir.exists():
        shutil.rmtree(example_dir)
    example_dir.mkdir(parents=True)
    written = render_run(run_dir, out_dir=example_dir)
    for name in ("summary.json", "manifest.json"):
        shutil.copy2(run_dir / name, example_dir / name)
    for f in run_dir.glob("*/profile/*"):   # the profile files the summary links to
        if f.name in KEEP:
            dest = example_dir / f.relative_to(run_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    summary = read_summary(run_dir / "summary.json")
    from reports.plots import GRAPHS
    images = [{"key": key, "title": title, "path": str(example_dir / f"{key}.png")}
              for key, title, *_ in GRAPHS if (example_dir / f"{key}.png").exists()]
    extra: list = []
    if steps is not None:
        written.append(write_json_atomic(example_dir / "steps.json", steps))
        extra += steps_blocks(steps)
    if capacity is not None:
        written.append(write_json_atomic(example_dir / "capacity.json", capacity))
        cap_images = make_capacity_plots(capacity, example_dir)
        written += [Path(i["path"]) for i in cap_images]
        extra += capacity_blocks(capacity, cap_images)
    if comparison is not None:
        from reports.comparison import comparison_blocks, make_comparison_plots
        written.append(write_json_atomic(example_dir / "comparison.json", comparison))
        cmp_images = make_comparison_plots(comparison, example_dir)
        written += [Path(i["path"]) for i in cmp_images]
        extra += comparison_blocks(comparison, cmp_images)
    (example_dir / "OPTIMIZATION_SUMMARY.md").unlink(missing_ok=True)  # one copy: the root's
    written.append(render_html(summary, example_dir, images, run_dir, extra=extra))
    written.append(render_markdown(summary, summary_dir, images, run_dir=example_dir, extra=extra))
    for doc in sorted(example_dir.glob("*.json")):
        write_json_atomic(doc, portable_paths(read_document(doc)))
    return written


# an absolute path into a checkout ends in one of its top-level folders; the package
# folder is found last, as the checkout itself is often called edgebench too
_DATA_FOLDER = re.compile(r"/(results|docs|\.venv)(/|$)")
_PACKAGE_FOLDER = "/edgebench/"


def portable_paths(doc):
    """``doc`` with absolute paths into the checkout it was measured in made relative to
    that checkout (``/home/x/edgebench/results/run`` -> ``results/run``): the example is
    published, and where it was rendered is nobody's business and true nowhere else."""
    if isinstance(doc, dict):
        return {k: portable_paths(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [portable_paths(v) for v in doc]
    if isinstance(doc, str) and doc.startswith("/"):
        data = _DATA_FOLDER.search(doc)
        if data:
            return doc[data.start() + 1:]
        package = doc.rfind(_PACKAGE_FOLDER)
        return doc[package + 1:] if package >= 0 else doc
    return doc
