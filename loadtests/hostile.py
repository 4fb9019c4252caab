"""Hostile and broken clients against a real stack under the compose limits.

``bin/edgebench hostile --variant optimized [--cases a,b]`` starts
the service and VictoriaMetrics natively (50 MB / 0.5 CPU for the service), then runs
each attack for a bounded window on loopback while the collector scrapes as usual and a
probe scraper asks for /metrics on a fresh connection twice a second (a collector that
has to reconnect, the hard case). Per attack it records the collector's scrapes
(answered, failed, p99 from its ``up``/``scrape_duration_seconds`` samples), the probe's,
OOM kills and restarts (state.json), the cgroup's memory high-water mark against the
limit, and what the attacking client got back. Every socket is closed when its window
ends and the stack is stopped on success, error and Ctrl-C."""
from __future__ import annotations

import json
import re
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from plumbing.wait import WaitTimeout, wait_until

SCRAPE_TIMEOUT_S = 4.0       # stack/scrape.yml
PROBE_EVERY_S = 0.5
CAP = 64                     # the lean server's default connection cap (service/lean_server.py)
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------- client helpers

def connect(port: int, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def status_of(sock: socket.socket, timeout: float = 3.0) -> str:
    """The status code of the answer on ``sock`` ("closed" / "reset" / "timeout" without one)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                return "closed" if not data else "truncated"
            data += piece
    except TimeoutError:
        return "no answer"
    except ConnectionResetError:
        return "reset"
    except OSError:
        return "closed"
    parts = data.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "garbage"


def send_and_status(port: int, raw: bytes, timeout: float = 3.0) -> str:
    try:
        with connect(port, timeout) as s:
            try:
                s.sendall(raw)
            except OSError:
                pass   # the server may close before taking it all: its answer is still there
            return status_of(s, timeout)
    except OSError as exc:
        return f"connect failed ({type(exc).__name__})"


def send_and_read(port: int, raw: bytes, timeout: float = 3.0) -> list[str]:
    """The statuses of every answer until the server closes (pipelined requests)."""
    out = b""
    try:
        with connect(port, timeout) as s:
            s.sendall(raw)
            while piece := s.recv(65536):
                out += piece
    except OSError:
        pass
    return [m.decode() for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)]


def still_open(sock: socket.socket) -> bool:
    """Has the server left this idle connection open (no EOF, no answer)?"""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)    # EOF or an answer: the server gave up on it
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def read_answer(sock: socket.socket, timeout: float = 5.0) -> tuple[str, dict, bytes]:
    """Read one whole answer with a Content-Length: (status, headers, body)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("closed before the head")
        buf += piece
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return lines[0].split(" ")[1], headers, body


def outcome_text(counts: Counter) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counts.most_common())


# ---------------------------------------------------------------- attacks
# Each takes (port, window_s, stop_event) and returns (Counter of what the client got, note).

def idle(n: int):
    def attack(port, window_s, stop):
        socks, got = [], Counter()
        try:
            for _ in range(n):
                if stop.is_set():        # a server whose backlog is full: stop at the window's end
                    got["not opened in the window"] += n - len(socks) - sum(got.values())
                    break
                try:
                    socks.append(connect(port, timeout=1.0))
                except OSError:
                    got["connect failed"] += 1
            stop.wait(window_s)
            for s in socks:
                got["still open" if still_open(s) else "closed by the server"] += 1
        finally:
            for s in socks:
                s.close()
        return got, f"{n} connections, nothing sent, held {window_s:.0f} s"
    return attack


def slowloris(n: int, every_s: float = 1.0):
    def attack(port, window_s, stop):
        socks, got = [], Counter()
        try:
            for _ in range(n):
                if stop.is_set():        # a server whose backlog is full: stop at the window's end
                    got["not opened in the window"] += n - len(socks) - sum(got.values())
                    break
                try:
                    s = connect(port, timeout=1.0)
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    socks.append(s)
                except OSError:
                    got["connect failed"] += 1
            line = 0
            while not stop.wait(every_s):
                line += 1
                for s in list(socks):
                    try:
                        s.sendall(f"X-Slow-{line}: {line}\r\n".encode())
                    except OSError:
                        socks.remove(s)
                        got[status_of(s, 0.5)] += 1
            for s in socks:
                got["still open" if still_open(s) else status_of(s, 0.5)] += 1
        finally:
            for s in socks:
                s.close()
        return got, f"{n} connections sending a header line every {every_s:g} s"
    return attack


def slow_body(n: int, length: int = 60_000, rate: int = 100):
    def attack(port, window_s, stop):
        socks, got = [], Counter()
        try:
            for _ in range(n):
                if stop.is_set():        # a server whose backlog is full: stop at the window's end
                    got["not opened in the window"] += n - len(socks) - sum(got.values())
                    break
                try:
                    s = connect(port, timeout=1.0)
                    s.sendall(f"POST /sensor HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
                    socks.append(s)
                except OSError:
                    got["connect failed"] += 1
            while not stop.wait(1.0):
                for s in list(socks):
                    try:
                        s.sendall(b"x" * rate)
                    except OSError:
                        socks.remove(s)
                        got[status_of(s, 0.5)] += 1
            for s in socks:
                got["still open" if still_open(s) else status_of(s, 0.5)] += 1
        finally:
            for s in socks:
                s.close()
        return got, f"{n} POSTs announcing {length} bytes, sending {rate} B/s"
    return attack


def _blob_connection(port) -> socket.socket | None:
    """A connection whose answer in flight is a 5 MB blob (asks /sensor until one comes)."""
    s = connect(port, timeout=5.0)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(60):
            s.sendall(b"GET /sensor HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_answer(s)
            if headers.get("x-sensor-blob") == "1":
                return s, len(body)
            want = int(headers.get("content-length", "0"))
            while len(body) < want:
                body += s.recv(want - len(body))
    except BaseException:
        s.close()      # not left open behind an exception's traceback
        raise
    s.close()
    return None, 0


def slow_readers(n: int, rate: int = 1024):
    def attack(port, window_s, stop):
        got, conns = Counter(), []
        try:
            with ThreadPoolExecutor(n) as pool:
                for result in pool.map(lambda _: _try(lambda: _blob_connection(port)), range(n)):
                    if isinstance(result, tuple) and result[0] is not None:
                        conns.append([result[0], result[1]])
                    else:
                        got["no blob answer"] += 1
            while not stop.wait(1.0):
                for c in conns:
                    if c[0] is None:
                        continue
                    try:
                        c[0].setblocking(False)
                        piece = c[0].recv(rate)
                        c[1] += len(piece)
                        if not piece:
                            got[f"closed by the server after {c[1] // 1024} KB"] += 1
                            c[0].close()
                            c[0] = None
                    except BlockingIOError:
                        pass
                    except OSError:
                        got[f"reset after {c[1] // 1024} KB"] += 1
                        c[0].close()
                        c[0] = None
            for c in conns:
                if c[0] is not None:   # a reset may wait behind bytes still in our receive buffer
                    reset = c[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    got[f"reset after {c[1] // 1024} KB" if reset else "still reading"] += 1
        finally:
            for c in conns:
                if c[0] is not None:
                    c[0].close()
        return got, f"{n} clients reading a 5 MB /sensor answer at {rate // 1024} KB/s"
    return attack


def _try(fn):
    try:
        return fn()
    except Exception as exc:   # an attack client failing is a result, not an error
        return exc


def repeat(make_requests: Callable[[int], list[tuple[str, bytes]]], note: str, pause_s: float = 0.2):
    """Send each (label, raw request) again and again for the window; count the statuses."""
    def attack(port, window_s, stop):
        got = Counter()
        while not stop.is_set():
            for label, raw in make_requests(port):
                got[f"{label}: {send_and_status(port, raw)}"] += 1
            stop.wait(pause_s)
        return got, note
    return attack


def big_body(port):
    """60 MB body, more than the 50 MB memory limit, streamed as fast as the server takes it."""
    got = Counter()
    try:
        with connect(port, 10) as s:
            s.sendall(b"POST /sensor HTTP/1.1\r\nHost: x\r\nContent-Length: 62914560\r\n\r\n")
            sent, chunk = 0, b"x" * 65536
            try:
                while sent < 62914560:
                    sent += s.send(chunk)
            except OSError:
                pass
            got[f"{status_of(s, 5)} after {sent // 2**20} MB sent"] += 1
    except OSError as exc:
        got[type(exc).__name__] += 1
    return got


def once_per_window(fn, note):
    def attack(port, window_s, stop):
        got = Counter()
        while not stop.is_set():
            got.update(fn(port))
            stop.wait(0.5)
        return got, note
    return attack


BAD_LENGTHS = [("Content-Length abc", b"POST /sensor HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
               ("Content-Length -5", b"POST /sensor HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
               ("Content-Length 99999999999",
                b"POST /sensor HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"),
               ("Content-Length 5, 7", b"POST /sensor HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                       b"Content-Length: 7\r\n\r\nhello")]


def chunked(port):
    got = Counter()
    # a valid chunked body, then a pipelined GET: the body must not be read as a request
    answer = send_and_read(port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nGET /\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
    got[f"valid chunked POST + GET: {' then '.join(answer) or 'nothing'}"] += 1
    raw_big = (b"POST /sensor HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"100000\r\n" + b"x" * 0x100000 + b"\r\n0\r\n\r\n")
    got[f"1 MB chunk: {send_and_status(port, raw_big)}"] += 1
    got["bad chunk size: " + send_and_status(
        port, b"POST /sensor HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n")] += 1
    got["Transfer-Encoding gzip: " + send_and_status(
        port, b"POST /sensor HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")] += 1
    return got


def pipelined(port, n=50):
    got = Counter()
    try:
        with connect(port, 5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * n)
            answered, buf = 0, b""
            for _ in range(n):
                while b"\r\n\r\n" not in buf:
                    buf += _recv_some(s)
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(buf) < length:
                    buf += _recv_some(s)
                answered += head.split(b" ")[1] == b"200" and buf[:length].startswith(b"# HELP")
                buf = buf[length:]
            got[f"{answered} of {n} answered 200 in order"] += 1
    except (OSError, ValueError, IndexError) as exc:
        got[f"{type(exc).__name__}"] += 1
    return got


def _recv_some(s) -> bytes:
    piece = s.recv(65536)
    if not piece:
        raise ConnectionError("closed")
    return piece


OVERSIZED = [("100 KB request line", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
             ("200 KB header line", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n"),
             ("2000 header lines", b"GET /metrics HTTP/1.1\r\n" + b"X-H: 1234567890\r\n" * 2000 + b"\r\n"),
             ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")]


def reset_mid_answer(port):
    got = Counter()
    try:
        s, _ = _blob_connection(port)
        if s is None:
            return Counter({"no blob answer": 1})
        s.recv(16384)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()   # RST with most of the 5 MB still to send
        got["reset sent mid-answer"] += 1
    except OSError as exc:
        got[type(exc).__name__] += 1
    return got


def burst(n: int):
    def attack(port, window_s, stop):
        got, times = Counter(), []
        gate = threading.Barrier(n)

        def one(_):
            try:
                gate.wait(5)
            except threading.BrokenBarrierError:
                pass
            t0 = time.monotonic()
            status = send_and_status(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                     SCRAPE_TIMEOUT_S)
            times.append(time.monotonic() - t0)
            return status

        with ThreadPoolExecutor(n) as pool:
            got.update(pool.map(one, range(n)))
        stop.wait(max(0.0, window_s - max(times, default=0)))
        return got, f"{n} connections at once, one /metrics each; slowest {max(times) * 1000:.0f} ms"
    return attack


@dataclass(frozen=True)
class Case:
    name: str
    attack: Callable
    window_s: float
    expect: Callable[[Counter], bool]   # what the client must get from a hardened service


def _all(pred):
    return lambda got: bool(got) and all(pred(k) for k in got)


def _refused(label_and_status: str) -> bool:
    """A 4xx (or 501 for a transfer-coding the server does not know) for a bad request."""
    status = label_and_status.rsplit(": ", 1)[-1].split(" ")[0]
    return (len(status) == 3 and status.startswith("4")) or status == "501"


CASES = [
    Case("idle connections, 2x the cap", idle(2 * CAP), 10, lambda got: True),
    Case("idle connections, 500", idle(500), 10, lambda got: True),
    Case("slowloris headers, 100 connections", slowloris(100), 10,
         _all(lambda k: k in ("408", "closed", "closed by the server"))),
    Case("slowly trickled body, 20 connections", slow_body(20), 10,
         _all(lambda k: k in ("closed", "closed by the server") or _refused(k))),
    Case("slow readers of the 5 MB answer, 10 at 1 KB/s", slow_readers(10), 15, lambda got: True),
    Case("60 MB body (more than the memory limit)", once_per_window(big_body, "POST /sensor, 60 MB"), 6,
         _all(_refused)),
    Case("malformed, negative and huge Content-Length",
         repeat(lambda port: BAD_LENGTHS, "4 requests, repeated"), 6, _all(_refused)),
    Case("chunked bodies", once_per_window(chunked, "valid, 1 MB, bad size, gzip"), 6,
         _all(lambda k: k.endswith("405 then 200") or (not k.startswith("valid") and _refused(k)))),
    Case("pipelined requests", once_per_window(pipelined, "50 GET /metrics in one send"), 6,
         _all(lambda k: k.startswith("50 of 50"))),
    Case("oversized request line and headers", repeat(lambda port: OVERSIZED, "4 requests, repeated"), 6,
         _all(_refused)),
    Case("reset in the middle of an answer", once_per_window(reset_mid_answer, "RST after 16 KB of 5 MB"), 6,
         lambda got: True),
    Case("burst of 200 new connections", burst(200), 6, _all(lambda k: k == "200")),
]


# ---------------------------------------------------------------- measuring

class Probe(threading.Thread):
    """Scrape /metrics on a fresh connection every PROBE_EVERY_S within the scrape timeout."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.results, self.halt = port, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            status = send_and_status(self.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                     SCRAPE_TIMEOUT_S)
            self.results.append((status == "200", time.monotonic() - t0))
            self.halt.wait(max(0.0, PROBE_EVERY_S - (time.monotonic() - t0)))


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def collector_samples(vm_url: str, start: float, end: float) -> dict:
    """{timestamp: (up, scrape_duration_s)} of the collector's scrapes of the service."""
    query = urllib.parse.urlencode([("match[]", '{job="sensor",__name__=~"up|scrape_duration_seconds"}'),
                                    ("start", f"{start:.3f}"), ("end", f"{end:.3f}")])
    with _opener.open(f"{vm_url}/api/v1/export?{query}", timeout=10) as r:
        lines = r.read().decode().splitlines()
    out: dict[float, list] = {}
    for line in lines:
        series = json.loads(line)
        slot = 0 if series["metric"]["__name__"] == "up" else 1
        for ts, value in zip(series["timestamps"], series["values"]):
            out.setdefault(ts / 1000, [None, None])[slot] = value
    return out


def run_suite(variant: str = "optimized", cases: list[str] | None = None,
              progress=print, extra_env: dict | None = None, source: Path | None = None) -> list[dict]:
    """Run the attacks against one stack; one record per case. ``source``: another
    checkout's service tree (e.g. the commit before the hardening)."""
    from plumbing.cgroup_counters import PeakMark, read_cgroups
    from plumbing.ports import free_port
    from stack.api import DEFAULT_COMPOSE, start_stack

    chosen = [c for c in CASES if not cases or c.name in cases or any(n in c.name for n in cases)]
    env = {"SENSOR_VARIANT": variant, "SENSOR_SEED": "7", **(extra_env or {})}
    records = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eb-hostile-")))
        port, vm_port = free_port(), free_port()
        handle = stack.enter_context(start_stack(
            DEFAULT_COMPOSE, tmp / "state", services=["sensor-service", "victoriametrics"],
            env={"sensor-service": env}, ports={"sensor-service": port, "victoriametrics": vm_port},
            engine="native", timeout=60,
            contexts={"sensor-service": source} if source else None))
        svc = handle.service("sensor-service")
        limit = svc.mem_limit_bytes
        vm_url = handle.url("victoriametrics")
        for case in chosen:
            progress(f"hostile: {case.name} ({case.window_s:.0f} s)")
            recovered = _wait_healthy(port)
            before = handle.service("sensor-service")
            mark = PeakMark(before.cgroups)
            mark.reset()
            probe, stop = Probe(port), threading.Event()
            timer = threading.Timer(case.window_s, stop.set)
            t0 = time.time()
            probe.start()
            timer.start()
            try:
                got, note = case.attack(port, case.window_s, stop)
            finally:
                stop.set()
                timer.cancel()
                probe.halt.set()
                probe.join()
            t1 = time.time()
            after = handle.service("sensor-service")
            counters = read_cgroups(after.cgroups)
            peak = mark.read() or (counters.mem_peak_bytes if counters else None)
            mark.close()
            ok_times = [t for ok, t in probe.results if ok]
            records.append({
                "case": case.name, "note": note, "t0": t0, "t1": t1, "got": dict(got),
                "client_ok": case.expect(got), "healthy_before": recovered,
                "probe_answered": len(ok_times), "probe_failed": len(probe.results) - len(ok_times),
                "probe_p99_ms": _ms(p99(ok_times)),
                "oom_kills": (after.oom_kills or 0) - (before.oom_kills or 0),
                "restarts": (after.restarts or 0) - (before.restarts or 0),
                "peak_mb": round(peak / 2**20, 1) if peak else None,
                "limit_mb": round(limit / 2**20) if limit else None})
        _wait_healthy(port)
        _add_collector(records, vm_url, handle)
    return records


def _ms(seconds):
    return round(seconds * 1000, 1) if seconds is not None else None


def _wait_healthy(port: int, timeout_s: float = 60) -> bool:
    """Poll /healthz (a restarted service takes seconds) before the next case starts;
    False when it did not answer within ``timeout_s`` (the case runs anyway, on record)."""
    try:
        return wait_until(lambda: send_and_status(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2) == "200",
            timeout_s, f"/healthz on port {port}", interval=0.2)
    except WaitTimeout:
        return False


def _add_collector(records: list[dict], vm_url: str, handle) -> None:
    """Per case, the collector's scrapes that started in its window (plus a scrape timeout)."""
    end = records[-1]["t1"] + SCRAPE_TIMEOUT_S if records else time.time()
    samples: dict = {}

    def reached_the_end() -> bool:    # the collector's samples reach the suite's end
        nonlocal samples
        samples = collector_samples(vm_url, records[0]["t0"] - 1, end + 10) if records else {}
        return bool(samples) and max(samples) >= end - 0.5
    try:
        wait_until(reached_the_end, 30, "the collector's samples of the last case", interval=0.5)
    except WaitTimeout:
        pass  # what it has is recorded: the last cases show fewer collector scrapes
    for rec in records:
        inside = [v for ts, v in samples.items() if rec["t0"] <= ts < rec["t1"] + SCRAPE_TIMEOUT_S]
        answered = [d for up, d in inside if up == "1" or up == 1]
        rec["collector_answered"] = len(answered)
        rec["collector_failed"] = len(inside) - len(answered)
        rec["collector_p99_ms"] = _ms(p99([float(d) for d in answered if d is not None]))


def verdict(rec: dict) -> list[str]:
    """What a record breaks of the issue's rule for the optimized service (empty: passed)."""
    problems = []
    if rec["collector_failed"] > 1:
        problems.append(f"{rec['collector_failed']} collector scrapes failed")
    if rec["probe_failed"] > 1:
        problems.append(f"{rec['probe_failed']} probe scrapes failed")
    if rec["collector_answered"] + rec["collector_failed"] == 0:
        problems.append("the collector made no scrape in the window")
    if rec["oom_kills"] or rec["restarts"]:
        problems.append(f"OOM kills {rec['oom_kills']}, restarts {rec['restarts']}")
    if not rec.get("healthy_before", True):
        problems.append("the service did not answer /healthz within 60 s before the attack")
    case = next((c for c in CASES if c.name == rec["case"]), None)
    if not (case.expect(Counter(rec["got"])) if case else rec["client_ok"]):
        problems.append(f"client got {outcome_text(Counter(rec['got']))}")
    return problems


def table(records: list[dict]) -> str:
    rows = ["| attack | collector scrapes: answered / failed, p99 | probe scrapes (fresh connection): "
            "answered / failed, p99 | OOM kills / restarts | peak memory (limit) | what the client got |",
            "| --- | --- | --- | --- | --- | --- |"]
    for r in records:
        rows.append(f"| {r['case']} | {r['collector_answered']} / {r['collector_failed']}, "
                    f"{_fmt_ms(r['collector_p99_ms'])} | {r['probe_answered']} / {r['probe_failed']}, "
                    f"{_fmt_ms(r['probe_p99_ms'])} | {r['oom_kills']} / {r['restarts']} | "
                    f"{r['peak_mb']} MB ({r['limit_mb']} MB) | {outcome_text(Counter(r['got']))} |")
    return "\n".join(rows)


def _fmt_ms(v):
    return "—" if v is None else f"{v:g} ms"
