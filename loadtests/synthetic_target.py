"""A cheap scrape target with N labelled gauge series, for the collector capacity sweep.

``python -m loadtests.synthetic_target --series N [--port P] [--host H] [--seed S]`` serves

* ``/metrics``: all N series (one ``robot_sensor_value`` family, realistic label sets);
* ``/metrics/<i>``: shard i alone (at most ``--shard-series`` series each): the collectors
  scrape the shards as separate targets, because VictoriaMetrics refuses a single response
  above ``-promscrape.maxScrapeSize`` (16 MiB by default, ~180,000 of these series), and a
  real fleet is many targets of modest size, not one huge one;
* ``/healthz``; ``/stats``: JSON with every scrape served (path, start time, send duration,
  bytes, whether the client read it all) and the body sizes.

It runs outside the limits but shares the machine's cores with the collector it feeds,
so it must stay cheap: the bodies are rendered once at start-up (``--bodies`` versions of
every shard, each with other values) and rotated, so every scrape of a target sees values
that changed since the previous one while a scrape costs only a socket write.
``check_series_fits(n)`` refuses, before anything starts, an N whose bodies would not fit
in the machine's available memory. Stdlib only: the sensor-service image runs it.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from plumbing.errors import EdgebenchError

FAMILY = "robot_sensor_value"
KINDS = ("temperature", "humidity", "pressure", "vibration", "current", "voltage", "torque", "position")
ZONES = 16
DEFAULT_BODIES = 4
DEFAULT_SHARD_SERIES = 50_000
# A line is ~95 bytes (robot_sensor_value{robot="r003",sensor="s0123456",kind="temperature",
# zone="zone-07"} 23.41); each rendered body keeps one per series, and rendering holds about
# 250 bytes per series of Python objects for a moment. Estimated generously, not measured.
LINE_BYTES = 100
RENDER_BYTES_PER_SERIES = 250
MEMORY_FRACTION = 0.8  # of MemAvailable: the collector and the rest of the machine need the rest
HEADER = (f"# HELP {FAMILY} Latest reading of one robot sensor.\n# TYPE {FAMILY} gauge\n").encode()
MAX_RECORDED_SCRAPES = 100_000


class SeriesError(EdgebenchError):
    """A series count the synthetic target cannot serve; one line naming the fix."""


def estimated_bytes(n: int, bodies: int = DEFAULT_BODIES) -> int:
    """Memory the target needs for ``n`` series: its rendered bodies plus rendering."""
    return n * (bodies * LINE_BYTES + RENDER_BYTES_PER_SERIES)


def mem_available_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_series_fits(n: int, bodies: int = DEFAULT_BODIES, available: int | None = None) -> None:
    """Refuse (SeriesError) a series count that is not positive, or whose bodies would not
    fit in ``MEMORY_FRACTION`` of MemAvailable (``available`` overrides it, for tests)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SeriesError(f"series count {n!r} is not a positive whole number; fix: pass e.g. --series 10000")
    if bodies < 1:
        raise SeriesError(f"bodies {bodies!r} is below 1; fix: pass --bodies 2 or more")
    avail = mem_available_bytes() if available is None else available
    need = estimated_bytes(n, bodies)
    if avail is not None and need > MEMORY_FRACTION * avail:
        fits = int(MEMORY_FRACTION * avail // estimated_bytes(1, bodies))
        raise SeriesError(f"{n:,} series need about {need / 2**30:.1f} GiB for the synthetic target's "
                          f"{bodies} bodies, more than {MEMORY_FRACTION:.0%} of the "
                          f"{avail / 2**30:.1f} GiB available; fix: use at most {fits:,} series")


def shard_sizes(n: int, shard_series: int = DEFAULT_SHARD_SERIES) -> list[int]:
    """Series per shard: full shards of ``shard_series`` and the remainder."""
    full, rest = divmod(n, shard_series)
    return [shard_series] * full + ([rest] if rest else [])


def spread_sizes(n: int, low: int, high: int, seed: int = 1) -> list[int]:
    """``n`` series over targets of ``low`` to ``high`` series each (drawn uniformly with
    ``seed``; the last target takes the remainder, merged into its predecessor when that
    would leave it under ``low``): many modest targets, as a fleet has them."""
    if not (1 <= low <= high):
        raise SeriesError(f"target sizes {low}-{high} are not 1 <= low <= high; fix: pass e.g. --spread 500-2000")
    rng = random.Random(seed)
    sizes: list[int] = []
    left = n
    while left > 0:
        size = min(left, rng.randint(low, high))
        sizes.append(size)
        left -= size
    if len(sizes) > 1 and sizes[-1] < low:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


def parse_spread(text: str) -> tuple[int, int]:
    """``"500-2000"`` -> (500, 2000); SeriesError with the fix otherwise."""
    lo, sep, hi = str(text).partition("-")
    try:
        low, high = int(lo), int(hi)
    except ValueError:
        raise SeriesError(f"--spread {text!r} is not LOW-HIGH; fix: pass e.g. --spread 500-2000") from None
    if not sep or not (1 <= low <= high):
        raise SeriesError(f"--spread {text!r} is not LOW-HIGH with 1 <= LOW <= HIGH; fix: pass e.g. --spread 500-2000")
    return low, high


def render_shard(shard: int, first: int, count: int, bodies: int, seed: int) -> list[bytes]:
    """``bodies`` versions of one shard's lines (no header): the same label sets, other values.

    A series' value is its own base plus a per-body offset drawn from a small table, so
    consecutive bodies differ in (almost) every value, the way sensors drift."""
    rng = random.Random(seed * 1_000_003 + shard)
    prefixes = [f'{FAMILY}{{robot="r{shard:03d}",sensor="s{i:07d}",kind="{KINDS[i % len(KINDS)]}",'
                f'zone="zone-{i % ZONES:02d}"}} ' for i in range(first, first + count)]
    bases = [rng.uniform(-20.0, 80.0) for _ in range(count)]
    table = [rng.gauss(0.0, 0.8) for _ in range(1021)]
    out = []
    for b in range(bodies):
        shift = 1 + 97 * b
        out.append("".join(f"{p}{base + table[(i * 7 + shift) % 1021]:.2f}\n"
                           for i, (p, base) in enumerate(zip(prefixes, bases))).encode())
    return out


class Target:
    """The rendered bodies and the record of what was served."""

    def __init__(self, n: int, seed: int = 1, bodies: int = DEFAULT_BODIES,
                 shard_series: int = DEFAULT_SHARD_SERIES, sizes: list[int] | None = None):
        self.n = n
        self.bodies = bodies
        self.shards: list[list[bytes]] = []
        first = 0
        for s, count in enumerate(sizes or shard_sizes(n, shard_series)):
            self.shards.append(render_shard(s, first, count, bodies, seed))
            first += count
        self.rotation = [0] * len(self.shards)   # next body index per shard
        self.whole_rotation = 0
        self.lock = threading.Lock()
        self.scrapes: list[dict] = []
        self.served = 0
        self.failed = 0
        self.ready_at = time.time()

    def next_body(self, shard: int | None) -> list[bytes]:
        """The chunks of the next body of ``shard`` (None: every shard, one header)."""
        with self.lock:
            if shard is None:
                k = self.whole_rotation
                self.whole_rotation += 1
                return [HEADER] + [bodies[k % self.bodies] for bodies in self.shards]
            k = self.rotation[shard]
            self.rotation[shard] += 1
        return [HEADER, self.shards[shard][k % self.bodies]]

    def record(self, path: str, start: float, send_s: float, nbytes: int, ok: bool,
               client: str | None = None) -> None:
        with self.lock:
            if ok:
                self.served += 1
            else:
                self.failed += 1
            if len(self.scrapes) < MAX_RECORDED_SCRAPES:
                self.scrapes.append({"path": path, "start": round(start, 4), "send_s": round(send_s, 6),
                                     "bytes": nbytes, "ok": ok, "client": client})

    def stats(self) -> dict:
        with self.lock:
            scrapes = list(self.scrapes)
            served, failed = self.served, self.failed
        sizes = [len(HEADER) + len(s[0]) for s in self.shards]
        return {"series": self.n, "shards": len(self.shards), "bodies": self.bodies,
                "shard_paths": [f"/metrics/{i}" for i in range(len(self.shards))],
                "shard_body_bytes": sizes, "body_bytes": len(HEADER) + sum(s - len(HEADER) for s in sizes),
                "ready_at": self.ready_at, "scrapes_served": served, "scrapes_failed": failed,
                "scrapes": scrapes}


def make_handler(target: Target):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # one line per scrape would cost more than the scrape
            pass

        def _send(self, code: int, ctype: str, chunks: list[bytes]) -> tuple[int, bool]:
            size = sum(len(c) for c in chunks)
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                for c in chunks:
                    self.wfile.write(c)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True
                return size, False
            return size, True

        def do_GET(self):
            start = time.time()
            path, _, query = self.path.partition("?")
            # ?c=<name>: which collector asked (several scrape one target side by side)
            client = next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "c"), None)
            if path == "/healthz":
                self._send(200, "text/plain", [b"ok\n"])
            elif path == "/stats":
                self._send(200, "application/json", [json.dumps(target.stats()).encode()])
            elif path == "/metrics" or path.startswith("/metrics/"):
                shard = None
                if path != "/metrics":
                    tail = path[len("/metrics/"):]
                    if not tail.isdigit() or int(tail) >= len(target.shards):
                        self._send(404, "text/plain", [b"no such shard\n"])
                        return
                    shard = int(tail)
                size, ok = self._send(200, "text/plain; version=0.0.4; charset=utf-8", target.next_body(shard))
                target.record(path, start, time.time() - start, size, ok, client)
            else:
                self._send(404, "text/plain", [b"not found\n"])

    return Handler


def _args(argv: list[str] | None) -> argparse.Namespace:
    class OneLine(argparse.ArgumentParser):
        def error(self, message):
            raise SeriesError(f"bad command line: {message}; see `python -m loadtests.synthetic_target --help`")

    p = OneLine(prog="python -m loadtests.synthetic_target", description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, required=True, help="number of series N")
    p.add_argument("--port", type=int, default=None, help="listen port (env SENSOR_PORT, default 8000)")
    p.add_argument("--host", default=None, help="listen address (env SENSOR_HOST, default 127.0.0.1)")
    p.add_argument("--seed", type=int, default=1, help="values' random seed (default 1)")
    p.add_argument("--bodies", type=int, default=DEFAULT_BODIES, help="rendered versions rotated per shard")
    p.add_argument("--shard-series", type=int, default=DEFAULT_SHARD_SERIES,
                   help="series per /metrics/<i> shard (default 50000: ~5 MB, under VictoriaMetrics' 16 MiB)")
    p.add_argument("--spread", default=None,
                   help="LOW-HIGH: shards of LOW to HIGH series each (drawn with --seed) instead of --shard-series")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        a = _args(argv)
        check_series_fits(a.series, a.bodies)
        if a.shard_series < 1:
            raise SeriesError(f"--shard-series {a.shard_series} is below 1; fix: pass e.g. --shard-series 50000")
        # the native engine passes the host port through SENSOR_HOST/SENSOR_PORT, as for the service
        host = a.host or os.environ.get("SENSOR_HOST") or "127.0.0.1"
        port = a.port if a.port is not None else int(os.environ.get("SENSOR_PORT") or 8000)
        sizes = spread_sizes(a.series, *parse_spread(a.spread), seed=a.seed) if a.spread else None
        t0 = time.monotonic()
        target = Target(a.series, seed=a.seed, bodies=a.bodies, shard_series=a.shard_series, sizes=sizes)
        server = ThreadingHTTPServer((host, port), make_handler(target))
    except EdgebenchError as e:
        print(f"synthetic target: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"synthetic target: cannot listen ({e}); fix: pass a free --port", file=sys.stderr)
        return 2
    server.daemon_threads = True
    print(f"synthetic target: {a.series:,} series in {len(target.shards)} shard(s), "
          f"{target.stats()['body_bytes']:,} bytes per exposition, rendered in {time.monotonic() - t0:.1f}s, "
          f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
