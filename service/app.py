"""The baseline's Flask app: /metrics, /sensor, /healthz and, in profile mode, the
per-scrape tracemalloc capture endpoint. Served by Werkzeug's development server, as
the original; the work itself is in service/core.py, shared with the optimized app."""

import time

from flask import Flask, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST

from service import burden, core, metrics
from service.config import Config


def _snapshot_path(name):
    path = request.args.get(name, "")
    problem = core.snapshot_path_problem(name, path)
    if problem:
        abort(400, problem)
    return path


def create_app(config: Config) -> Flask:
    core.prepare(config)
    app = Flask("service")
    scrape_capture = core.ScrapeCapture()

    @app.get("/healthz")
    def healthz():
        return Response("ok", mimetype="text/plain")

    @app.get("/metrics")
    def metrics_endpoint():
        return Response(core.exposition(config, scrape_capture), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/sensor")
    def sensor():
        started = time.perf_counter()
        try:
            kind, body = core.draw_sensor_answer()
            if kind == "failure":
                return Response(body, status=500, mimetype="application/json")
            if kind == "blob":   # as the original: the whole body encoded at once
                return Response(burden.data_blob_text(), mimetype="text/plain",
                                headers={"X-Sensor-Blob": "1"})
            return Response(body, mimetype="application/json")
        finally:
            metrics.PROCESSING_LATENCY.observe(time.perf_counter() - started)

    if config.tracemalloc:
        @app.post("/debug/tracemalloc/scrape")
        def tracemalloc_scrape():
            if not core.is_loopback(request.remote_addr):
                abort(403, "the capture endpoint answers loopback clients only")
            peak, after = _snapshot_path("peak"), _snapshot_path("after")
            if peak == after:
                abort(400, "give different paths for ?peak= and ?after=")
            scrape_capture.arm(peak, after)
            return {"peak": peak, "after": after, "armed": True}, 202

    return app
