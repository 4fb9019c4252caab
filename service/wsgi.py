"""The optimized variant's app: a plain WSGI callable, no web framework.

A route table of three paths needs no per-request request/response objects, URL
map or context locals; dropping Flask also drops about 8 MB of imports (Werkzeug,
Jinja2, Click) from a process that lives under a 50 MB limit. docs/service.md has
the measurements. Same answers as the baseline's Flask app: the work is in
service/core.py."""

import io
import json
import time
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST

from service import burden, core, metrics
from service.config import Config

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
STATUS = {200: "200 OK", 202: "202 Accepted", 400: "400 Bad Request", 403: "403 Forbidden",
          404: "404 Not Found", 405: "405 Method Not Allowed", 500: "500 Internal Server Error"}


class SensorApp:
    """WSGI entry point: dispatch on the path, answer with bytes."""

    def __init__(self, config: Config):
        core.prepare(config)
        self.config = config
        self.capture = core.ScrapeCapture()
        self.blob = burden.data_blob_bytes()
        self.routes = {"/metrics": ("GET", self.metrics), "/sensor": ("GET", self.sensor),
                       "/healthz": ("GET", self.healthz)}
        if config.tracemalloc:
            self.routes["/debug/tracemalloc/scrape"] = ("POST", self.arm_capture)

    def __call__(self, environ, start_response):
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return self._answer(start_response, 404, TEXT, b"not found\n")
        method, handler = route
        got = environ["REQUEST_METHOD"]
        if got != method and not (method == "GET" and got == "HEAD"):
            return self._answer(start_response, 405, TEXT, b"method not allowed\n",
                                [("Allow", f"{method}, HEAD" if method == "GET" else method)])
        return handler(environ, start_response)

    @staticmethod
    def _answer(start_response, status, content_type, body: bytes, headers=()):
        start_response(STATUS[status], [("Content-Type", content_type),
                                         ("Content-Length", str(len(body))), *headers])
        return [body]

    def healthz(self, environ, start_response):
        return self._answer(start_response, 200, TEXT, b"ok")

    def metrics(self, environ, start_response):
        body = core.exposition(self.config, self.capture)
        return self._answer(start_response, 200, CONTENT_TYPE_LATEST, body)

    def sensor(self, environ, start_response):
        started = time.perf_counter()
        try:
            kind, body = core.draw_sensor_answer()
            if kind == "failure":
                return self._answer(start_response, 500, JSON, body.encode())
            if kind == "reading":
                return self._answer(start_response, 200, JSON, body.encode())
            start_response(STATUS[200], [("Content-Type", TEXT),
                                         ("Content-Length", str(len(self.blob))),
                                         ("X-Sensor-Blob", "1")])
            # the server's file wrapper: service.lean_server sends the once-encoded bytes
            # themselves (the BytesIO shares them), no copy into buffers or temporary files
            wrapper = environ.get("wsgi.file_wrapper")
            stream = io.BytesIO(self.blob)
            if wrapper is None:
                return iter(lambda: stream.read(core.BLOB_CHUNK_BYTES), b"")
            return wrapper(stream, core.BLOB_CHUNK_BYTES)
        finally:
            metrics.PROCESSING_LATENCY.observe(time.perf_counter() - started)

    def arm_capture(self, environ, start_response):
        if not core.is_loopback(environ.get("REMOTE_ADDR")):
            return self._answer(start_response, 403, TEXT,
                                b"the capture endpoint answers loopback clients only\n")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        peak, after = (query.get(name, [""])[0] for name in ("peak", "after"))
        problem = (core.snapshot_path_problem("peak", peak)
                   or core.snapshot_path_problem("after", after)
                   or ("give different paths for ?peak= and ?after=" if peak == after else None))
        if problem:
            return self._answer(start_response, 400, TEXT, problem.encode() + b"\n")
        self.capture.arm(peak, after)
        body = json.dumps({"peak": peak, "after": after, "armed": True}).encode()
        return self._answer(start_response, 202, JSON, body)


def create_app(config: Config) -> SensorApp:
    return SensorApp(config)
