"""What a sweep's steps say: the scrape SLO, sustainable capacity, the latency knee, the
cost per series and the largest series count within the limits. Pure functions over the
step records (docs/capacity.md defines each), so tests can build the data they need."""
from __future__ import annotations

import math

from scipy import stats

SLO_P99_MS = 1000.0          # a scrape answered within 1 s at p99 ...
KNEE_FACTOR = 2.0            # latency knee: p99 past twice its value at the lightest load ...
KNEE_MIN_RISE_MS = 10.0      # ... and 10 ms above it: smaller rises are scheduling noise here
SATURATED_THROTTLED = 0.9    # CFS periods throttled: the CPU quota is used up


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def slo_problem(step: dict) -> str | None:
    """Why a load or series step misses the scrape SLO (p99 from the intended start under
    1 s, no failed or omitted scrape, no OOM kill), or None when it meets it."""
    if step.get("status") == "oom" or (_num(step.get("oom_kills")) or 0) > 0:
        return "OOM-killed"
    if step.get("status") != "ok":
        return f"step {step.get('status')}"
    p99 = _num(step.get("scrape_p99_ms"))
    failed = _num(step.get("failed_scrapes"))
    if p99 is None:
        if failed:   # nothing answered, so no latency: the failures are the finding
            return f"none of the scrapes answered ({failed:.0f} failed or omitted)"
        return "scrape latency not measured"
    if p99 >= SLO_P99_MS:
        return f"scrape p99 {p99:.0f} ms >= {SLO_P99_MS:.0f} ms"
    if failed is None:
        return "scrape counts not measured"
    if failed > 0:
        return f"{failed:.0f} failed or omitted scrape{'' if failed == 1 else 's'}"
    return None


def meets_slo(step: dict) -> bool:
    return slo_problem(step) is None


def saturation(step: dict) -> str | None:
    """The service's CPU quota used up (throttled in >= 90 % of CFS periods), or None."""
    t = _num(step.get("throttled_ratio"))
    if t is not None and t >= SATURATED_THROTTLED:
        return f"CPU quota used up (throttled in {t:.0%} of periods)"
    return None


def sustainable_capacity(steps: list[dict], rate_key: str = "scrape_rate") -> dict:
    """The highest offered rate that meets the SLO with every lighter step meeting it too.

    A step where the load generator was the bottleneck says nothing about the service:
    it is never the capacity. When the highest passing step is followed only by such
    steps, the capacity is a lower bound ("at least"), not a limit."""
    ordered = sorted((s for s in steps if _num(s.get(rate_key)) is not None), key=lambda s: s[rate_key])
    best, limited_by, lower_bound, failed_at = None, None, False, None
    for s in ordered:
        if s.get("loadgen_bottleneck"):
            lower_bound = best is not None or lower_bound
            limited_by, failed_at = "load generator", s[rate_key]
            break
        problem = slo_problem(s)
        if problem:
            limited_by, failed_at = problem, s[rate_key]
            break
        best = s
    else:
        lower_bound = best is not None
        limited_by = "highest step offered" if best is not None else limited_by
    if best is not None and saturation(best) and failed_at is None:   # met the SLO at saturation
        lower_bound, limited_by = False, saturation(best)
    return {"rate": best[rate_key] if best else None, "step": best.get("dir") if best else None,
            "lower_bound": bool(lower_bound and best is not None), "limited_by": limited_by,
            "failed_at": failed_at}


def latency_knee(steps: list[dict], rate_key: str = "scrape_rate", factor: float = KNEE_FACTOR,
                 min_rise_ms: float = KNEE_MIN_RISE_MS) -> dict:
    """The highest offered rate whose p99 (from the intended start) stays within ``factor``
    times the p99 at the lightest load or within ``min_rise_ms`` of it, whichever is more:
    past it, latency grows faster than load. Load-generator-bound steps are skipped."""
    ordered = [s for s in sorted((s for s in steps if _num(s.get(rate_key)) is not None),
                                 key=lambda s: s[rate_key])
               if not s.get("loadgen_bottleneck")]
    usable = [s for s in ordered if _num(s.get("scrape_p99_ms")) is not None and s.get("status") == "ok"]
    if not usable:
        return {"rate": None, "reference_p99_ms": None, "factor": factor, "min_rise_ms": min_rise_ms,
                "beyond": None}
    ref = usable[0]["scrape_p99_ms"]
    knee, beyond = None, None
    for s in ordered:
        p99 = _num(s.get("scrape_p99_ms"))
        if s.get("status") != "ok" or p99 is None or p99 > max(factor * ref, ref + min_rise_ms) \
                or not meets_slo(s):
            beyond = s[rate_key]
            break
        knee = s[rate_key]
    return {"rate": knee, "reference_p99_ms": ref, "factor": factor, "min_rise_ms": min_rise_ms,
            "beyond": beyond}


def linear_fit(x, y) -> dict | None:
    """Least squares y = intercept + slope * x with the slope's standard error and r^2;
    None below three points (a line through two says nothing about its fit)."""
    pts = [(float(a), float(b)) for a, b in zip(x, y) if _num(a) is not None and _num(b) is not None]
    if len(pts) < 3 or len({a for a, _ in pts}) < 2:
        return None
    r = stats.linregress([a for a, _ in pts], [b for _, b in pts])
    return {"slope": float(r.slope), "intercept": float(r.intercept), "slope_stderr": float(r.stderr),
            "r2": float(r.rvalue ** 2), "n": len(pts)}


def series_costs(steps: list[dict]) -> dict:
    """Cost per series, fitted over the steps that completed: CPU per scrape (µs per
    series), exposition bytes per series, resting memory (bytes per series)."""
    ok = [s for s in steps if s.get("status") == "ok"]
    xs = [s.get("series") for s in ok]
    cpu = linear_fit(xs, [s.get("cpu_ms_per_scrape") for s in ok])
    size = linear_fit(xs, [s.get("exposition_bytes") for s in ok])
    mem = linear_fit(xs, [s.get("mem_rest_mb") for s in ok])
    return {
        "cpu_us_per_series": cpu and {**cpu, "per_series": cpu["slope"] * 1000.0},
        "exposition_bytes_per_series": size and {**size, "per_series": size["slope"]},
        "mem_bytes_per_series": mem and {**mem, "per_series": mem["slope"] * 2**20},
    }


def largest_series_within(steps: list[dict], mem_limit_mb: float | None) -> dict:
    """The largest series count whose step met the scrape SLO and stayed under the memory
    limit (kernel peak), and the first count that did not, with why."""
    best, first_fail, why = None, None, None
    for s in sorted(steps, key=lambda s: s.get("series") or 0):
        problem = slo_problem(s)
        peak = _num(s.get("mem_peak_mb"))
        if problem is None and mem_limit_mb and peak is not None and peak >= mem_limit_mb:
            problem = f"peak {peak:.1f} MB at the {mem_limit_mb:g} MB limit"
        if problem:
            first_fail, why = s.get("series"), problem
            break
        best = s.get("series")
    return {"series": best, "first_failing": first_fail, "why": why}


def analyse(doc: dict, limits: dict) -> dict:
    """Every conclusion of the document's steps (docs/capacity.md)."""
    out: dict = {"slo": {"scrape_p99_ms_below": SLO_P99_MS, "failed_scrapes": 0},
                 "knee_factor": KNEE_FACTOR}
    load = doc["load"]["steps"]
    out["load"] = {}
    for v in sorted({s["variant"] for s in load}):
        scrape = [s for s in load if s["variant"] == v and s["axis"] == "scrape"]
        sensor = [s for s in load if s["variant"] == v and s["axis"] == "sensor"]
        out["load"][v] = {
            "scrape_capacity": sustainable_capacity(scrape, "scrape_rate"),
            "scrape_knee": latency_knee(scrape, "scrape_rate"),
            "sensor_capacity": sustainable_capacity(sensor, "sensor_rate"),
            "sensor_knee": latency_knee(sensor, "sensor_rate"),
        }
    series = doc["series"]["steps"]
    if series:
        out["series"] = {"costs": series_costs(series),
                         "largest": largest_series_within(series, limits.get("sensor-service"))}
    return out
