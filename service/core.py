"""What both variants do, free of any web framework: the per-scrape work, the
exposition, the /sensor draw and the profile-mode capture. The baseline's Flask app
(service/app.py) and the optimized plain WSGI app (service/wsgi.py) call it, so the
two differ only in the server and the per-request machinery around it."""

import ipaddress
import json
import os
import random
import threading
import time

from prometheus_client import REGISTRY, disable_created_metrics, generate_latest

from service import burden, extra_series, metrics, process_metrics, traced_scrape
from service import exposition as exposition_cache
from service.config import Config

SENSOR_FAILURE_RATE = 0.10   # share of /sensor answered 500
SENSOR_BLOB_RATE = 0.20      # share of successful /sensor answers carrying data_blob
BLOB_CHUNK_BYTES = 256 * 1024
FAILURE_BODY = json.dumps({"error": "simulated sensor failure"})


class ScrapeCapture:
    """Profile mode: a per-scrape allocation capture, armed by the profiler and taken
    by exactly one later /metrics scrape (tracemalloc runs only during that scrape)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.armed = None      # (peak_path, after_path) waiting for a scrape
        self.running = False   # a scrape is tracing: tracemalloc is process-wide

    def arm(self, peak, after):
        with self.lock:
            self.armed = (peak, after)

    def take(self):
        """The armed paths for this scrape, or None (not armed, or another scrape traces)."""
        with self.lock:
            if self.running or self.armed is None:
                return None
            paths, self.armed = self.armed, None
            self.running = True
            return paths

    def done(self):
        with self.lock:
            self.running = False


def snapshot_path_problem(name, path):
    """Why ?name=path cannot take a snapshot (a 400's message), or None when it can."""
    if not os.path.isabs(path):
        return f"give ?{name}=<absolute file path> for the snapshot"
    if not os.path.isdir(os.path.dirname(path)):
        return f"cannot write snapshot to {path}: no such directory"
    return None


def is_loopback(addr) -> bool:
    try:
        return ipaddress.ip_address(addr or "").is_loopback
    except ValueError:
        return False


def render_exposition() -> bytes:
    """The text exposition of the default registry; the optimized variant swaps in
    service.exposition's cached renderer at start-up."""
    return generate_latest(REGISTRY)


def prepare(config: Config):
    """Start-up: the payload each variant serves, and the seeded draws."""
    if config.variant == "baseline":
        burden.data_blob_text()       # held from the start, as the original's module global
    else:
        burden.data_blob_bytes()
        process_metrics.install()   # the same process_* series, cheaper per scrape
        # no *_created series (creation timestamps no collector here reads): 16 % less
        # exposition text per scrape; the same switch as PROMETHEUS_DISABLE_CREATED_SERIES
        disable_created_metrics()
        global render_exposition    # the same bytes, constant parts rendered once
        render_exposition = exposition_cache.CachedExposition(REGISTRY).render
    # their values come from their own generator (seeded with SENSOR_SEED): the /sensor
    # draws keep the same sequence whatever the number of extra series
    extra_series.install(config.extra_series, config.seed)
    global _sensor_extra_cpu_ms
    _sensor_extra_cpu_ms = config.extra_sensor_cpu_ms
    if config.seed is not None:   # benchmarks: every run draws the same failures and blobs
        random.seed(config.seed)


def scrape_work(config: Config):
    """The deliberate per-scrape work; returns what must live until exposition."""
    started = time.thread_time()
    held = None
    if config.variant == "baseline":
        burden.burn_cpu()
        held = burden.copy_data_blob_per_scrape(random.randint(1, 3))
    if config.extra_cpu_iterations:
        burden.injected_cpu_work(config.extra_cpu_iterations)
    if config.extra_cpu_ms:
        burden.injected_cpu_time(config.extra_cpu_ms)
    if config.leak_bytes_per_scrape:
        burden.injected_leak(config.leak_bytes_per_scrape)
    metrics.CPU_SPIKE.set(time.thread_time() - started)
    return held


def exposition(config: Config, capture: ScrapeCapture) -> bytes:
    """One /metrics answer: deliberate work, then the exposition; observed afterwards."""
    started = time.perf_counter()
    paths = capture.take() if config.tracemalloc else None
    if paths is None:
        held = scrape_work(config)
        body = render_exposition()
        del held
    else:
        try:
            body = traced_scrape.run(config, scrape_work, *paths)
        finally:
            capture.done()
    metrics.SCRAPE_DURATION.observe(time.perf_counter() - started)
    return body


_sensor_extra_cpu_ms = 0.0     # SENSOR_EXTRA_SENSOR_CPU_MS, set by prepare()


def draw_sensor_answer():
    """The simulated sensor: ("failure", json) | ("blob", None) | ("reading", json).
    The draws come in the same order in both variants, so one SENSOR_SEED gives one
    sequence of answers."""
    metrics.REQUESTS.inc()
    if _sensor_extra_cpu_ms:
        burden.injected_cpu_time(_sensor_extra_cpu_ms)
    extra_series.move_one()
    if random.random() < SENSOR_FAILURE_RATE:
        metrics.FAILURES.inc()
        return "failure", FAILURE_BODY
    if random.random() < SENSOR_BLOB_RATE:
        return "blob", None
    reading = {"sensor": "temperature", "value": round(random.uniform(18, 30), 2),
               "unit": "C", "ts": time.time()}
    return "reading", json.dumps(reading)
