"""edgebench's Locust users: open-loop metrics scrapers and sensor clients.

Run by ``loadtests.runner`` (headless, in a subprocess), or by hand::

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8000 \\
        -u 6 -r 100 -t 35s --stop-timeout 12 --scrapers 2 --scrape-rate 1 \\
        --sensor-users 4 --sensor-rate 5 --schedule-s 35 --samples-dir /tmp/run \\
        ScraperUser SensorUser

Traffic model (open loop)
-------------------------
Every user follows a fixed schedule of intended send times
``origin + phase + k / rate`` (``origin`` = this process's test start), whatever the
service does; the schedule ends ``--schedule-s`` seconds after the origin, and the
user then awaits what it still has in flight (each request is bounded by the request
timeout; ``--stop-timeout`` must exceed it so Locust does not cut the cool-down short).

* Phases: user ``i`` of a class takes slot ``i`` of that class's slots and a seeded
  random phase inside it, ``(slot + U) / slots · interval``: desynchronised like real
  collectors, never in lock-step, reproducible (``--phase-seed``), and recorded in
  ``schedule.part-<pid>.json``.
* ``ScraperUser``: a collector scraping ``GET /metrics``: at most one scrape in flight;
  a scrape due while the previous one runs is skipped and recorded as ``sent=0, ok=0``
  (a gap in the collector's data), like Prometheus/VictoriaMetrics.
* ``SensorUser``: a client ``GET /sensor``: a request due while earlier ones are in
  flight is still sent on time (one greenlet per request); in-flight requests are capped
  at ``ceil(timeout · rate) + 1`` per user and what the cap stops is recorded ``sent=0``.

Options
-------
The edgebench options above are the one way values reach this file (no environment
variables): ``loadtests.runner.build_command`` writes them from a ``LoadSpec`` that was
checked where the user set it. They are read once, at Locust's ``init``, by
:func:`_read_options`, which also refuses garbage typed by hand (``--scrape-rate 0``) with
one line and exit 2; nothing else in this file parses or checks them.

Raw samples
-----------
One row per intended request (columns: ``loadtests.samples.SAMPLE_COLUMNS``): sent
requests from Locust's ``request`` event (the intended time travels in the request's
``context``), unsent ones from the schedule. Each Locust process that runs users
appends to its own ``<samples-dir>/requests.part-<pid>.csv.gz``, about once a second,
as a complete gzip member, so a file cut short by a crash still holds every flushed
row. ``loadtests.runner`` merges the parts into ``requests.csv.gz``. The master (or the
single local process) writes ``<samples-dir>/test_start.json`` when the test starts:
the origin of the warm-up/steady window.
"""
from __future__ import annotations

import atexit
import ctypes
import gc
import gzip
import math
import os
import random
import signal
import sys
import threading
import time

import gevent
import gevent.monkey
from gevent.pool import Group
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust import User, events, task
from locust import stats as locust_stats
from locust.rpc import Message
from locust.runners import LocalRunner, MasterRunner, WorkerRunner
from locust.stats import StatsCSVFileWriter

from loadtests.samples import SAMPLE_COLUMNS
from plumbing.checks import SettingError, number
from plumbing.files import write_json_atomic

FLUSH_INTERVAL_S = 1.0
FLUSH_ROWS = 5000
IDLE_WAIT_S = 3600.0  # a user whose schedule is over waits (Locust stops waiting users at once)
PR_SET_PDEATHSIG = 1
EARLY_WAKE_S = 0.002
FINE_SLEEP_S = 0.0002  # the longest the hub is held while a request waits for its instant
# the headers Locust's FastHttpUser sends (loadtests/probe.py sends the same)
HEADERS = {"Accept-Encoding": "gzip, deflate, br", "User-Agent": "edgebench-locust"}

DEFAULTS = {
    "scrapers": 1,
    "scrape_rate": 1.0,
    "sensor_users": 1,
    "sensor_rate": 5.0,
    "request_timeout": 10.0,
    "schedule_s": 0.0,  # 0 = until Locust stops the users
    "phase_seed": 1,
    "load_processes": 1,
}


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    # text, read by _read_options: one place turns them into numbers (or refuses them)
    group = parser.add_argument_group("edgebench", "edgebench traffic model and raw sample export")
    group.add_argument("--scrapers", help="Number of /metrics scrapers (ScraperUser fixed_count)")
    group.add_argument("--scrape-rate", help="Scrapes per second per scraper (1 = 1 s interval)")
    group.add_argument("--sensor-users", help="Number of /sensor clients (SensorUser fixed_count)")
    group.add_argument("--sensor-rate", help="/sensor requests per second per client")
    group.add_argument("--request-timeout", help="Per-request timeout in seconds (like scrape_timeout)")
    group.add_argument("--schedule-s", help="Seconds after the test start at which the schedules end (0 = never)")
    group.add_argument("--phase-seed", help="Seed of the users' phases")
    group.add_argument("--load-processes", help="Locust processes running users (for the phase slots)")
    group.add_argument("--samples-dir", default="",
                       help="Directory for raw per-request samples (requests.part-<pid>.csv.gz); empty = off")


# option -> (flag, bounds for plumbing.checks.number)
_BOUNDS = {"scrapers": ("--scrapers", {"whole": True, "at_least": 0}),
           "scrape_rate": ("--scrape-rate", {"above": 0}),
           "sensor_users": ("--sensor-users", {"whole": True, "at_least": 0}),
           "sensor_rate": ("--sensor-rate", {"above": 0}),
           "request_timeout": ("--request-timeout", {"above": 0}),
           "schedule_s": ("--schedule-s", {"at_least": 0}),
           "phase_seed": ("--phase-seed", {"whole": True}),
           "load_processes": ("--load-processes", {"whole": True, "at_least": 1})}
_OPTIONS = dict(DEFAULTS)   # typed, set once by _read_options


def _read_options(parsed) -> dict:
    """The options as numbers, defaults where not given; garbage is one line (SettingError)."""
    out = dict(DEFAULTS)
    for name, (flag, bounds) in _BOUNDS.items():
        raw = getattr(parsed, name, None) if parsed is not None else None
        if raw is not None:
            out[name] = number(raw, flag, **bounds)
    return out


def _option(name):
    return _OPTIONS[name]


def in_flight_cap(timeout_s: float, rate: float) -> int:
    """Requests one open-loop client may have in flight: all it can send within a timeout."""
    return int(math.ceil(timeout_s * rate)) + 1


def phase_s(seed: int, user_class: str, slot: int, slots: int, interval_s: float) -> float:
    """A seeded random phase inside the user's own slot of the interval."""
    jitter = random.Random(f"{seed}:{user_class}:{slot}").random()
    return ((slot + jitter) / max(1, slots)) % 1.0 * interval_s


class _Plan:
    """This process's schedule origin and the users' phases (written for the record)."""

    def __init__(self):
        self.origin = None
        self.next_index: dict[str, int] = {}
        self.users: list[dict] = []

    def take_slot(self, user_class: str) -> int:
        j = self.next_index.get(user_class, 0)
        self.next_index[user_class] = j + 1
        return j


_PLAN = _Plan()
_real_sleep = gevent.monkey.get_original("time", "sleep")

# Locust rewrites its --csv files every second: a few ms in which the process serves no
# response, so whichever scraper's phase falls there saw its scrapes ~3 ms slower (its
# p95 was 5.8 ms against 4.2 ms for a probe beside it). The files are written once at the
# start and once, complete, at shutdown (_close_files_with_final_write below) instead.
locust_stats.CSV_STATS_INTERVAL_SEC = 24 * 3600


class HTTPStatusError(Exception):
    """A response with status >= 400: a failure in Locust's statistics."""


class _OpenLoopUser(User):
    """Sends ``path`` on its own schedule; ``cap`` requests at most in flight.

    Requests go through geventhttpclient's pooled client (the one under Locust's
    FastHttpUser) and are reported through Locust's ``request`` event, so Locust's
    statistics, reports and workers see them as usual; the timing covers send to last
    body byte and nothing else (FastHttpUser's session adds a cookie jar and response
    wrapping, ~0.2-0.4 ms per request here, measured in docs/loadtests.md)."""

    abstract = True
    path = ""
    rate_option = ""
    cap = 1
    timeout_s = DEFAULTS["request_timeout"]

    def __init__(self, environment):
        super().__init__(environment)
        self._http = HTTPClient.from_url(URL(self.host.rstrip("/") + "/"), concurrency=self.cap,
                                         connection_timeout=self.timeout_s, network_timeout=self.timeout_s,
                                         headers=HEADERS)
        self._url = self.host.rstrip("/") + self.path
        self._in_flight = Group()
        self._done = False
        env = self.environment
        self.interval_s = 1.0 / _option(self.rate_option)
        processes = _option("load_processes")
        worker = max(0, int(getattr(env.runner, "worker_index", 0) or 0))
        name = type(self).__name__
        slots = processes * int(math.ceil(max(1, self.fixed_count) / processes))
        self.slot = _PLAN.take_slot(name) * processes + worker
        self.phase_s = phase_s(_option("phase_seed"), name, self.slot, slots, self.interval_s)
        _PLAN.users.append({"user": name, "slot": self.slot, "slots": slots, "phase_s": self.phase_s,
                            "interval_s": self.interval_s, "cap": self.cap})

    def wait_time(self):
        return IDLE_WAIT_S if self._done else 0.0

    @task
    def follow_schedule(self):
        if self._done:
            return
        origin = _PLAN.origin if _PLAN.origin is not None else time.time()
        schedule_s = _option("schedule_s")
        end = origin + schedule_s if schedule_s > 0 else math.inf
        k = 0
        while True:
            intended = origin + self.phase_s + k * self.interval_s
            if intended >= end:
                break
            delay = intended - EARLY_WAKE_S - time.time()
            if delay > 0:
                gevent.sleep(delay)
            if len(self._in_flight) >= self.cap:
                _SAMPLES.add_unsent(intended, self.path)
            else:
                self._in_flight.spawn(self._send, intended)
            k += 1
        # cool-down: what was sent is awaited (each request ends by its own timeout)
        self._in_flight.join(timeout=_option("request_timeout") + 1.0)
        self._done = True

    def _send(self, intended: float) -> None:
        # gevent's timers wake up to ~1 ms late (epoll's millisecond timeout): the schedule
        # wakes EARLY_WAKE_S ahead and this greenlet waits out the rest in short real
        # sleeps (precise, no CPU burnt), letting the hub run between them
        while (left := intended - time.time()) > 0:
            _real_sleep(min(left, FINE_SLEEP_S))
            gevent.sleep(0)
        response, exception, nbytes = None, None, 0
        start = time.time()
        t0 = time.perf_counter()
        try:
            response = self._http.get(self.path)
            nbytes = len(response.read())
            if response.status_code >= 400:
                exception = HTTPStatusError(f"HTTP {response.status_code}")
        except Exception as exc:  # refused, reset, timeout: recorded as a failure with no status
            exception = exc
            response = None
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        self.environment.events.request.fire(
            request_type="GET", name=self.path, response_time=elapsed_ms, response_length=nbytes,
            response=response, exception=exception, context={"intended": intended}, start_time=start,
            url=self._url)

    def on_stop(self):
        self._in_flight.kill(block=False)
        self._http.close()


class ScraperUser(_OpenLoopUser):
    """A collector scraping /metrics at a fixed interval, never two scrapes at once."""

    fixed_count = DEFAULTS["scrapers"]
    rate_option = "scrape_rate"
    path = "/metrics"
    cap = 1


class SensorUser(_OpenLoopUser):
    """A client reading the sensor endpoint at a fixed rate, open loop."""

    fixed_count = DEFAULTS["sensor_users"]
    rate_option = "sensor_rate"
    path = "/sensor"


def _die_with_parent() -> None:
    """A forked Locust worker must not outlive its master (which dies with the runner)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


_RUNNER = {"master": False}   # set at init: spawning_complete is fired without the environment


@events.init.add_listener
def _configure(environment, **_kw):
    _RUNNER["master"] = isinstance(environment.runner, MasterRunner)
    if isinstance(environment.runner, WorkerRunner):
        _die_with_parent()
    try:
        _OPTIONS.update(_read_options(environment.parsed_options))
    except SettingError as e:   # typed by hand: one line, like every edgebench refusal
        print(f"locustfile: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    ScraperUser.fixed_count = _option("scrapers")
    SensorUser.fixed_count = _option("sensor_users")
    timeout = _option("request_timeout")
    SensorUser.cap = in_flight_cap(timeout, _option("sensor_rate"))
    for cls in (ScraperUser, SensorUser):
        cls.timeout_s = timeout
    if environment.parsed_options is not None:
        _SAMPLES.directory = environment.parsed_options.samples_dir or ""


# ---------------------------------------------------------------------------
# raw sample export
# ---------------------------------------------------------------------------
class _SampleWriter:
    """Buffers request samples and appends them as gzip members to a per-process file."""

    def __init__(self):
        self.directory = ""   # --samples-dir, set at init
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

    def add(self, intended, start, name, latency_ms, ok, nbytes, status):
        # repr() keeps every digit of the floats; the listener stays a few microseconds.
        self._rows.append(f"{intended!r},{start!r},{name},{latency_ms!r},{ok},{nbytes},{status},1\n")
        if len(self._rows) >= FLUSH_ROWS:
            self.flush()

    def add_unsent(self, intended, name):
        self._rows.append(f"{intended!r},,{name},,0,0,0,0\n")

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
                exception=None, start_time=None, context=None, **_kw):
    if start_time is None:
        start_time = time.time() - (response_time or 0.0) / 1000.0
    intended = (context or {}).get("intended", start_time)
    status = getattr(response, "status_code", 0) or 0
    _SAMPLES.add(intended, start_time, name, float(response_time or 0.0), 0 if exception else 1,
                 int(response_length or 0), int(status))


@events.test_start.add_listener
def _on_test_start(environment, **_kw):
    now = time.time()
    _PLAN.origin = now
    if isinstance(environment.runner, (MasterRunner, LocalRunner)):
        _write_test_start(now)
    if not isinstance(environment.runner, MasterRunner):
        # what start-up built (Locust, gevent, their imports) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it mid-request
        gc.collect()
        gc.freeze()
        _SAMPLES.start_flusher()


def _write_test_start(now: float):
    if _SAMPLES.directory:
        write_json_atomic(os.path.join(_SAMPLES.directory, "test_start.json"),
                          {"test_start": now, "pid": os.getpid(), "scrapers": ScraperUser.fixed_count,
                           "sensor_users": SensorUser.fixed_count})


def _write_schedule():
    """The phases this process's users followed (merged by the runner into schedule.json)."""
    if _SAMPLES.directory and _PLAN.users:
        write_json_atomic(os.path.join(_SAMPLES.directory, f"schedule.part-{os.getpid()}.json"),
                          {"pid": os.getpid(), "origin": _PLAN.origin, "users": _PLAN.users})


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count, **_kw):
    # Locust passes only the user count here; the runner is the module's environment's
    if not _RUNNER["master"]:
        _write_schedule()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kw):
    if not isinstance(environment.runner, MasterRunner):
        _write_schedule()
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


# ---------------------------------------------------------------------------
# Locust's master quits half a second after telling its workers to (MasterRunner.quit),
# so on a busy machine a worker's final statistics arrived too late and the last requests
# were missing from Locust's totals, the count edgebench's samples are checked against.
# A worker sends its final report, then its own "quit", on one socket in order: the
# master waits for every worker's "quit" (which removes it from ``clients``), bounded.
# ---------------------------------------------------------------------------
FINAL_REPORT_WAIT_S = 15.0


def _quit_after_final_reports(self) -> None:
    if getattr(self, "_edgebench_quitting", False):   # re-entered when the last worker quits
        return
    self._edgebench_quitting = True
    self.stop(send_stop_to_client=False)
    for client in self.clients.all:
        self.server.send_to_client(Message("quit", None, client.id))
    deadline = time.monotonic() + FINAL_REPORT_WAIT_S
    while self.clients.all and time.monotonic() < deadline:
        gevent.sleep(0.05)
    if self.clients.all:
        print(f"edgebench: {len(self.clients.all)} Locust worker(s) sent no final report within "
              f"{FINAL_REPORT_WAIT_S:g} s: Locust's totals may miss their last requests", flush=True)
    self.greenlet.kill(block=True)


MasterRunner.quit = _quit_after_final_reports
