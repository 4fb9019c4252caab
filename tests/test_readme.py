"""The README's headline figures are the committed example's (docs/example/): each row's value
is generated here from the example's documents with the report's own formatters, and each
row names the run those documents came from."""
from __future__ import annotations

import json
import re
from pathlib import Path

from reports.glance import glance_table
from reports.numbers import fmt

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "example"


def headline_rows() -> dict[str, list[str]]:
    """{figure: [value, run, command]} from the README's "Headline figures" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Headline figures", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    return {r[0]: r[1:] for r in rows[2:]}   # past the header and its rule


def _doc(name: str) -> dict:
    return json.loads((EXAMPLE / name).read_text())


def test_the_readme_is_short_and_its_headline_rows_each_name_a_run_and_a_command():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 125
    rows = headline_rows()
    assert len(rows) >= 4
    for figure, (value, run, command) in rows.items():
        assert re.fullmatch(r"\d{8}T\d{6}Z-[a-z]+", run), (figure, run)
        assert command.startswith("`make ") or command.startswith("`bin/edgebench "), (figure, command)


def test_the_readme_figures_are_the_example_summarys_first_screen():
    summary = _doc("summary.json")
    _, _, glance = glance_table(summary)
    rows = headline_rows()
    shown = 0
    for label, a, b, change in glance:
        if label not in rows:
            continue
        value, run, _ = rows[label]
        assert value == f"{a} → {b}" + (f" ({change})" if change else ""), label
        assert run == summary["run_id"], label
        shown += 1
    assert shown >= 3   # CPU per request, memory, latency at least
    assert "CPU per scrape" not in rows   # the example's load mixes /sensor in (see reports/glance.py)


def test_the_readme_capacity_figures_are_the_examples_capacity_run():
    cap = _doc("capacity.json")
    load, largest = cap["analysis"]["load"], cap["analysis"]["series"]["largest"]
    sensor = {s["sensor_rate"] for s in cap["load"]["steps"] if s["axis"] == "scrape"}
    assert len(sensor) == 1
    value, run, _ = headline_rows()[f"Sustainable scrapes at 0.5 CPU / 50 MB, {sensor.pop():g} /sensor/s beside"]
    assert run == cap["run_id"]
    assert value == (f"{load['baseline']['scrape_capacity']['rate']:g} scrapes/s → "   # rates are the steps set
                     f"{load['optimized']['scrape_capacity']['rate']:g} scrapes/s; "
                     f"at most {largest['series']:,} series fit in 50 MB")


def test_the_readme_collector_ratio_is_the_examples_comparison_run():
    cmp = _doc("comparison.json")
    r = cmp["analysis"]["operating_point"]["prometheus_over_victoriametrics_shipped_peak_mb"]
    value, run, _ = headline_rows()["Prometheus / VictoriaMetrics peak memory at the robot's load"]
    assert run == cmp["run_id"]
    assert value == (f"{fmt(r['ratio'])}× ({100 * r['confidence']:.0f} % interval "
                     f"{fmt(r['low'])}–{fmt(r['high'])}, {r['rounds']} rounds)")
