"""reports/: summary, graphs and documents on a constructed results directory."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures_results import ALLOC_SITES, MIB, build_run  # noqa: E402

from plumbing.errors import EdgebenchError  # noqa: E402
from reports import ReportError, load_run, render_run  # noqa: E402
from reports.markdown import render_markdown, round_sig  # noqa: E402
from reports.numbers import human  # noqa: E402
from reports.summary import build_summary, get_path  # noqa: E402

pytestmark = pytest.mark.xdist_group("reports")  # its module fixtures are built once (make test)

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ["latency_over_time", "latency_cdf", "throughput_failures", "collector_view", "memory", "cpu",
          "memory_budget", "per_request", "top_functions"]
REQUIRED = ["variant", "collector", "duration_s", "requests", "failures", "throughput_rps", "latency_ms",
            "server_scrape_p95_ms", "cpu_ms_per_request", "mem_peak_mb", "mem_steady_mb",
            "mem_slope_kb_per_request", "oom_kills", "restarts", "throttled_ratio"]
NUM = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The constructed run rendered whole: summary.json, the graphs (matplotlib's layout makes
    this the costly part, seconds of CPU), OPTIMIZATION_SUMMARY.md and report.html."""
    run_dir, expected = build_run(tmp_path_factory.mktemp("results"))
    paths = render_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    return run_dir, expected, paths, summary


@pytest.fixture(scope="module")
def summarised(tmp_path_factory):
    """The constructed run's summary.json and its OPTIMIZATION_SUMMARY.md without the graphs:
    what the figure and document tests need, in a fraction of a second. The markdown path is
    the fourth item, where ``rendered`` has the written paths."""
    from reports.summary import write_summary
    run_dir, expected = build_run(tmp_path_factory.mktemp("results"))
    write_summary(build_summary(load_run(run_dir)), run_dir / "summary.json")
    summary = json.loads((run_dir / "summary.json").read_text())
    images = [{"key": g, "title": g, "path": str(run_dir / "report" / f"{g}.png")} for g in GRAPHS]
    md = render_markdown(summary, run_dir / "report", images, run_dir)
    return run_dir, expected, md, summary


def _numbers(summary) -> list[float]:
    out = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out.append(float(x))
    walk(summary)
    return out


def _matches(token: str, values: list[float]) -> bool:
    """The token is a summary.json number shown with three significant digits."""
    v = float(token.replace(",", ""))
    return any(round_sig(s) == v or abs(v - s) <= 1e-9 for s in values)


# A number as a person reads it (reports.numbers.human), and what turns a summary figure in its
# catalogue unit into the shown one: 112 B is 0.000107 MB x 2**20, 730 µs is 0.730 ms x 1000.
HUMAN = re.compile(r"(?<![\w.])([-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)"
                   r"(?: (µs|ms/s|ms|s|B/s|KB/s|MB/s|B|KB|MB|GB|cores|%|req/s)(?![\w/]))?")
SHOWN_PER_CATALOGUE = {None: (1,), "µs": (1000,), "ms": (1,), "s": (1, 1e-3), "B": (2**20, 1024, 1),
                       "KB": (1024, 1, 1 / 1024), "MB": (1, 1 / 1024), "GB": (1 / 1024,), "B/s": (1,),
                       "KB/s": (1 / 1024,), "MB/s": (1 / 2**20,), "cores": (1,), "ms/s": (1000,),
                       "%": (1, 100), "req/s": (1,)}


def _human_tokens(text: str) -> list[tuple[str, str | None]]:
    return [(n, u or None) for n, u in HUMAN.findall(text)]


def _matches_human(number: str, unit: str | None, values: list[float]) -> bool:
    """The shown number (with its unit) is a summary.json figure converted and rounded to
    three significant digits."""
    v = float(number.replace(",", ""))
    whole = unit in ("B", "B/s")          # bytes below 1,000 print whole
    return any(round_sig(s * k) == v or abs(v - s * k) <= 1e-9 or (whole and round(s * k) == v)
               for k in SHOWN_PER_CATALOGUE[unit] for s in values)


def _table_cells(md: str):
    """(section heading, first cell, other cells) of every table row outside Environment."""
    section = ""
    rows = []
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            section = line.lstrip("# ")
        if not line.startswith("|") or section == "Environment":
            continue
        if re.match(r"^\|[\s\-:|]+\|$", line):
            continue
        if i + 1 < len(lines) and re.match(r"^\|[\s\-:|]+\|$", lines[i + 1]):
            continue                                    # header row
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.append((section, cells[0], cells[1:]))
    return rows


# ---------------------------------------------------------------- summary

@pytest.mark.slow
def test_summary_has_required_keys_and_known_answers(rendered):
    run_dir, expected, _, summary = rendered
    assert summary["run_id"] == run_dir.name
    assert {"run_id", "generated_at", "manifest", "scenarios", "comparisons", "missing"} <= set(summary)
    assert summary["manifest"]["machine"]["cores"] == 2
    assert set(summary["scenarios"]) == {"baseline-vm", "optimized-vm", "optimized-prom"}
    for name, s in summary["scenarios"].items():
        for k in REQUIRED:
            assert k in s, (name, k)
        e = expected[name]
        assert s["requests"] == e["requests"] and s["failures"] == e["failures"]
        for q in ("p50", "p95", "p99", "max"):
            assert s["latency_ms"][q] == pytest.approx(e["latency_ms"][q])
        assert s["cpu_ms_per_request"] == pytest.approx(e["cpu_ms_per_request"])
        assert s["cpu_ms_per_scrape"] == pytest.approx(e["cpu_ms_per_scrape"])
        assert s["server_scrape_p95_ms"] == pytest.approx(e["server_scrape_p95_ms"])
        assert s["throttled_ratio"] == pytest.approx(e["throttled_ratio"])
        assert s["oom_kills"] == e["oom_kills"] and s["restarts"] == e["restarts"]
        assert s["duration_s"] == pytest.approx(60.0)
        assert s["throughput_rps"] == pytest.approx(e["completed"] / 60.0)
        assert s["collector_disk_write_bytes_per_s"] == pytest.approx(e["collector_disk_write_bytes_per_s"])
        assert s["collector_cpu_cores"] == pytest.approx(e["collector_cpu_cores"])
        assert s["mem_peak_mb"]["sensor-service"] <= 50.0 + 1e-6
        if e["mem_slope_kb_per_request"] is not None:
            assert abs(s["mem_slope_kb_per_request"] - e["mem_slope_kb_per_request"]) \
                < 4 * s["mem_slope_stderr_kb_per_request"]
    assert summary["scenarios"]["baseline-vm"]["mem_per_scrape_mb"] == pytest.approx(0.5, rel=0.01)
    cmp = summary["comparisons"]["baseline-vm vs optimized-vm"]["metrics"]
    assert cmp["cpu_ms_per_request"]["ratio"] == pytest.approx(
        expected["baseline-vm"]["cpu_ms_per_request"] / expected["optimized-vm"]["cpu_ms_per_request"])
    coll = summary["comparisons"]["optimized-prom vs optimized-vm"]["metrics"]
    assert coll["collector_disk_write_bytes_per_s"]["ratio"] == pytest.approx(6.0)
    # only optimized-prom has no profile/ (the fixture, like `make profile`, profiles the VM scenarios)
    assert summary["missing"] == [
        "optimized-prom: scrape_alloc_peak_mb, scrape_alloc_retained_mb, scrape_alloc_top_site: no profile/ "
        "directory (tracemalloc of one /metrics scrape: run `make profile`)"]


def test_scrape_allocation_figures_match_the_profile_files(summarised):
    run_dir, expected, _, summary = summarised
    for name, s in summary["scenarios"].items():
        e = expected[name]
        for key in ("scrape_alloc_peak_mb", "scrape_alloc_retained_mb"):
            if e[key] is None:
                assert s[key] is None, (name, key)
            else:
                assert s[key] == pytest.approx(e[key]), (name, key)
        if e["scrape_alloc_top_site"] is None:
            assert s["scrape_alloc_top_site"] is None
        else:
            assert s["scrape_alloc_top_site"]["site"] == e["scrape_alloc_top_site"]["site"]
            assert s["scrape_alloc_top_site"]["size_mb"] == pytest.approx(e["scrape_alloc_top_site"]["size_mb"])
            assert s["scrape_alloc_top_site"]["count"] == e["scrape_alloc_top_site"]["count"]
    b = summary["scenarios"]["baseline-vm"]
    # the baseline's two 5 MB data_blob copies, read back from the CSV: (10000098 + 524288 + 6840 + 2280) / MiB
    assert b["scrape_alloc_peak_mb"] == pytest.approx((10_000_098 + 524_288 + 6_840 + 2_280) / MIB)
    assert b["scrape_alloc_top_site"]["site"] == "service/burden.py:26"
    assert [x["site"] for x in b["scrape_alloc_peak_sites"]] == [
        "service/burden.py:26", "prometheus_client/exposition.py:309", "threading.py:265"]   # top 3
    assert [x["site"] for x in b["scrape_alloc_retained_sites"]] == ["service/burden.py:50", "threading.py:265"]
    cmp = summary["comparisons"]["baseline-vm vs optimized-vm"]["metrics"]["scrape_alloc_peak_mb"]
    assert cmp["a"] == pytest.approx(b["scrape_alloc_peak_mb"])
    assert cmp["b"] == pytest.approx((40_960 + 6_480) / MIB)
    assert cmp["ratio"] == pytest.approx(b["scrape_alloc_peak_mb"] / cmp["b"])
    o = summary["scenarios"]["optimized-vm"]
    assert [c["function"] for c in o["profile_diff"]] == [       # top 5 by |delta|, "same" left out
        "burn_cpu", "generate_latest", "handle", "read_sensor", "copy_blob"]
    assert o["profile_diff_before_top"]["function"] == "burn_cpu"
    assert [t["function"] for t in b["profile_top_functions"]] == ["burn_cpu", "copy_blob", "generate_latest",
                                                                   "handle"]
    assert b["profile_top_functions"][0]["line"] == 42 and b["profile_top_functions"][0]["self_pct"] == 81.0


def _section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_profile_section_numbers_come_from_summary_and_files(summarised):
    run_dir, _, _, summary = summarised
    md = (run_dir / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    sec = _section(md, "Where the time and memory go")
    values = _numbers(summary)
    checked = 0
    for line in sec.splitlines():
        if line.startswith("#") or line.startswith("- ["):      # headings, profile links
            continue
        for tok, unit in _human_tokens(line):
            assert _matches_human(tok, unit, values), (tok, unit, line)
            checked += 1
    assert checked > 60
    base = sec.split("### baseline-vm", 1)[1].split("\n### ", 1)[0]
    opt = sec.split("### optimized-vm", 1)[1].split("\n### ", 1)[0]
    assert "burn_cpu (service/baseline.py:42) takes 81.0 % of on-CPU samples; it is gone in the optimized " \
           "variant (optimized-vm)." in base
    peak = sum(b for _, _, b, _ in ALLOC_SITES["baseline"]["allocation_peak"]) / MIB
    assert f"At its peak one baseline-vm scrape holds {human(peak, 'MB')}" in base
    assert f"{human(10_000_098 / MIB, 'MB')} of it at service/burden.py:26 in 2 blocks" in base
    # the allocation tables are the CSV rows, largest first, top 3
    peak_part = base.split("at a scrape's peak", 1)[1].split("left after a scrape", 1)[0]
    sites = {c[0]: c[1:] for c in ([x.strip() for x in ln.strip("|").split(" | ")]
                                    for ln in peak_part.splitlines() if ".py:" in ln)}
    for f, ln, b, c in ALLOC_SITES["baseline"]["allocation_peak"][:3]:
        short = f.split("site-packages/")[-1].replace("/usr/lib/python3.11/", "") \
            .replace("/home/robot/edgebench/", "")
        cells = sites[f"{short}:{ln}"]
        assert cells[0] == human(b / MIB, "MB") and int(cells[1].replace(",", "")) == c
    assert "waitress/task.py:558 | 0.002174" not in base          # the 4th site is not shown
    # top functions: the CSV's rows by self time
    assert "| burn_cpu | service/baseline.py:42 | 81.0 | 810 |" in base
    # changes against the baseline profile, top 5 by |delta|
    assert "| burn_cpu | service/baseline.py | gone | 81.0 | 0 | -81.0 |" in opt
    assert "| generate_latest | prometheus_client/exposition.py | grew | 4.20 | 38.0 | +33.8 |" in opt
    assert "json_dumps | json/encoder.py | new" not in opt and "| idle |" not in opt
    assert "](../optimized-vm/profile/speedscope.json)" in opt and "](../optimized-vm/profile/flamegraph.svg)" in opt
    assert "### optimized-prom" not in sec                      # not profiled: no subsection
    findings = _section(md, "Findings")
    from reports.glance import human_mb
    assert f"holds {human_mb(peak)} of Python allocations in the baseline" in findings


@pytest.mark.slow  # draws every graph
def test_every_graph_and_both_documents_are_written(rendered):
    run_dir, _, paths, summary = rendered
    report = run_dir / "report"
    for g in GRAPHS:
        p = report / f"{g}.png"
        assert p in paths and p.stat().st_size > 10_000, g
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report / "OPTIMIZATION_SUMMARY.md") in paths and (report / "report.html") in paths
    assert run_dir / "summary.json" in paths
    assert not list(report.glob(".*tmp*"))               # atomic writes leave no temporaries


def test_markdown_numbers_all_come_from_summary(summarised):
    run_dir, _, _, summary = summarised
    md = (run_dir / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    values = _numbers(summary)
    rows = _table_cells(md)
    assert len(rows) > 60
    checked = 0
    for section, label, cells in rows:
        if section == "At a glance":  # human units and shares: test_glance_cells_are_summary_figures
            continue
        for c in cells:
            for tok, unit in _human_tokens(c):
                assert _matches_human(tok, unit, values), (section, label, c)
                checked += 1
    assert checked > 150
    findings = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    for tok, unit in _human_tokens(findings):  # a figure in a person's unit (B, KB, ms/s): the summary's, scaled
        assert _matches_human(tok, unit, values), (tok, unit)
    # spot checks: a row's cells are that figure of each scenario
    per = {label: cells for section, label, cells in rows if section == "All figures per scenario"}
    order = ["baseline-vm", "optimized-vm", "optimized-prom"]
    for i, n in enumerate(order):
        s = summary["scenarios"][n]
        assert per["Service CPU per request"][i] == human(s["cpu_ms_per_request"], "ms")
        assert float(per["OOM kills (whole scenario)"][i]) == s["oom_kills_total"]
        assert float(per["OOM kills (steady window)"][i]) == s["oom_kills"]
        cell = per["/metrics p95, service histogram"][i]
        assert cell.startswith(human(s["server_scrape_p95_ms"], "ms") + " (bucket")
    # the histogram p95 is labelled with the bucket it was interpolated in
    assert per["/metrics p95, service histogram"][0] == "1.75 s (bucket 1,000–2,500 ms)"
    assert per["/metrics p95, service histogram"][1] == "9.75 ms (bucket 5.00–10.0 ms)"
    assert "baseline-vm was OOM-killed 2 times" in md
    assert "22.7× less CPU per request" in md
    assert "](latency_over_time.png)" in md and "](../baseline-vm/profile/flamegraph.svg)" in md
    assert "edgebench bench --duration 60" in md and "Test CPU @ 2.0GHz" in md


@pytest.mark.slow  # links the graphs drawn
def test_markdown_elsewhere_links_images_relative(rendered, tmp_path):
    run_dir, _, _, summary = rendered
    images = [{"key": g, "title": g, "path": str(run_dir / "report" / f"{g}.png")} for g in GRAPHS]
    p = render_markdown(summary, tmp_path, images, run_dir)
    text = p.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(GRAPHS)  # every graph is linked, so the loop below checks something
    for link in links:
        assert not link.startswith("/") and (tmp_path / link).resolve().exists(), link


@pytest.mark.slow  # draws every graph
def test_html_is_self_contained(rendered):
    run_dir, _, _, _ = rendered
    html = (run_dir / "report" / "report.html").read_text()
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) == len(GRAPHS) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<table>" in html and "Findings" in html and 'href="../baseline-vm/profile/flamegraph.svg"' in html


@pytest.mark.slow
def test_html_renders_in_headless_chromium(rendered, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium) - cannot check the HTML renders")
    from PIL import Image
    run_dir = rendered[0]
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
           (run_dir / "report" / "report.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=60)
    assert shot.exists(), "chromium wrote no screenshot"
    im = Image.open(shot).convert("RGB")
    assert im.size == (1280, 2000)
    small = im.resize((320, 500))
    colours = small.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 20
    import numpy as np
    px = np.asarray(small, dtype=int)
    non_white = int((px.sum(axis=2) < 3 * 240).sum())
    assert non_white > 0.02 * px.shape[0] * px.shape[1]


# ---------------------------------------------------------------- incomplete runs

@pytest.mark.slow
def test_missing_scenario_renders_and_says_so(tmp_path):
    run_dir, _ = build_run(tmp_path, scenarios=("baseline-vm", "optimized-vm"), profile=False)
    paths = render_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["scenarios"]) == {"baseline-vm", "optimized-vm"}
    miss = " | ".join(summary["missing"])
    assert "scenario optimized-prom: planned but no results directory" in miss
    assert "VictoriaMetrics vs Prometheus" in miss
    assert "top_functions.png skipped" in miss
    assert not (run_dir / "report" / "top_functions.png").exists()
    md = (run_dir / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    assert "planned but no results directory" in md and "## Not measured" in md
    # no profile files: the allocation figures are null, listed, and the documents say "not measured"
    for n in ("baseline-vm", "optimized-vm"):
        s = summary["scenarios"][n]
        assert s["scrape_alloc_peak_mb"] is None and s["scrape_alloc_retained_mb"] is None
        assert s["scrape_alloc_top_site"] is None
        assert f"{n}: scrape_alloc_peak_mb, scrape_alloc_retained_mb, scrape_alloc_top_site: no profile/" in miss
    sec = _section(md, "Where the time and memory go")
    assert "CPU profile and per-scrape allocations: not measured" in sec
    per = {label: cells for _, label, cells in _table_cells(md)}
    assert per["Memory one scrape holds at its peak, tracemalloc"][:2] == ["not measured", "not measured"]
    assert "Where the time and memory go" in (run_dir / "report" / "report.html").read_text()
    assert (run_dir / "report" / "report.html") in paths


def test_interrupted_run_covers_what_was_measured(tmp_path):
    run_dir, expected = build_run(tmp_path, status="interrupted", interrupted_scenario="optimized-prom")
    summary = build_summary(load_run(run_dir))
    s = summary["scenarios"]["optimized-prom"]
    e = expected["optimized-prom"]
    assert s["duration_s"] == pytest.approx(30.0)
    assert s["requests"] == e["requests"]
    assert s["cpu_ms_per_request"] == pytest.approx(e["cpu_ms_per_request"])
    assert summary["scenarios"]["baseline-vm"]["duration_s"] == pytest.approx(60.0)
    miss = " | ".join(summary["missing"])
    assert "run status is 'interrupted'" in miss and "cut short" in miss
    md = render_markdown(summary, tmp_path / "out").read_text()
    assert "status is 'interrupted'" in md


@pytest.mark.slow
def test_older_format_renders_with_nulls_listed(tmp_path):
    run_dir, _ = build_run(tmp_path, old_format=True, scenarios=("baseline-vm", "optimized-vm"))
    paths = render_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    s = summary["scenarios"]["optimized-vm"]
    assert s["requests"] > 0 and s["cpu_ms_per_request"] is not None
    assert s["collector_disk_write_bytes_per_s"] is None          # null, not 0
    assert s["loadgen_cpu_seconds"] is None
    miss = " | ".join(summary["missing"])
    assert "scenario.json not found" in miss and "manifest.json not found" in miss
    assert "steady window" in miss and "collector_disk_write_bytes_per_s" in miss
    md = (run_dir / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    assert "not measured" in md
    assert any(p.name == "memory.png" for p in paths)


def test_repeats_are_aggregated_into_medians_with_spread(tmp_path):
    run_dir, expected = build_run(tmp_path, repeats=3, scenarios=("baseline-vm", "optimized-vm"), profile=False)
    summary = build_summary(load_run(run_dir))
    s = summary["scenarios"]["baseline-vm"]
    assert s["repeats"] == 3 and s["repeat_dirs"] == ["baseline-vm", "baseline-vm.r2", "baseline-vm.r3"]
    per_repeat = [e["cpu_ms_per_request"] for e in (expected["baseline-vm"], expected["baseline-vm.r2"],
                                                      expected["baseline-vm.r3"])]
    assert s["cpu_ms_per_request"] == pytest.approx(per_repeat[1])
    assert s["spread"]["cpu_ms_per_request"] == pytest.approx([per_repeat[0], per_repeat[2]])
    assert s["requests"] == expected["baseline-vm"]["requests"] and "requests" not in s["spread"]
    assert s["spread_confidence"] == pytest.approx(0.75)
    md = render_markdown(summary, tmp_path / "out").read_text()
    assert "41.6 ms (37.8–45.4 ms)" in md              # three significant digits, min–max of 3 repeats
    assert "holds the median with 75.0 % confidence" in md
    # comparisons carry the interval too; a spread that rounds to one number is not printed
    assert "(41.6 ms (37.8–45.4 ms) → 1.83 ms (1.67–2.00 ms), -95.6 %)" in md
    assert "| 41.6 ms (37.8–45.4 ms) | 1.83 ms (1.67–2.00 ms) | -95.6 % |" in md
    assert "1.75 s (bucket 1,000–2,500 ms) (baseline)" in md
    assert not re.search(r"\(([\d.,]+)( \S+)?–\1( \S+)?\)", md)


@pytest.mark.slow
def test_not_a_run_raises_one_line_error(tmp_path):
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "requests.csv.gz").write_bytes(b"")       # loose load-test output is not a run
    with pytest.raises(ReportError) as e:
        load_run(tmp_path)
    assert "not an edgebench run" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ReportError):
        load_run(tmp_path / "nope")
    out = subprocess.run([sys.executable, "-m", "edgebench", "report", "--run", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "not an edgebench run" in out.stderr
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "report").exists()


# ---------------------------------------------------------------- the figure catalogue

def test_every_catalogue_figure_is_in_the_summary_and_computed(summarised):
    _, _, _, summary = summarised
    from reports.figures import CATALOGUE
    s = summary["scenarios"]["baseline-vm"]
    for f in CATALOGUE:
        for path in f.keys:
            assert path.split(".")[0] in s, f.name
    # the new-format baseline scenario measures every figure (none is null)
    nulls = [p for f in CATALOGUE for p in f.keys if get_path(s, p) is None]
    assert nulls == [], nulls


def test_catalogue_figures_known_answers(summarised):
    _, expected, _, summary = summarised
    for name, s in summary["scenarios"].items():
        e = expected[name]
        assert s["requests_intended"] == e["requests_intended"]
        assert s["requests"] == e["requests"]
        assert s["requests_completed"] == e["completed"]
        assert s["metrics_failure_ratio"] == pytest.approx(e["metrics_failure_ratio"])
        # the throttled ratio divides by the kernel's nr_periods (6 a second), not wall-clock periods
        assert s["throttled_ratio"] == pytest.approx(e["throttled_ratio"])
        assert s["throttled_ratio_basis"].startswith("nr_throttled / nr_periods")
        # the kernel peak sees the scrape temporary the samples miss
        assert s["service_mem_peak_mb"] == pytest.approx(e["mem_peak_sampled_mb"])
        assert s["service_mem_peak_kernel_mb"] == pytest.approx(e["mem_peak_kernel_mb"])
        assert s["service_mem_peak_kernel_window"] == "steady window"
        # CPU per scrape divides by the scrapes the service served (its histogram, 2 a second)
        assert s["cpu_ms_per_scrape"] == pytest.approx(e["cpu_ms_per_scrape"])
        assert s["server_scrapes"] == pytest.approx(120.0)
        assert s["cpu_ms_per_scrape_basis"].startswith("scrapes served")
        # latency from the intended start = the delay before sending + service time
        for q in ("p50", "p95", "p99", "max"):
            assert s["scrape_latency_from_intended_ms"][q] == pytest.approx(
                s["scrape_latency_ms"][q] + e["scrape_delay_ms"])
    b = summary["scenarios"]["baseline-vm"]
    assert b["request_counts_by_endpoint"]["/metrics"]["intended"] == expected["baseline-vm"]["scrapes_due"]
    assert b["request_counts_by_endpoint"]["/metrics"]["sent"] == \
        expected["baseline-vm"]["scrapes_due"] - expected["baseline-vm"]["scrapes_never_sent"]
    assert expected["baseline-vm"]["scrapes_never_sent"] > 0
    ep = b["latency_ms_by_endpoint"]["/metrics"]       # due, and not ok (never sent included)
    assert ep["failures"] / ep["count"] == pytest.approx(b["metrics_failure_ratio"])
    # the budgets' OOM kills count the whole scenario; the steady-window count is its own figure
    assert b["oom_kills_total"] == 2 and b["oom_kills"] == 2


def test_cpu_per_scrape_counts_collector_scrapes_from_the_histogram(tmp_path):
    run_dir, expected = build_run(tmp_path, scenarios=("optimized-vm",), profile=False)
    f = run_dir / "optimized-vm" / "collector" / "scrape_duration_buckets.json"
    data = json.loads(f.read_text())
    for series in data["data"]["result"]:          # 3 scrapes a second served: 2 by the load, 1 by the collector
        series["values"] = [[t, repr(float(v) * 1.5)] for t, v in series["values"]]
    f.write_text(json.dumps(data))
    s = build_summary(load_run(run_dir))["scenarios"]["optimized-vm"]
    assert s["server_scrapes"] == pytest.approx(180.0)
    assert s["cpu_ms_per_scrape"] == pytest.approx(expected["optimized-vm"]["cpu_ms_per_scrape"] / 1.5)
    f.unlink()                                      # without the histogram: the client's scrapes, labelled
    s = build_summary(load_run(run_dir))["scenarios"]["optimized-vm"]
    assert s["cpu_ms_per_scrape"] == pytest.approx(
        0.02 * 60 * 1000 / expected["optimized-vm"]["scrape_requests"])
    assert "upper bound" in s["cpu_ms_per_scrape_basis"]


def test_kernel_peak_without_reset_covers_the_cgroups_life(tmp_path):
    run_dir, _ = build_run(tmp_path, scenarios=("baseline-vm",), profile=False)
    sj = run_dir / "baseline-vm" / "scenario.json"
    meta = json.loads(sj.read_text())
    meta["peak_reset_at"] = None
    sj.write_text(json.dumps(meta))
    res = pd.read_csv(run_dir / "baseline-vm" / "resources.csv")
    res.loc[(res["component"] == "sensor-service") & (res["t"] < meta["steady_start"]), "mem_peak_bytes"] = 49 * MIB
    res.to_csv(run_dir / "baseline-vm" / "resources.csv", index=False)
    s = build_summary(load_run(run_dir))["scenarios"]["baseline-vm"]
    assert s["service_mem_peak_kernel_window"] == \
        "since the cgroup was created (the kernel's mark was not reset at the steady start)"
    assert s["service_mem_peak_kernel_mb"] >= 49.0
    meta["peak_scope"] = "since the cgroup was created (Linux 6.1.0-57-amd64 cannot reset memory.peak; " \
                         "Linux 6.12 and later can)"                # what the sampler wrote on a v2 guest
    sj.write_text(json.dumps(meta))
    summary = build_summary(load_run(run_dir))
    s = summary["scenarios"]["baseline-vm"]
    assert s["service_mem_peak_kernel_window"] == meta["peak_scope"]
    md = render_markdown(summary, tmp_path / "out").read_text()
    assert f"Service memory peak, kernel high-water mark: not the steady window. baseline-vm: {meta['peak_scope']}." in md


def test_older_format_falls_back_and_labels_it(tmp_path):
    run_dir, expected = build_run(tmp_path, old_format=True, scenarios=("baseline-vm",), profile=False)
    s = build_summary(load_run(run_dir))["scenarios"]["baseline-vm"]
    assert s["throttled_ratio"] == pytest.approx(expected["baseline-vm"]["throttled_ratio"])   # 3 / 10
    assert "lower bound" in s["throttled_ratio_basis"]
    assert s["service_mem_peak_kernel_mb"] is None
    assert any("mem_peak_bytes" in m for m in s["missing"])
    # requests.csv.gz without intended/sent: every request was sent when it was due
    assert s["requests_intended"] == s["requests"]
    assert s["scrape_latency_from_intended_ms"] == s["scrape_latency_ms"]


def test_component_roles_come_from_scenario_json_not_names(tmp_path):
    run_dir, expected = build_run(tmp_path, scenarios=("optimized-vm",), profile=False)
    d = run_dir / "optimized-vm"
    res = pd.read_csv(d / "resources.csv")
    res["component"] = res["component"].replace({"sensor-service": "robot-app", "victoriametrics": "tsdb"})
    res.to_csv(d / "resources.csv", index=False)
    meta = json.loads((d / "scenario.json").read_text())
    meta["components"] = {"robot-app": "service", "tsdb": "collector"}
    (d / "scenario.json").write_text(json.dumps(meta))
    s = build_summary(load_run(run_dir))["scenarios"]["optimized-vm"]
    assert s["service_component"] == "robot-app" and s["collector_component"] == "tsdb"
    assert s["cpu_ms_per_request"] == pytest.approx(expected["optimized-vm"]["cpu_ms_per_request"])
    assert s["collector_cpu_cores"] == pytest.approx(expected["optimized-vm"]["collector_cpu_cores"])


def test_figures_doc_is_generated_from_the_catalogue():
    from reports.figures import catalogue_markdown
    assert (ROOT / "docs" / "figures.md").read_text() == catalogue_markdown(), \
        "regenerate it: .venv/bin/python -m reports.figures > docs/figures.md"


def test_scrape_timeout_is_read_from_the_scrape_config(tmp_path):
    from edgebench.bench import scrape_timeout_s
    assert scrape_timeout_s() == 4.0                                     # stack/scrape.yml
    (tmp_path / "s.yml").write_text("global:\n  scrape_interval: 5s\n  scrape_timeout: 1500ms\n"
                                    "scrape_configs:\n  - job_name: sensor\n"
                                    "    static_configs: [{targets: ['x:1']}]\n")
    assert scrape_timeout_s(tmp_path / "s.yml") == 1.5


def test_stack_budget_comes_from_budgets_yml(summarised, tmp_path):
    import yaml

    from reports.budgets import BudgetError, stack_budget_mb
    budgets = yaml.safe_load((ROOT / "budgets.yml").read_text())["budgets"]
    want = next(b["max"] for b in budgets if b["metric"] == "stack_mem_peak_mb")
    assert summarised[3]["budget_mb"] == want == stack_budget_mb()
    (tmp_path / "b.yml").write_text("budgets:\n  - metric: stack_mem_peak_mb\n    max: 123\n")
    assert stack_budget_mb(tmp_path / "b.yml") == 123.0
    (tmp_path / "b.yml").write_text("budgets:\n  - metric: stack_mem_peak_mb\n    maks: 123\n")
    with pytest.raises(BudgetError, match=r"budgets\[0\]: unknown key 'maks'"):   # a typo fails the report
        stack_budget_mb(tmp_path / "b.yml")


# ---------------------------------------------------------------- presentation

def test_three_significant_digits():
    from reports.markdown import fmt
    assert [fmt(x) for x in (41.25, 37.5, 1234.5, 0.012345, 99.95, 0.0, 5, 1750.0, -3.14159)] == \
        ["41.2", "37.5", "1,230", "0.0123", "100", "0", "5", "1,750", "-3.14"]
    assert fmt(12.345, sign=True) == "+12.3" and fmt(None) == "not measured"


def test_zero_to_zero_reads_no_change_not_not_measured():
    from reports.markdown import _cmp_table
    from reports.summary import _compare
    a = {"oom_kills": 0, "restarts": 0, "cpu_ms_per_request": None, "mem_peak_mb": {}}
    b = {"oom_kills": 0, "restarts": 1, "cpu_ms_per_request": 2.0, "mem_peak_mb": {}}
    cmp = _compare("a", a, "b", b, ("oom_kills", "restarts", "cpu_ms_per_request"), "collector")
    rows = {r[0]: r for r in _cmp_table(cmp, [("OOM", "oom_kills"), ("Restarts", "restarts"),
                                              ("CPU", "cpu_ms_per_request")], "a", "b")[2]}
    assert rows["OOM"] == ["OOM", "0", "0", "no change"]
    assert rows["Restarts"][3] == "not measured"          # 0 -> 1: no percentage exists
    assert rows["CPU"][1:] == ["not measured", "2.00 ms", "not measured"]


def test_histogram_p95_is_labelled_with_its_bucket(summarised):
    _, _, _, summary = summarised
    assert summary["scenarios"]["baseline-vm"]["server_scrape_p95_bucket_ms"] == [1000.0, 2500.0]
    assert summary["scenarios"]["optimized-vm"]["server_scrape_p95_bucket_ms"] == [5.0, 10.0]


# ---------------------------------------------------------------- refusals and the contract

def _run_cli(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_nothing_measured_is_refused_with_one_line(tmp_path):
    run = tmp_path / "20240101T000000Z-bench"
    run.mkdir()
    (run / "manifest.json").write_text("{corrupt")
    out = _run_cli("-m", "edgebench", "report", "--run", str(run))
    assert out.returncode == 2, out
    assert out.stderr.strip().count("\n") == 0 and "nothing was measured" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (run / "summary.json").exists() and not (run / "report").exists()
    (run / "baseline-vm").mkdir()
    (run / "baseline-vm" / "scenario.json").write_text(json.dumps({"name": "baseline-vm"}))
    with pytest.raises(ReportError, match="nothing was measured"):
        load_run(run)


@pytest.mark.slow
def test_rendered_example_without_samples_is_refused(tmp_path):
    ex = tmp_path / "example"
    shutil.copytree(ROOT / "docs" / "example", ex)
    before = (ex / "summary.json").read_bytes()
    out = _run_cli("-m", "edgebench", "report", "--run", str(ex))
    assert out.returncode == 2 and "no raw samples" in out.stderr and "Traceback" not in out.stderr
    assert (ex / "summary.json").read_bytes() == before             # the committed example is untouched


@pytest.mark.slow
def test_newer_results_are_refused_and_older_read(tmp_path):
    from reports import contract
    run_dir, _ = build_run(tmp_path, scenarios=("optimized-vm",), profile=False)
    sj = run_dir / "optimized-vm" / "scenario.json"
    meta = json.loads(sj.read_text())
    sj.write_text(json.dumps({**meta, "scenario_version": contract.SCENARIO_VERSION + 1}))
    with pytest.raises(ReportError, match="newer than this edgebench reads"):
        load_run(run_dir)
    old = {k: v for k, v in meta.items() if k not in ("scenario_version", "components", "peak_reset_at")}
    sj.write_text(json.dumps(old))                              # version 0: roles guessed, and said so
    s = build_summary(load_run(run_dir))["scenarios"]["optimized-vm"]
    assert s["service_component"] == "sensor-service" and s["cpu_ms_per_request"] is not None
    assert any("guessed from the component names" in m for m in s["missing"])
    mf = run_dir / "manifest.json"
    mf.write_text(json.dumps({**json.loads(mf.read_text()), "manifest_version": 99}))
    out = _run_cli("-m", "edgebench", "report", "--run", str(run_dir))
    assert out.returncode == 2 and "manifest version 99 is newer" in out.stderr


def test_contract_round_trip_keeps_unknown_keys(tmp_path):
    from reports import contract
    info = {"name": "B.r1", "variant": "optimized", "components": {"sensor-service": "service"},
            "steady_start": 1.0, "steady_end": 2.0, "load_counts": {"/metrics": {"intended": 4}}}
    contract.write_scenario(tmp_path, info)
    back, version = contract.read_scenario(tmp_path)
    assert version == contract.SCENARIO_VERSION and back.get("load_counts") == info["load_counts"]
    assert back.components == {"sensor-service": "service"} and back.steady_end == 2.0
    with pytest.raises(contract.ContractError, match="unknown component role"):
        contract.write_scenario(tmp_path, {**info, "components": {"x": "database"}})
    assert issubclass(contract.ContractError, EdgebenchError) and issubclass(ReportError, EdgebenchError)


def test_summary_version_is_checked_on_load(summarised, tmp_path):
    from reports import contract
    run_dir = summarised[0]
    assert contract.read_summary(run_dir / "summary.json")["summary_version"] == contract.SUMMARY_VERSION
    old = tmp_path / "summary.json"
    old.write_text(json.dumps({"summary_version": 1, "scenarios": {}}))
    with pytest.raises(contract.ContractError, match="re-render it"):
        contract.read_summary(old)


@pytest.mark.slow
def test_run_dir_manifest_through_the_contract(tmp_path):
    from edgebench.results import RunDir
    from reports import contract
    run = RunDir.create(tmp_path, "bench", "edgebench bench", {"duration_s": 1})
    run.record_scenario("baseline-vm", {"status": "complete"})
    run.update(status="interrupted", note="kept")
    m = contract.read_manifest(run.path)
    assert m.status == "interrupted" and m.scenarios == {"baseline-vm": {"status": "complete"}}
    assert m.extra == {"note": "kept"} and m.manifest_version == contract.MANIFEST_VERSION
    assert oct((run.path / "manifest.json").stat().st_mode & 0o777) == "0o644"


def test_documents_and_comparisons_use_only_catalogue_figures():
    from reports import markdown as M
    from reports import summary as SM
    from reports.figures import BUDGET_FIGURES, GATE_FIGURES, PROFILE_FIGURES, figure
    extra = {"mem_slope_stderr_kb_per_request"}                   # the slope's standard error
    paths = [k for _, k, _ in M.PER_SCENARIO_ROWS] + [k for rows in (M.LATENCY_ROWS, M.CPU_ROWS,
                                                                     M.STABILITY_ROWS, M.COLLECTOR_ROWS)
                                                      for _, k in rows]
    paths += list(SM.VARIANT_METRICS) + list(SM.COLLECTOR_METRICS)
    paths += list(BUDGET_FIGURES.values()) + list(GATE_FIGURES.values())
    for p in paths:
        if p.split(".")[0] in PROFILE_FIGURES or p in extra:
            continue
        f = figure(p)                                             # KeyError: not in the catalogue
        assert p in f.keys, p


def test_cpu_per_scrape_counts_between_collector_scrapes(tmp_path):
    # The collector sees the histogram every 5 s (at 3, 8, 13 … s), queried with a 1 s step:
    # a staircase. Counting between the first and last scrape in the window is exact; the
    # window's edges would count 110 scrapes against 57 s of CPU (+3.6 %).
    from fixtures_results import LE, T0, _prom_matrix
    run_dir, _ = build_run(tmp_path, scenarios=("optimized-vm",), profile=False)
    d = run_dir / "optimized-vm"
    meta = json.loads((d / "scenario.json").read_text())
    meta["steady_end"] = T0 + 67.0
    (d / "scenario.json").write_text(json.dumps(meta))
    steps = T0 + np.arange(0, 73, dtype=float)
    seen = 2.0 * np.maximum(0.0, np.floor((steps - T0 - 3.0) / 5.0) * 5.0 + 3.0)   # count at the last scrape
    series = [({"le": le}, list(zip(steps, seen if float(le.replace("+Inf", "inf")) >= 0.01 else 0 * seen)))
              for le in LE]
    (d / "collector" / "scrape_duration_buckets.json").write_text(json.dumps(_prom_matrix(series)))
    s = build_summary(load_run(run_dir))["scenarios"]["optimized-vm"]
    assert s["cpu_ms_per_scrape"] == pytest.approx(0.02 * 1000 / 2.0)          # 10 ms, exactly
    assert "between the first and last collector scrape" in s["cpu_ms_per_scrape_basis"]


def test_remaining_catalogue_figures_known_answers(summarised):
    from fixtures_results import COLLECTOR, DURATION, T0, WARMUP
    run_dir, expected, _, summary = summarised
    s0, s1 = T0 + WARMUP, T0 + WARMUP + DURATION
    for name, s in summary["scenarios"].items():
        e, d = expected[name], run_dir / name
        base = s["variant"] == "baseline"
        up = json.loads((d / "collector" / "up.json").read_text())["data"]["result"][0]["values"]
        ups = [float(v) for t, v in up if s0 <= t <= s1]
        assert s["collector_up_ratio"] == pytest.approx(sum(ups) / len(ups))
        assert s["collector_scrapes_over_timeout"] == (3 if base else 0)      # 4 s at steps 5, 9, 13
        if not base:
            assert s["collector_scrape_duration_p95_s"] == pytest.approx(0.01)
        assert s["server_scrape_p50_ms"] == pytest.approx(388.888889 if base else 7.5)
        assert s["loadgen_cpu_ms_per_request"] == pytest.approx(3.6 * 1000 / e["requests"])
        c = COLLECTOR[s["collector"]]
        assert s["collector_disk_used_mb"] == pytest.approx((c["used0"] + 10_000 * 70) / MIB)
        res = pd.read_csv(d / "resources.csv")
        w = res[(res["t"] >= s0) & (res["t"] <= s1)]
        per_t = w.pivot_table(index="t", columns="component", values="mem_bytes").sum(axis=1)
        assert s["stack_mem_peak_mb"] == pytest.approx(per_t.max() / MIB)
        assert s["stack_mem_steady_mb"] == pytest.approx(per_t.median() / MIB)
        svc = w[w["component"] == "sensor-service"]["mem_bytes"]
        assert s["service_mem_steady_mb"] == pytest.approx(svc.median() / MIB)
        coll = w[w["component"] == s["collector"]]["mem_bytes"]
        assert s["collector_mem_peak_mb"] == pytest.approx(coll.max() / MIB)
        assert s["collector_mem_peak_kernel_mb"] == pytest.approx(c["mem"] / MIB + 3.0)
        assert s["service_cpu_cores"] == pytest.approx(e["cpu_ms_per_request"] * e["requests"] / 60_000)
        assert s["collector_cpu_ms_per_request"] == pytest.approx(c["cpu"] * 60 * 1000 / e["requests"])
        assert s["sensor_failure_ratio"] == 0.0
        assert s["failure_ratio"] == pytest.approx(e["failures"] / e["requests_intended"])
        assert s["throughput_rps"] == pytest.approx(e["completed"] / 60.0)


UNIT = {"µs": 1e-3, "ms": 1.0, "s": 1e3, "B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def test_glance_cells_are_summary_figures(summarised):
    """The first screen: each value, read back through its unit, is the summary's figure
    (three significant digits), and a share is that figure over the limit it names."""
    run_dir, _, _, summary = summarised
    md = (run_dir / "report" / "OPTIMIZATION_SUMMARY.md").read_text()
    assert md.index("## At a glance") < md.index("## Findings")
    rows = {label: cells for section, label, cells in _table_cells(md) if section == "At a glance"}
    a, b = summary["scenarios"]["baseline-vm"], summary["scenarios"]["optimized-vm"]
    assert "CPU per scrape" not in rows   # the load mixes /sensor in: no per-scrape quotient on the first screen
    keys = {"CPU per request": "cpu_ms_per_request",
            "Service peak memory": "service_mem_peak_mb", "Stack peak, service + collector": "stack_mem_peak_mb"}
    for label, key in keys.items():
        for cell, s in zip(rows[label][:2], (a, b)):
            value, unit = cell.split(" ")[:2]
            assert round_sig(float(value.replace(",", "")) * UNIT[unit]) == pytest.approx(round_sig(s[key]), rel=2e-3), \
                (label, cell, s[key])
    share = rows["Service peak memory"][1]
    assert f"({100 * b['service_mem_peak_mb'] / 50:.0f} % of 50 MB)" in share
    p99 = rows["/metrics p99 from the intended start"][1].split(" ")
    assert round_sig(float(p99[0]) * UNIT[p99[1]]) == pytest.approx(
        round_sig(b["scrape_latency_from_intended_ms"]["p99"]), rel=2e-3)
    counts = b["request_counts_by_endpoint"]["/metrics"]
    assert rows["Failed or omitted scrapes"][1] == f"{counts['intended'] - counts['ok']:,d} of {counts['intended']:,d}"
    assert "Sections: [Findings](#findings)" in md


def test_glance_shows_cpu_per_scrape_only_under_a_scrape_only_load():
    from reports.glance import glance_table

    def summary(sensor_due: int) -> dict:
        counts = {"/metrics": {"intended": 80, "ok": 80}, "/sensor": {"intended": sensor_due, "ok": sensor_due}}
        scen = {"collector": "victoriametrics", "request_counts_by_endpoint": counts}
        return {"scenarios": {"base": {**scen, "cpu_ms_per_scrape": 2.0}, "opt": {**scen, "cpu_ms_per_scrape": 1.0}},
                "comparisons": {"v": {"kind": "variant", "a": "base", "b": "opt",
                                      "metrics": {"cpu_ms_per_scrape": {"a": 2.0, "b": 1.0, "change_pct": -50.0}}}}}
    rows = {r[0]: r for r in glance_table(summary(0))[2]}
    assert rows["CPU per scrape"][1:] == ["2.00 ms", "1.00 ms", "-50.0 %"]
    assert "CPU per scrape" not in {r[0] for r in glance_table(summary(40))[2]}


# ---------------------------------------------------------------- units a person reads

def test_human_units_cross_their_boundaries():
    from reports.numbers import human, human_bytes, human_range
    # sizes: bytes below 1,000 B, then KB, MB, GB (binary), never a number that rounds to 1,000
    assert [human(x, "MB") for x in (3.81e-05, 999 / 2**20, 1000 / 2**20, 0.00944, 999.4 / 1024, 999.6 / 1024,
                                     4.77, 1023.0, 2048.0)] == \
        ["40 B", "999 B", "0.977 KB", "9.67 KB", "999 KB", "0.976 MB", "4.77 MB", "0.999 GB", "2.00 GB"]
    assert human(0.108, "KB") == "111 B" and human(6250.0, "bytes/s") == "6.10 KB/s" and human_bytes(5) == "5 B"
    # durations: µs below 1 ms, s from 1,000 ms
    assert [human(x, "ms") for x in (0.000263, 0.730, 0.9996, 3.74, 999.4, 999.6, 1200.0)] == \
        ["0.263 µs", "730 µs", "1.00 ms", "3.74 ms", "999 ms", "1.00 s", "1.20 s"]
    assert human(4.0, "s") == "4.00 s" and human(0.0005, "s") == "500 µs"
    # CPU: cores from a tenth of a core, ms of CPU per second below
    assert [human(x, "cores") for x in (0.402, 0.1, 0.0999, 0.000263)] == \
        ["0.402 cores", "0.100 cores", "99.9 ms/s", "0.263 ms/s"]
    assert human(0.00625, "ratio") == "0.625 %" and human(1.0, "ratio") == "100 %"
    # negative changes keep their sign and pick the unit by size
    assert human(-0.0250, "MB", sign=True) == "-25.6 KB" and human(-7.54, "MB", sign=True) == "-7.54 MB"
    assert human(2.4e-05, "MB", sign=True) == "+25 B" and human(-0.5, "ms") == "-500 µs"
    # zero reads in the unit's smallest step, None reads "not measured", counts stay whole
    assert [human(0, "MB"), human(0.0, "ms"), human(0.0, "cores"), human(0.0, "ratio")] == \
        ["0 B", "0 ms", "0 ms/s", "0 %"]
    assert all(human(None, u) == "not measured" for u in ("MB", "ms", "cores", "ratio", "count", ""))
    assert human(12345, "count") == "12,345" and human(True, "count") == "yes"
    assert human_range(41.0, 43.0, "MB") == "41.0–43.0 MB" and human_range(0.87, 1.2, "ms") == "870 µs–1.20 ms"


def _fig(before, after, a, b, est, low, high, relative=True, unit="ms"):
    return {"relative": relative, "unit": unit, "before": before, "after": after, "a": a, "b": b,
            "estimate": est, "low": low, "high": high, "rounds": len(a), "error": None}


def test_steps_row_says_when_medians_and_paired_mean_disagree():
    """The example's wsgi-app /metrics p99: medians 3.88 -> 3.74 ms fall, the paired geometric mean
    of B/A reads +41.4 % (two rounds of B near 10 ms): the section says which is which."""
    from reports.steps_section import disagreement, median_round_ratio, medians_change, steps_blocks
    a = [4.1636, 3.2991, 2.9289, 4.2941, 3.8839]
    b = [10.3914, 3.7366, 2.7431, 9.9876, 3.5672]
    p99 = _fig(3.8839, 3.7366, a, b, 1.41415, 0.76592, 2.61102)
    assert medians_change(p99) == pytest.approx(3.7366 / 3.8839)
    assert median_round_ratio(p99) == pytest.approx(3.7366 / 3.2991)      # the round-2 pair's ratio
    text = disagreement("/metrics p99", p99)
    assert text == ("/metrics p99: the medians fall (-3.79 %, ratio of the medians; median of the per-round "
                    "ratios +13.3 %) while the paired mean rises (+41.4 %); its interval holds no change: "
                    "no measured change either way.")
    # the same direction: nothing to say; a difference figure compares B - A with the medians' difference
    assert disagreement("CPU", _fig(1.76, 1.41, [1.8, 1.7], [1.4, 1.4], 0.79, 0.75, 0.83)) is None
    mem = _fig(20.10, 20.09, [20.1, 20.1], [20.09, 20.2], 0.0320, -0.0960, 0.160, relative=False, unit="MB")
    assert medians_change(mem) == pytest.approx(-0.01)
    assert "the medians fall (-10.2 KB, difference of the medians) while the paired mean rises (+32.8 KB)" \
        in disagreement("Memory", mem)
    assert medians_change(_fig(None, 1.0, [], [], None, None, None)) is None
    doc = {"run_id": "r", "status": "complete", "figures": [{"key": "p99", "label": "/metrics p99", "unit": "ms",
                                                              "relative": True}],
           "steps": [{"name": "s", "before": "a", "after": "b", "status": "ok", "rounds": 5,
                      "figures": {"p99": p99}}]}
    blocks = steps_blocks(doc)
    table = next(x for x in blocks if x[0] == "table")
    assert table[1][1:3] == ["Before (median)", "After (median)"] and "mean over rounds" in table[1][3]
    assert table[2][0][1:4] == ["3.88 ms", "3.74 ms", "+41.4 % [-23.4 %, +161 %] (B/A 1.41)"]
    assert ("p", text) == blocks[blocks.index(table) + 1]


def test_a_figure_without_repeats_gets_no_error_bar():
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    from reports.plots import _bars, bar_errors
    one = {"scenarios": {"a": {"cpu_ms_per_request": 50.4}, "b": {"cpu_ms_per_request": 0.73}}}
    three = {"scenarios": {"a": {"cpu_ms_per_request": 41.6, "spread": {"cpu_ms_per_request": [37.8, 45.4]}},
                           "b": {"cpu_ms_per_request": 1.83}}}
    assert bar_errors(one, ["a", "b"], "cpu_ms_per_request") is None
    lo, hi = bar_errors(three, ["a", "b"], "cpu_ms_per_request")
    assert lo == pytest.approx([3.8, 0.0]) and hi == pytest.approx([3.8, 0.0])
    for summary, drawn in ((one, False), (three, True)):
        fig, ax = plt.subplots()
        try:
            assert _bars(ax, summary, ["a", "b"], "cpu_ms_per_request", "CPU", "t") is drawn
            assert any(isinstance(c, ErrorbarContainer) for c in ax.containers) is drawn
            labels = [t.get_text() for t in ax.texts]
            assert labels == (["50.4 ms", "730 µs"] if not drawn else ["41.6 ms", "1.83 ms"])
        finally:
            plt.close(fig)


def test_the_published_example_names_no_path_of_the_machine_it_was_rendered_on():
    from edgebench.example import portable_paths
    assert portable_paths({"a": ["/home/x/edgebench/results/r1/step", "/srv/co/edgebench/__main__.py"],
                           "b": "/usr/bin/prometheus", "c": "/metrics", "d": 3}) == \
        {"a": ["results/r1/step", "edgebench/__main__.py"], "b": "/usr/bin/prometheus", "c": "/metrics", "d": 3}
    example = Path(__file__).resolve().parent.parent / "docs" / "example"
    docs = sorted(example.glob("*.json"))
    assert example / "summary.json" in docs
    for doc in docs:
        text = doc.read_text()
        assert not re.search(r'"/[^"]*/(results|docs|edgebench)/', text), doc.name
