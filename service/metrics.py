"""The service's Prometheus metrics, registered once per process in the
default registry (which also carries the process, platform and gc collectors).
"""

from prometheus_client import Counter, Gauge, Histogram

# Resolves both the optimized variant (milliseconds) and baseline (seconds).
SCRAPE_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)

REQUESTS = Counter("sensor_requests_total", "Requests answered by /sensor, failed or not.")
FAILURES = Counter("sensor_failures_total", "Simulated sensor failures (/sensor answered 500).")
CPU_SPIKE = Gauge("sensor_cpu_spike",
                  "CPU seconds the last /metrics scrape spent in deliberate work "
                  "(baseline burn plus injected CPU); 0 when there is none.")
PROCESSING_LATENCY = Histogram("sensor_processing_latency_seconds",
                               "Time to produce a /sensor answer inside the app.")
SCRAPE_DURATION = Histogram("sensor_scrape_duration_seconds",
                            "Time to generate the whole /metrics answer (burn, blob copy, "
                            "exposition). Observed after exposition, so a scrape shows the "
                            "scrapes before it.",
                            buckets=SCRAPE_BUCKETS)
