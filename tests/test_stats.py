"""reports.stats: pure statistics with known answers (no processes, no files)."""
import math

import numpy as np
import pandas as pd
import pytest

from reports import stats as S

# ---------------------------------------------------------------- percentiles

def test_percentiles_known_values():
    p = S.percentiles(np.arange(1, 101, dtype=float))      # 1..100
    assert p["p50"] == pytest.approx(50.5)
    assert p["p95"] == pytest.approx(95.05)
    assert p["p99"] == pytest.approx(99.01)
    assert p["max"] == 100.0


def test_percentiles_empty_and_nan_are_none_not_zero():
    assert S.percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}
    p = S.percentiles([np.nan, 3.0, np.inf])
    assert p["p50"] == 3.0 and p["max"] == 3.0


def test_latency_by_endpoint_counts_failures():
    df = pd.DataFrame({"start": [0, 1, 2, 3], "name": ["/metrics", "/metrics", "/sensor", "/sensor"],
                       "latency_ms": [10.0, 30.0, 1.0, 3.0], "ok": [1, 0, 1, 1]})
    by = S.latency_by_endpoint(df)
    assert by["/metrics"]["count"] == 2 and by["/metrics"]["failures"] == 1
    assert by["/metrics"]["p50"] == pytest.approx(20.0)
    assert by["/sensor"]["max"] == 3.0


# ---------------------------------------------------------------- steady window

def test_steady_window_is_half_open_for_requests_and_closed_for_samples():
    from loadtests.samples import steady
    req = pd.DataFrame({"intended": [9.99, 10.0, 15.0, 19.99, 20.0], "latency_ms": 1.0})
    assert list(steady(req, 10.0, 20.0)["intended"]) == [10.0, 15.0, 19.99]
    res = pd.DataFrame({"t": [9.0, 10.0, 20.0, 21.0], "component": "x"})
    assert list(S.steady_samples(res, 10.0, 20.0)["t"]) == [10.0, 20.0]


# ---------------------------------------------------------------- counters and CPU

def test_counter_increase_interpolates_and_handles_resets():
    t = np.arange(0, 11, dtype=float)
    v = 2.0 * t
    assert S.counter_increase(t, v, 2.5, 7.5) == pytest.approx(10.0)
    # a restart at t=5: the counter starts again from zero (1 at t=5), as Prometheus' increase()
    v2 = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9, 11], dtype=float)
    assert S.counter_increase(t, v2, 0, 10) == pytest.approx(8 + 1 + 10)
    assert S.reset_corrected(v2)[-1] == pytest.approx(19.0)
    assert S.counter_increase([1.0], [5.0], 0, 10) is None


def test_counter_increase_step_for_event_counts():
    t = [0, 1, 2, 3, 4]
    ooms = [0, 0, 1, 1, 2]
    assert S.counter_increase(t, ooms, 0.5, 3.5, method="step") == 1.0
    assert S.counter_increase(t, ooms, None, None, method="step") == 2.0
    assert S.counter_increase(t, ooms, 2.5, 3.9, method="step") == 0.0


def test_cpu_ms_per_request_known_answer():
    t = np.arange(0, 101, dtype=float)
    cpu = 0.25 * t                                   # a quarter of a core
    starts = np.arange(0, 100, 0.1)                  # 10 requests per second
    r = S.cpu_ms_per_request(t, cpu, starts, 20.0, 80.0)
    assert r["requests"] == 600
    assert r["cpu_seconds"] == pytest.approx(15.0)
    assert r["value"] == pytest.approx(25.0)         # 250 ms of CPU per second / 10 req/s


def test_cpu_ms_per_request_uses_the_span_the_samples_cover():
    t = np.arange(50, 101, dtype=float)              # sampler started late
    r = S.cpu_ms_per_request(t, 0.5 * t, np.arange(0, 100, 0.5), 20.0, 80.0)
    assert r["span_s"] == pytest.approx(30.0)
    assert r["requests"] == 60
    assert r["value"] == pytest.approx(250.0)


def test_cpu_ms_per_request_without_requests_is_none():
    t = np.arange(0, 10, dtype=float)
    assert S.cpu_ms_per_request(t, t, [], 0, 10)["value"] is None


def test_mean_cores():
    t = np.arange(0, 61, dtype=float)
    assert S.mean_cores(t, 0.4 * t, 10, 50) == pytest.approx(0.4)


# ---------------------------------------------------------------- throttling

def test_throttled_ratio_against_wall_clock_periods():
    t = np.arange(0, 61, dtype=float)
    # 3 throttled periods per second out of 10 CFS periods per second
    assert S.throttled_ratio(t, 3.0 * t, 0, 60) == pytest.approx(0.3)
    assert S.throttled_ratio(t, 0.0 * t, 0, 60) == 0.0


def test_throttled_ratio_with_nr_periods_column():
    t = np.arange(0, 61, dtype=float)
    assert S.throttled_ratio(t, 2.0 * t, 0, 60, periods=4.0 * t) == pytest.approx(0.5)


def test_throttled_ratio_not_measurable_is_none():
    assert S.throttled_ratio([0.0], [0.0], 0, 10) is None


# ---------------------------------------------------------------- memory

def test_memory_slope_known_slope_within_stderr():
    rng = np.random.default_rng(42)
    starts = np.arange(0, 120, 0.05)                 # 20 req/s
    t = np.arange(0, 121, dtype=float)
    x = S.cumulative_requests_at(t, starts, 0.0)
    true = 1536.0                                    # bytes per request
    mem = 40e6 + true * x + rng.normal(0, 30_000, t.size)
    r = S.mem_slope_per_request(t, mem, starts, 0.0, 120.0)
    assert r["n"] == 121
    assert r["stderr"] > 0
    assert abs(r["slope"] - true) < 4 * r["stderr"]
    assert r["stderr"] < 0.05 * true


def test_memory_slope_segments_between_restarts():
    starts = np.arange(0, 60, 0.1)
    t = np.arange(0, 61, dtype=float)
    x = S.cumulative_requests_at(t, starts, 0.0)
    seg = (t >= 30).astype(float)                    # restarted at t=30: memory back to base
    mem = 20e6 + 1000.0 * (x - np.where(seg > 0, x[30], 0))
    pooled = S.mem_slope_per_request(t, mem, starts, 0, 60)
    split = S.mem_slope_per_request(t, mem, starts, 0, 60, segments=seg)
    assert split["segments"] == 2
    assert split["slope"] == pytest.approx(1000.0)
    assert pooled["slope"] < 600.0                   # the sawtooth fools a single line


def test_linear_slope_needs_variation():
    assert S.linear_slope([1, 1, 1], [1, 2, 3])["slope"] is None
    assert S.linear_slope([1, 2], [1, 2])["slope"] is None


def test_peak_and_steady_memory():
    m = [10.0, 30.0, 20.0, 20.0, np.nan]
    assert S.mem_peak(m) == 30.0
    assert S.mem_steady(m) == 20.0
    assert S.mem_peak([]) is None


# ---------------------------------------------------------------- histograms

BUCKETS = {"0.1": 0, "0.25": 0, "0.5": 108, "1": 108, "2.5": 120, "+Inf": 120}


def test_histogram_quantile_known_answers():
    assert S.histogram_quantile(0.95, BUCKETS) == pytest.approx(1.75)
    # rank 60 of 108 in (0.25, 0.5]: 0.25 + 0.25 * 60/108
    assert S.histogram_quantile(0.5, BUCKETS) == pytest.approx(0.25 + 0.25 * 60 / 108)
    assert S.histogram_quantile(0.95, {"0.005": 0, "0.01": 10, "+Inf": 10}) == pytest.approx(0.00975)


def test_histogram_quantile_edge_cases():
    assert S.histogram_quantile(0.99, {"1": 1, "+Inf": 10}) == 1.0        # in +Inf: largest finite bound
    assert S.histogram_quantile(0.5, {"1": 0, "+Inf": 0}) is None          # no observations
    assert S.histogram_quantile(0.5, {"1": 5, "2": 10}) is None           # no +Inf bucket
    assert S.histogram_quantile(0.5, [("+Inf", 4), ("1", 4)]) == pytest.approx(0.5)


def _matrix(series):
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": m, "values": [[t, str(v)] for t, v in pts]} for m, pts in series]}}


def test_server_quantile_from_query_range_uses_increase_over_window():
    steps = np.arange(0, 101, 5.0)
    k = steps / 5.0
    series = []
    per_step = {"0.5": 9, "2.5": 1}
    for le in ["0.1", "0.5", "1", "2.5", "+Inf"]:
        ub = math.inf if le == "+Inf" else float(le)
        c = sum(v for b, v in per_step.items() if float(b) <= ub)
        # 1000 old observations before the window, all in the first bucket: must not count
        series.append(({"le": le, "instance": "a"}, list(zip(steps, 1000 + c * k))))
    payload = _matrix(series)
    assert S.server_quantile_from_buckets(payload, 0.95, 20.0, 80.0) == pytest.approx(1.75)
    assert S.server_quantile_from_buckets({"garbage": 1}, 0.95, 0, 1) is None


def test_prom_series_parses_vector_and_matrix():
    vec = {"status": "success", "data": {"resultType": "vector",
                                         "result": [{"metric": {"job": "x"}, "value": [5, "1"]}]}}
    s = S.prom_series(vec)
    assert s[0]["t"].tolist() == [5.0] and s[0]["v"].tolist() == [1.0]
    assert S.prom_series(None) == []


# ---------------------------------------------------------------- aggregation

def test_median_spread_ratio_change():
    assert S.median_spread([3, None, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert S.median_spread([None])["median"] is None
    assert S.ratio(10, 4) == 2.5 and S.ratio(1, 0) is None and S.ratio(None, 1) is None
    assert S.change_pct(10, 5) == -50.0 and S.change_pct(0, 5) is None


def test_histogram_quantile_bucket_bounds():
    buckets = {"0.5": 9, "1": 9, "2.5": 10, "+Inf": 10}
    assert S.histogram_quantile_bucket(0.95, buckets) == (1.0, 2.5)
    assert S.histogram_quantile(0.95, buckets) == pytest.approx(1.75)   # inside that bucket
    assert S.histogram_quantile_bucket(0.5, buckets) == (0.0, 0.5)
    assert S.histogram_quantile_bucket(0.5, {"1": 0, "+Inf": 0}) is None
    lo, hi = S.histogram_quantile_bucket(0.99, {"1": 1, "+Inf": 10})
    assert lo == 1.0 and hi == float("inf")


def test_throttled_ratio_with_nr_periods_across_a_counter_reset():
    t = np.arange(0, 21, dtype=float)
    thr = np.where(t < 10, 2.0 * t, 2.0 * (t - 10))       # the cgroup was recreated at t = 10
    per = np.where(t < 10, 5.0 * t, 5.0 * (t - 10))
    assert S.throttled_ratio(t, thr, 0, 20, periods=per) == pytest.approx(0.4)
