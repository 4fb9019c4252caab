"""edgebench's Locust users: a metrics scraper and sensor clients.

Run by ``loadtests.runner`` (headless, in a subprocess), or by hand::

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8000 \\
        -u 6 -r 6 -t 30s --scrapers 2 --scrape-rate 1 --sensor-users 4 --sensor-rate 5 \\
        --samples-dir /tmp/run ScraperUser SensorUser

Traffic model
-------------
* ``ScraperUser`` - a collector's scrape loop: ``GET /metrics`` paced open-loop with
  ``constant_throughput(--scrape-rate)`` (scrapes/s per scraper; 1 = a 1 s scrape
  interval). A scrape slower than the interval is followed immediately by the next
  one (no catch-up burst), like Prometheus/VictoriaMetrics.
* ``SensorUser`` - a client posting readings: ``GET /sensor`` at
  ``constant_throughput(--sensor-rate)`` requests/s per user.

The user counts are ``fixed_count`` values set from ``--scrapers`` and
``--sensor-users``; pass ``-u`` = their sum. Every option also reads an
environment variable (``EDGEBENCH_SCRAPERS``, ``EDGEBENCH_SCRAPE_RATE``,
``EDGEBENCH_SENSOR_USERS``, ``EDGEBENCH_SENSOR_RATE``, ``EDGEBENCH_REQUEST_TIMEOUT``,
``EDGEBENCH_SAMPLES_DIR``).

Raw samples
-----------
Locust's own statistics round response times, so every request is also recorded
raw from the ``request`` event: ``start`` (epoch s), ``name``, ``latency_ms``
(unrounded float), ``ok`` (0/1), ``bytes``, ``status_code`` (0 = no response).
Each Locust process that runs users appends to its own
``<samples-dir>/requests.part-<pid>.csv.gz``; rows are buffered and written about
once a second as a complete gzip member, so a file cut short by a crash still
holds every flushed row. ``loadtests.runner`` merges the parts into
``requests.csv.gz``. The master (or the single local process) writes
``<samples-dir>/test_start.json`` when the test starts: the origin of the
warm-up/steady window.
"""
from __future__ import annotations

import atexit
import gzip
import json
import os
import threading
import time

import gevent
from locust import FastHttpUser, constant_throughput, events, task
from locust.runners import LocalRunner, MasterRunner
from locust.stats import StatsCSVFileWriter

SAMPLE_COLUMNS = ("start", "name", "latency_ms", "ok", "bytes", "status_code")
FLUSH_INTERVAL_S = 1.0
FLUSH_ROWS = 5000

DEFAULTS = {
    "scrapers": 1,
    "scrape_rate": 1.0,
    "sensor_users": 1,
    "sensor_rate": 5.0,
    "request_timeout": 10.0,
}


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    group = parser.add_argument_group("edgebench", "edgebench traffic model and raw sample export")
    group.add_argument("--scrapers", type=int, env_var="EDGEBENCH_SCRAPERS", default=DEFAULTS["scrapers"],
                       help="Number of /metrics scrapers (ScraperUser fixed_count)")
    group.add_argument("--scrape-rate", type=float, env_var="EDGEBENCH_SCRAPE_RATE",
                       default=DEFAULTS["scrape_rate"], help="Scrapes per second per scraper (1 = 1 s interval)")
    group.add_argument("--sensor-users", type=int, env_var="EDGEBENCH_SENSOR_USERS",
                       default=DEFAULTS["sensor_users"], help="Number of /sensor clients (SensorUser fixed_count)")
    group.add_argument("--sensor-rate", type=float, env_var="EDGEBENCH_SENSOR_RATE",
                       default=DEFAULTS["sensor_rate"], help="/sensor requests per second per client")
    group.add_argument("--request-timeout", type=float, env_var="EDGEBENCH_REQUEST_TIMEOUT",
                       default=DEFAULTS["request_timeout"], help="Per-request timeout in seconds (like scrape_timeout)")
    group.add_argument("--samples-dir", type=str, env_var="EDGEBENCH_SAMPLES_DIR", default="",
                       help="Directory for raw per-request samples (requests.part-<pid>.csv.gz); empty = off")


def _option(environment, name):
    opts = getattr(environment, "parsed_options", None)
    value = getattr(opts, name, None) if opts is not None else None
    return DEFAULTS[name] if value is None else value


class _PacedUser(FastHttpUser):
    abstract = True
    rate_option = ""

    def wait_time(self):
        # constant_throughput keeps its state on the user instance, so building the
        # function per call (with the configured rate) keeps the pacing intact.
        return constant_throughput(float(_option(self.environment, self.rate_option)))(self)


class ScraperUser(_PacedUser):
    """A collector scraping /metrics at a fixed interval."""

    fixed_count = DEFAULTS["scrapers"]
    rate_option = "scrape_rate"

    @task
    def scrape(self):
        self.client.get("/metrics", name="/metrics")


class SensorUser(_PacedUser):
    """A client reading the sensor endpoint at a fixed rate."""

    fixed_count = DEFAULTS["sensor_users"]
    rate_option = "sensor_rate"

    @task
    def read_sensor(self):
        self.client.get("/sensor", name="/sensor")


@events.init.add_listener
def _configure(environment, **_kw):
    ScraperUser.fixed_count = int(_option(environment, "scrapers"))
    SensorUser.fixed_count = int(_option(environment, "sensor_users"))
    timeout = float(_option(environment, "request_timeout"))
    for cls in (ScraperUser, SensorUser):
        cls.network_timeout = timeout
        cls.connection_timeout = timeout
    if environment.parsed_options is not None:
        _SAMPLES.directory = environment.parsed_options.samples_dir or ""


# ---------------------------------------------------------------------------
# raw sample export
# ---------------------------------------------------------------------------
class _SampleWriter:
    """Buffers request samples and appends them as gzip members to a per-process file."""

    def __init__(self):
        self.directory = os.environ.get("EDGEBENCH_SAMPLES_DIR", "")
        self._rows: list[str] = []
        self._fh = None
        self._pid = None
        self._lock = threading.Lock()  # flushes can come from atexit as well as greenlets
        self._flusher = None
        self._header_written_by = None  # pid that wrote the header of its part file
        self.count = 0

    @property
    def path(self):
        return os.path.join(self.directory, f"requests.part-{os.getpid()}.csv.gz")

    def add(self, start, name, latency_ms, ok, nbytes, status):
        # repr() keeps every digit of the floats; the listener stays a few microseconds.
        self._rows.append(f"{start!r},{name},{latency_ms!r},{ok},{nbytes},{status}\n")
        if len(self._rows) >= FLUSH_ROWS:
            self.flush()

    def _open(self):
        pid = os.getpid()
        if self._fh is not None and self._pid == pid:
            return
        # a forked child (locust --processes) must not share its parent's handle
        self._fh = open(self.path, "ab")
        self._pid = pid
        if self._header_written_by != pid:
            self._fh.write(gzip.compress((",".join(SAMPLE_COLUMNS) + "\n").encode(), compresslevel=1))
            self._fh.flush()
            self._header_written_by = pid

    def flush(self):
        if not self.directory:
            self._rows.clear()
            return
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows and self._fh is None:
                return  # no file without samples (e.g. the master), and none reopened after close
            self._open()
            if rows:
                self._fh.write(gzip.compress("".join(rows).encode(), compresslevel=1))
                self._fh.flush()
                self.count += len(rows)

    def close(self):
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None
        self.flush()
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
            self._fh = None

    def start_flusher(self):
        if self._flusher is None and self.directory:
            with self._lock:
                self._open()  # the part file, with its header, exists from the test start on
            self._flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self):
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            try:
                self.flush()
            except Exception as exc:  # never let the exporter stop the load
                print(f"edgebench: sample flush failed: {exc}", flush=True)


_SAMPLES = _SampleWriter()
atexit.register(_SAMPLES.close)


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, response=None,
                exception=None, start_time=None, **_kw):
    if start_time is None:
        start_time = time.time() - (response_time or 0.0) / 1000.0
    status = getattr(response, "status_code", 0) or 0
    _SAMPLES.add(start_time, name, float(response_time or 0.0), 0 if exception else 1,
                 int(response_length or 0), int(status))


@events.test_start.add_listener
def _on_test_start(environment, **_kw):
    if isinstance(environment.runner, MasterRunner):
        _write_test_start(environment)
        return
    if isinstance(environment.runner, LocalRunner):
        _write_test_start(environment)
    _SAMPLES.start_flusher()


def _write_test_start(environment):
    directory = _SAMPLES.directory
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "test_start.json")
    tmp = path + f".tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump({"test_start": time.time(), "pid": os.getpid(),
                   "scrapers": ScraperUser.fixed_count, "sensor_users": SensorUser.fixed_count}, fh)
    os.replace(tmp, path)


@events.test_stop.add_listener
def _on_test_stop(environment, **_kw):
    if not isinstance(environment.runner, MasterRunner):
        _SAMPLES.flush()


@events.quitting.add_listener
def _on_quitting(environment, **_kw):
    _SAMPLES.close()


# ---------------------------------------------------------------------------
# Locust's --csv files are rewritten once a second by a greenlet and are not
# rewritten at shutdown, so the final <prefix>_stats.csv can miss the last second
# of requests. Rewrite them one last time, on the same file handles, just before
# Locust closes them (after its runner has quit, i.e. with the final worker reports).
# ---------------------------------------------------------------------------
_original_close_files = StatsCSVFileWriter.close_files


def _close_files_with_final_write(self):
    for handle, write in (("requests_csv_filehandle", lambda: self.requests_csv(self.requests_csv_writer)),
                          ("failures_csv_filehandle", lambda: self.failures_csv(self.failures_csv_writer)),
                          ("exceptions_csv_filehandle", lambda: self.exceptions_csv(self.exceptions_csv_writer))):
        fh = getattr(self, handle, None)
        try:
            if fh is not None and not fh.closed:
                fh.seek(0)
                write()
                fh.truncate()
        except Exception as exc:  # keep Locust's own shutdown going whatever happens
            print(f"edgebench: final Locust CSV write failed: {exc}", flush=True)
    return _original_close_files(self)


StatsCSVFileWriter.close_files = _close_files_with_final_write
