"""The Flask app: /metrics, /sensor, /healthz and, in profile mode, the
tracemalloc snapshot endpoint. Variant and knobs come from a Config."""

import ipaddress
import json
import os
import random
import threading
import time
import tracemalloc

from flask import Flask, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from service import burden, metrics
from service.config import Config

SENSOR_FAILURE_RATE = 0.10   # share of /sensor answered 500
SENSOR_BLOB_RATE = 0.20      # share of successful /sensor answers carrying data_blob
BLOB_CHUNK_BYTES = 256 * 1024


class _PeakSnapshot:
    """Profile mode: a snapshot armed by the profiler and taken by the next scrape at
    its peak (its temporaries still alive), where an idle-time snapshot would show
    only what survives a scrape."""

    def __init__(self):
        self.lock = threading.Lock()
        self.path = None

    def arm(self, path):
        with self.lock:
            self.path = path

    def take_if_armed(self):
        with self.lock:
            path, self.path = self.path, None
        if path:
            _dump_snapshot(path)


def _dump_snapshot(path):
    tmp = f"{path}.tmp-{os.getpid()}"
    tracemalloc.take_snapshot().dump(tmp)
    os.replace(tmp, path)


def scrape_work(config: Config):
    """The deliberate per-scrape work; returns what must live until exposition."""
    started = time.thread_time()
    held = None
    if config.variant == "baseline":
        burden.burn_cpu()
        held = burden.copy_data_blob_per_scrape(random.randint(1, 3))
    if config.extra_cpu_iterations:
        burden.injected_cpu_work(config.extra_cpu_iterations)
    if config.leak_bytes_per_scrape:
        burden.injected_leak(config.leak_bytes_per_scrape)
    metrics.CPU_SPIKE.set(time.thread_time() - started)
    return held


def _blob_chunks(chunk=BLOB_CHUNK_BYTES):
    """Encode data_blob a slice at a time, so an answer never holds a 5 MB copy."""
    blob = burden.data_blob
    for i in range(0, len(blob), chunk):
        yield blob[i:i + chunk].encode("ascii")


def _blob_response(config: Config) -> Response:
    headers = {"X-Sensor-Blob": "1"}
    if config.variant == "baseline":  # as the original: the whole body encoded at once
        return Response(burden.data_blob, mimetype="text/plain", headers=headers)
    headers["Content-Length"] = str(len(burden.data_blob))
    return Response(_blob_chunks(), mimetype="text/plain", headers=headers)


def _is_loopback(addr) -> bool:
    try:
        return ipaddress.ip_address(addr or "").is_loopback
    except ValueError:
        return False


def create_app(config: Config) -> Flask:
    app = Flask("service")
    peak_snapshot = _PeakSnapshot()

    @app.get("/healthz")
    def healthz():
        return Response("ok", mimetype="text/plain")

    @app.get("/metrics")
    def metrics_endpoint():
        started = time.perf_counter()
        held = scrape_work(config)
        if config.tracemalloc:
            peak_snapshot.take_if_armed()
        body = generate_latest(REGISTRY)
        del held
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
        @app.post("/debug/tracemalloc/snapshot")
        def tracemalloc_snapshot():
            if not _is_loopback(request.remote_addr):
                abort(403, "the snapshot endpoint answers loopback clients only")
            path = request.args.get("path", "")
            if not os.path.isabs(path):
                abort(400, "give ?path=<absolute file path> for the snapshot")
            if request.args.get("at") == "next-scrape":
                if not os.path.isdir(os.path.dirname(path)):
                    abort(400, f"cannot write snapshot to {path}: no such directory")
                peak_snapshot.arm(path)
                return {"path": path, "armed": True}, 202
            try:
                _dump_snapshot(path)
            except OSError as exc:
                abort(400, f"cannot write snapshot to {path}: {exc.strerror}")
            current, peak = tracemalloc.get_traced_memory()
            return {"path": path, "traced_bytes": current, "peak_bytes": peak}

    return app
