"""The Flask app: /metrics, /sensor, /healthz and, in profile mode, the
per-scrape tracemalloc capture endpoint. Variant and knobs come from a Config."""

import io
import ipaddress
import json
import os
import random
import threading
import time

from flask import Flask, Response, abort, request
from werkzeug.wsgi import wrap_file
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from service import burden, metrics, traced_scrape
from service.config import Config

SENSOR_FAILURE_RATE = 0.10   # share of /sensor answered 500
SENSOR_BLOB_RATE = 0.20      # share of successful /sensor answers carrying data_blob
BLOB_CHUNK_BYTES = 256 * 1024


class _ScrapeCapture:
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


def _snapshot_path(name):
    path = request.args.get(name, "")
    if not os.path.isabs(path):
        abort(400, f"give ?{name}=<absolute file path> for the snapshot")
    if not os.path.isdir(os.path.dirname(path)):
        abort(400, f"cannot write snapshot to {path}: no such directory")
    return path


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


def _blob_chunks(chunk=BLOB_CHUNK_BYTES):
    """Slices of the once-encoded blob: no per-answer encoding, no 5 MB copy."""
    blob = burden.data_blob_bytes()
    for i in range(0, len(blob), chunk):
        yield blob[i:i + chunk]


def _blob_response(config: Config) -> Response:
    headers = {"X-Sensor-Blob": "1"}
    if config.variant == "baseline":  # as the original: the whole body encoded at once
        return Response(burden.data_blob_text(), mimetype="text/plain", headers=headers)
    headers["Content-Length"] = str(burden.DATA_BLOB_SIZE)
    # the server's file wrapper: waitress sends it from its I/O loop, straight from the
    # once-encoded bytes (BytesIO shares them), and frees the worker thread at once
    body = wrap_file(request.environ, io.BytesIO(burden.data_blob_bytes()), BLOB_CHUNK_BYTES)
    return Response(body, mimetype="text/plain", headers=headers, direct_passthrough=True)


def _is_loopback(addr) -> bool:
    try:
        return ipaddress.ip_address(addr or "").is_loopback
    except ValueError:
        return False


def create_app(config: Config) -> Flask:
    if config.variant == "baseline":
        burden.data_blob_text()       # held from the start, as the original's module global
    else:
        burden.data_blob_bytes()
    if config.seed is not None:   # benchmarks: every run draws the same failures and blobs
        random.seed(config.seed)
    app = Flask("service")
    scrape_capture = _ScrapeCapture()

    @app.get("/healthz")
    def healthz():
        return Response("ok", mimetype="text/plain")

    @app.get("/metrics")
    def metrics_endpoint():
        started = time.perf_counter()
        capture = scrape_capture.take() if config.tracemalloc else None
        if capture is None:
            held = scrape_work(config)
            body = generate_latest(REGISTRY)
            del held
        else:
            try:
                body = traced_scrape.run(config, scrape_work, *capture)
            finally:
                scrape_capture.done()
        metrics.SCRAPE_DURATION.observe(time.perf_counter() - started)
        return Response(body, mimetype=CONTENT_TYPE_LATEST)

    @app.get("/sensor")
    def sensor():
        started = time.perf_counter()
        metrics.REQUESTS.inc()
        try:
            if random.random() < SENSOR_FAILURE_RATE:
                metrics.FAILURES.inc()
                return Response(json.dumps({"error": "simulated sensor failure"}), status=500,
                                mimetype="application/json")
            if random.random() < SENSOR_BLOB_RATE:
                return _blob_response(config)
            reading = {"sensor": "temperature", "value": round(random.uniform(18, 30), 2),
                       "unit": "C", "ts": time.time()}
            return Response(json.dumps(reading), mimetype="application/json")
        finally:
            metrics.PROCESSING_LATENCY.observe(time.perf_counter() - started)

    if config.tracemalloc:
        @app.post("/debug/tracemalloc/scrape")
        def tracemalloc_scrape():
            if not _is_loopback(request.remote_addr):
                abort(403, "the capture endpoint answers loopback clients only")
            peak, after = _snapshot_path("peak"), _snapshot_path("after")
            if peak == after:
                abort(400, "give different paths for ?peak= and ?after=")
            scrape_capture.arm(peak, after)
            return {"peak": peak, "after": after, "armed": True}, 202

    return app
