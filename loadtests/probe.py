"""An independent, low-overhead client: the yardstick Locust's latencies are checked against.

One process, one thread, one keep-alive connection per client slot, ``http.client`` and
``time.sleep`` (no gevent, no Locust): it sends ``path`` on an open-loop schedule of
``rate`` requests/s and writes one row per intended request in the
``loadtests.samples`` format. A request due while the previous one is still running is
sent as soon as the connection is free (its lateness is in ``start - intended``).

Its own process, beside Locust's: ``edgebench agreement`` (loadtests/agreement.py) and the
agreement test start it as ``python -m loadtests.probe --target URL --path /metrics
--rate 4 --duration 10 --out FILE``.
"""
from __future__ import annotations

import argparse
import csv
import gc
import gzip
import http.client
import io
import sys
import time
import urllib.parse
from pathlib import Path

from loadtests.samples import SAMPLE_COLUMNS
from plumbing.errors import EdgebenchError
from plumbing.files import write_atomic

# the headers Locust's FastHttpUser sends: both clients ask the service for the same work
HEADERS = {"Accept-Encoding": "gzip, deflate, br", "User-Agent": "edgebench-probe"}


class ProbeError(EdgebenchError):
    """The probe cannot run (bad target, unreachable service)."""


def _connect(target: str, timeout: float) -> http.client.HTTPConnection:
    url = urllib.parse.urlparse(target)
    if url.scheme != "http" or not url.hostname:
        raise ProbeError(f"probe target {target!r} is not an http URL: pass e.g. --target http://127.0.0.1:8000")
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    try:
        conn.connect()
    except OSError as e:
        raise ProbeError(f"probe target {target} does not answer ({e}): start the service first") from None
    return conn


def run_probe(target: str, path: str, rate: float, duration_s: float, out: Path | None = None,
              timeout: float = 10.0, phase_s: float = 0.0) -> list[tuple]:
    """Send ``path`` at ``rate``/s for ``duration_s`` s; returns (and writes to ``out``) the
    rows in SAMPLE_COLUMNS order. The collector is paused so it cannot add to a latency."""
    if not rate > 0 or not duration_s > 0:
        raise ProbeError(f"probe rate={rate!r} and duration={duration_s!r} must be > 0")
    conn = _connect(target, timeout)
    rows = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        origin = time.time() + 0.05
        n = int(duration_s * rate)
        for k in range(n):
            intended = origin + phase_s + k / rate
            delay = intended - time.time()
            if delay > 0:
                time.sleep(delay)
            start = time.time()
            t0 = time.perf_counter()
            status, nbytes = 0, 0
            try:
                conn.request("GET", path, headers=HEADERS)
                resp = conn.getresponse()
                body = resp.read()
                status, nbytes = resp.status, len(body)
            except (OSError, http.client.HTTPException):
                conn.close()  # reconnects on the next request
            latency_ms = (time.perf_counter() - t0) * 1000.0
            rows.append((intended, start, path, latency_ms, int(200 <= status < 400), nbytes, status, 1))
    finally:
        conn.close()
        if gc_was_enabled:
            gc.enable()
    if out is not None:
        write_rows(rows, Path(out))
    return rows


def write_rows(rows: list[tuple], out: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SAMPLE_COLUMNS)
    writer.writerows(rows)
    data = buf.getvalue().encode()
    write_atomic(out, gzip.compress(data) if out.name.endswith(".gz") else data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.probe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="http://127.0.0.1:8000")
    ap.add_argument("--path", default="/metrics")
    ap.add_argument("--rate", type=float, default=1.0, help="requests/s (default %(default)s)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout s (default %(default)s)")
    ap.add_argument("--out", type=Path, required=True, help="samples file (.csv or .csv.gz)")
    args = ap.parse_args(argv)
    try:
        rows = run_probe(args.target, args.path, args.rate, args.duration, args.out, args.timeout)
    except EdgebenchError as e:
        print(f"probe: {e}", file=sys.stderr)
        return e.exit_code
    print(f"probe: {len(rows)} requests to {args.path} written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
