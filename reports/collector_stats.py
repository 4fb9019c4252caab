"""What the collector comparison's measurements support, as pure functions over records
(docs/capacity.md, "The collector comparison"), so tests can build the data they need:

- the settle rule: a collector's memory has settled when the least-squares slope of its
  anonymous memory over the last ``SETTLE_SCRAPES`` scrape intervals is below
  ``SETTLE_FRACTION_PER_MIN`` of its limit per minute;
- the boundary statement: "held N in k of k runs, held M in j of k", never one run;
- bytes per active series: the slope of settled memory against active series, with its
  95 % interval;
- a memory ratio over repeated side-by-side rounds, with its 95 % interval.
"""
from __future__ import annotations

import math
from collections import defaultdict

from scipy import stats

SETTLE_SCRAPES = 10                 # the window: the last 10 scrape intervals (50 s at 5 s)
SETTLE_FRACTION_PER_MIN = 0.01      # settled: |slope| below 1 % of the limit per minute
MIN_REPEATS = 3                     # a boundary stated from fewer runs is marked provisional
CONFIDENCE = 0.95
# Every scrape target adds these series in both collectors: up, scrape_duration_seconds,
# scrape_samples_scraped, scrape_samples_post_metric_relabeling, scrape_series_added.
AUTO_SERIES_PER_TARGET = 5


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def memory_slope(samples: list[tuple[float, float]], window_s: float) -> dict | None:
    """Least-squares slope (bytes per minute) of ``(t, bytes)`` samples over the last
    ``window_s`` seconds; None until the samples cover the window (3 points at least)."""
    pts = [(float(t), float(b)) for t, b in samples if _num(t) is not None and _num(b) is not None]
    if len(pts) < 3:
        return None
    end = pts[-1][0]
    if end - pts[0][0] < window_s:
        return None
    win = [(t, b) for t, b in pts if t >= end - window_s]
    if len(win) < 3 or len({t for t, _ in win}) < 2:
        return None
    r = stats.linregress([t for t, _ in win], [b for _, b in win])
    return {"bytes_per_min": float(r.slope) * 60.0, "window_s": window_s, "points": len(win),
            "mean_bytes": sum(b for _, b in win) / len(win)}


def settled(samples: list[tuple[float, float]], limit_bytes: float, interval_s: float,
            scrapes: int = SETTLE_SCRAPES, fraction: float = SETTLE_FRACTION_PER_MIN) -> dict:
    """The settle rule on ``(t, anonymous bytes)`` samples: ``settled`` is True when the
    slope over the last ``scrapes`` intervals is within ``fraction`` of ``limit_bytes`` per
    minute (either way: memory still falling after a burst has not settled either)."""
    window = scrapes * interval_s
    threshold = fraction * limit_bytes
    s = memory_slope(samples, window)
    if s is None:
        return {"settled": False, "slope_bytes_per_min": None, "threshold_bytes_per_min": threshold,
                "window_s": window, "mean_bytes": None}
    return {"settled": abs(s["bytes_per_min"]) < threshold, "slope_bytes_per_min": s["bytes_per_min"],
            "threshold_bytes_per_min": threshold, "window_s": window, "mean_bytes": s["mean_bytes"]}


FAILURE_WORDS = {"oom": "OOM-killed", "behind": "behind", "failed": "failed"}


def held(record: dict) -> bool:
    """A run held its series when the collector settled (or reached the cap) with every
    scrape on time and no OOM kill."""
    return record.get("status") in ("settled", "capped")


def boundary(records: list[dict], min_repeats: int = MIN_REPEATS) -> dict:
    """The capacity of one (collector, configuration, shape) from all its runs.

    ``held_all``: the largest N held in every run, with every smaller N measured held in
    every run too. ``next``: the smallest measured N above it, held in ``j`` of ``k``
    runs. ``provisional`` when either has fewer than ``min_repeats`` runs. ``statement``
    is the sentence: "held 30,000 in 3 of 3 runs, 50,000 in 1 of 3"."""
    by_n: dict[int, list[bool]] = defaultdict(list)
    why: dict[int, dict[str, int]] = defaultdict(dict)
    for r in records:
        n = r.get("series")
        if isinstance(n, int):
            by_n[n].append(held(r))
            if not held(r):
                why[n][r.get("status")] = why[n].get(r.get("status"), 0) + 1
    levels = [{"series": n, "held": sum(v), "runs": len(v)} for n, v in sorted(by_n.items())]
    best, nxt = None, None
    for lv in levels:
        if lv["held"] == lv["runs"]:
            best = lv
            continue
        nxt = lv
        break
    parts = []
    if best is not None:
        parts.append(f"held {best['series']:,} in {best['held']} of {best['runs']} runs")
    elif levels:
        parts.append(f"held no measured count in every run (the smallest, {levels[0]['series']:,}, in "
                     f"{levels[0]['held']} of {levels[0]['runs']})")
    if nxt is not None and best is not None:
        failed = ", ".join(f"{FAILURE_WORDS.get(k, k)} {c}×" for k, c in sorted(why[nxt['series']].items()))
        parts.append(f"{nxt['series']:,} in {nxt['held']} of {nxt['runs']} ({failed})")
    elif nxt is None and best is not None:
        parts.append("every count measured (a larger one would tell more)")
    few = [lv for lv in (best, nxt) if lv is not None and lv["runs"] < min_repeats]
    statement = ", ".join(parts) if parts else "nothing measured"
    if few:
        at = ", ".join(f"{lv['series']:,}" for lv in few)
        statement += f" (provisional: fewer than {min_repeats} runs at {at})"
    return {"held_all": best and best["series"], "next": nxt and {k: nxt[k] for k in ("series", "held", "runs")},
            "failures": {n: dict(v) for n, v in why.items()}, "levels": levels,
            "provisional": bool(few), "statement": statement}


def active_series(series: int, targets: int) -> int:
    """Series the collector holds: the target's plus each target's automatic ones."""
    return int(series) + AUTO_SERIES_PER_TARGET * int(targets)


def _t_interval(mean: float, se: float, dof: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    q = stats.t.ppf(0.5 + confidence / 2, dof)
    return mean - q * se, mean + q * se


def bytes_per_series(points: list[tuple[float, float]], confidence: float = CONFIDENCE) -> dict | None:
    """Slope of settled memory (bytes) against active series, with its ``confidence``
    interval (Student t on the slope's standard error, n - 2 degrees of freedom); None
    below three distinct series counts (two cannot show whether memory grows linearly)."""
    pts = [(float(x), float(y)) for x, y in points if _num(x) is not None and _num(y) is not None]
    if len({x for x, _ in pts}) < 3:
        return None
    r = stats.linregress([x for x, _ in pts], [y for _, y in pts])
    lo, hi = _t_interval(float(r.slope), float(r.stderr), len(pts) - 2, confidence)
    return {"bytes_per_series": float(r.slope), "low": lo, "high": hi, "confidence": confidence,
            "intercept_bytes": float(r.intercept), "r2": float(r.rvalue ** 2), "n": len(pts),
            "series_range": [min(x for x, _ in pts), max(x for x, _ in pts)]}


def ratio_interval(pairs: list[tuple[float, float]], confidence: float = CONFIDENCE) -> dict | None:
    """Ratio a/b over paired side-by-side rounds: the geometric mean of the per-round
    ratios with a Student t interval on their logarithms; None below two rounds."""
    logs = [math.log(a / b) for a, b in pairs if _num(a) and _num(b) and a > 0 and b > 0]
    if len(logs) < 2:
        return None
    n = len(logs)
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    lo, hi = _t_interval(mean, sd / math.sqrt(n), n - 1, confidence)
    return {"ratio": math.exp(mean), "low": math.exp(lo), "high": math.exp(hi), "confidence": confidence,
            "rounds": n, "per_round": [math.exp(x) for x in logs]}


def _pairs(rounds: list[dict], a: str, b: str, key: str) -> list[tuple[float, float]]:
    """(a's, b's) ``key`` per round where both sides measured it."""
    by = {(r.get("round"), r.get("variant")): r for r in rounds if not r.get("error")}
    out = []
    for rnd in sorted({r.get("round") for r in rounds}):
        x, y = by.get((rnd, a)), by.get((rnd, b))
        if x and y and _num(x.get(key)) and _num(y.get(key)):
            out.append((x[key], y[key]))
    return out


def _per_series_at(held_runs: list[dict], n: int | None) -> dict | None:
    """Anonymous memory per active series, all in (the collector's fixed cost included),
    over the held runs at ``n``: mean, lowest, highest, runs."""
    vals = [s["anon_mb"] * 2**20 / s["active_series"] for s in held_runs if s.get("series") == n]
    if not vals:
        return None
    return {"series": n, "bytes_per_series": sum(vals) / len(vals), "low": min(vals), "high": max(vals),
            "runs": len(vals)}


def analyse(doc: dict) -> dict:
    """Every conclusion of a comparison document (docs/capacity.md, "The collector comparison")."""
    out: dict = {"settle_rule": {"scrapes": SETTLE_SCRAPES, "fraction_of_limit_per_min": SETTLE_FRACTION_PER_MIN},
                 "confidence": CONFIDENCE, "operating_point": {}, "sweep": {}}
    rounds = (doc.get("operating_point") or {}).get("rounds") or []
    op = out["operating_point"]
    for key in ("peak_mb", "anon_mb", "steady_mb"):
        for config in ("shipped", "tuned"):
            r = ratio_interval(_pairs(rounds, f"prometheus-{config}", f"victoriametrics-{config}", key))
            if r:
                op[f"prometheus_over_victoriametrics_{config}_{key}"] = r
        for c in ("victoriametrics", "prometheus"):
            r = ratio_interval(_pairs(rounds, f"{c}-tuned", f"{c}-shipped", key))
            if r:
                op[f"{c}_tuned_over_shipped_{key}"] = r
    for v in sorted({r.get("variant") for r in rounds if r.get("variant")}):
        mine = [r for r in rounds if r.get("variant") == v and not r.get("error")]
        vals = {k: [r[k] for r in mine if _num(r.get(k))] for k in ("peak_mb", "anon_mb")}
        op.setdefault("sides", {})[v] = {
            "rounds": len(mine), "settled": sum(1 for r in mine if r.get("settled")),
            **{f"{k}_mean": (sum(x) / len(x) if x else None) for k, x in vals.items()}}
    steps = (doc.get("sweep") or {}).get("steps") or []
    for key in sorted({(s["collector"], s["config"], s["shape"]) for s in steps}):
        mine = [s for s in steps if (s["collector"], s["config"], s["shape"]) == key]
        ok = [s for s in mine if held(s) and _num(s.get("anon_mb"))]
        out["sweep"]["/".join(key)] = {
            "collector": key[0], "config": key[1], "shape": key[2],
            "boundary": boundary(mine),
            "anon_bytes_per_series": bytes_per_series(
                [(s["active_series"], s["anon_mb"] * 2**20) for s in ok]),
            "anon_plus_cache_bytes_per_series": bytes_per_series(
                [(s["active_series"], (s["anon_mb"] + (s.get("page_cache_mb") or 0)) * 2**20) for s in ok]),
            "anon_per_series_at_capacity": _per_series_at(ok, boundary(mine)["held_all"]),
            "settled_runs": sum(1 for s in mine if s.get("status") == "settled"),
            "capped_runs": sum(1 for s in mine if s.get("status") == "capped"),
            "runs": len(mine)}
    return out
