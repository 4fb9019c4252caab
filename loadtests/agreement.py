"""Locust against an independent client, side by side: the figures of docs/loadtests.md.

Each round runs Locust (``scrapers`` at ``rate``/s, /metrics only) with a probe beside it
at the same total rate, at the same time, and prints both clients' /metrics p50 and p95
over the steady window, how late Locust's requests left (start − intended) and Locust's
CPU per request::

    bin/edgebench agreement --target http://127.0.0.1:8000 --rounds 3 --seconds 15
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from loadtests import samples as S
from loadtests.runner import run_load
from loadtests.spec import LoadSpec


def one_round(target: str, out: Path, spec: LoadSpec) -> dict:
    probe_csv = out / "probe.csv.gz"
    probe = subprocess.Popen([sys.executable, "-m", "loadtests.probe", "--target", target, "--path", "/metrics",
                              "--rate", str(spec.scrapers * spec.scrape_rate), "--duration", str(spec.duration_s + 6),
                              "--out", str(probe_csv)], stdout=subprocess.DEVNULL)
    try:
        res = run_load(target, out / "locust", spec)
        probe.wait(timeout=60)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    ours = S.steady(S.read_samples(res.requests_csv), res.steady_start, res.steady_end)
    theirs = S.steady(S.read_samples(probe_csv), res.steady_start, res.steady_end)
    late_ms = (ours["start"] - ours["intended"]) * 1000.0
    return {"locust_p50": S.percentile_ms(ours["latency_ms"], 50), "locust_p95": S.percentile_ms(ours["latency_ms"], 95),
            "probe_p50": S.percentile_ms(theirs["latency_ms"], 50), "probe_p95": S.percentile_ms(theirs["latency_ms"], 95),
            "late_p50": S.percentile_ms(late_ms, 50), "late_p95": S.percentile_ms(late_ms, 95),
            "cpu_ms_per_request": (res.loadgen_cpu_s_per_request or float("nan")) * 1000.0}


FORMAT = ("locust p50 {locust_p50:.2f} p95 {locust_p95:.2f} | probe p50 {probe_p50:.2f} p95 {probe_p95:.2f} ms"
          " | sent late p50 {late_p50:.3f} p95 {late_p95:.3f} ms | Locust CPU {cpu_ms_per_request:.2f} ms/request")


def agreement(target: str, rounds: int, spec: LoadSpec, say=print) -> dict:
    """``rounds`` rounds side by side; says each round's figures and returns their medians."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgebench-agreement-") as tmp:
        for i in range(rounds):
            rows.append(one_round(target, Path(tmp) / str(i), spec))
            say(f"round {i + 1}: " + FORMAT.format(**rows[-1]))
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    say("median:  " + FORMAT.format(**med))
    return med
