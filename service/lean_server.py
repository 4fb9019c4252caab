"""A small threaded HTTP/1.1 WSGI server for the optimized variant, on the standard library.

One thread per connection reads and answers that connection's keep-alive requests
itself: no hand-off of each request to a worker pool and no wake-up pipe to an I/O
loop, which took about half of waitress' CPU per scrape (docs/service.md). The request
head is parsed here, not by http.server (whose email-based header parser was most of
the remaining per-scrape CPU), and every read is bounded for hostile clients:

- head size (431/414 past ``max_header_bytes``), body size (413 past
  ``max_body_bytes``, before reading it), malformed framing -> 400, other
  transfer-codings -> 501; chunked bodies are decoded (within the same limit);
- a request must arrive whole within ``request_timeout_s`` of its first byte
  (slowloris, trickled bodies -> 408), a keep-alive connection idle for
  ``idle_timeout_s`` is closed, a send making no headway for ``send_timeout_s``
  closes the connection (slow readers);
- at most ``max_connections`` connections hold a thread. A new connection past the
  cap evicts the connection that has waited longest for a request that never came
  (those that never completed a request first), so idle or half-sent connections
  cannot lock the collector out; with none to evict it waits in the listen backlog
  for a slot;
- an exception in the app answers 500 (or closes the connection if the answer
  had started); send buffers are pinned so slow readers cannot grow kernel memory
  charged to the 50 MB cgroup.

A blob answer (the file wrapper over an unmodified BytesIO) is sent straight from the
once-encoded bytes in 256 KB pieces, never copied."""

import io
import select
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

SEND_PIECE = 256 * 1024
SEND_BUFFER = 256 * 1024      # SO_SNDBUF: disables autotuning (up to 4 MB per socket)
EVICT_AFTER_S = 0.25          # a connection waiting this long for a request may be evicted
RECV = 64 * 1024
REASONS = {100: "Continue", 400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
           414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 505: "HTTP Version Not Supported"}
TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class Limits:
    """The server's limits (SENSOR_* settings in service/config.py, docs/service.md)."""
    max_header_bytes: int = 16 * 1024     # request line plus headers
    max_body_bytes: int = 64 * 1024       # no endpoint reads a body
    idle_timeout_s: float = 30.0          # keep-alive wait for the next request
    request_timeout_s: float = 5.0        # first byte to last byte of a request (head and body)
    send_timeout_s: float = 10.0          # one 256 KB piece of an answer
    max_connections: int = 64


class HTTPError(Exception):
    """A request we refuse: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


class Closed(Exception):
    """The client went away or timed out while idle: close without an answer."""


class FileWrapper:
    """wsgi.file_wrapper: lets the server send a byte stream without iterating it."""

    def __init__(self, filelike, blksize=SEND_PIECE):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        return iter(lambda: self.filelike.read(self.blksize), b"")

    def close(self):
        self.filelike.close()


def whole_bytes(result):
    """The bytes behind a file wrapper over an unmodified BytesIO (no copy), else None."""
    if isinstance(result, FileWrapper) and isinstance(result.filelike, io.BytesIO):
        stream = result.filelike
        if stream.tell() == 0:
            return stream.getvalue()   # CPython returns the shared bytes object itself
    return None


class Connection:
    """One client connection: read requests with their limits, run the app, answer."""

    def __init__(self, server, sock, address, accepted: float):
        self.server, self.sock, self.address = server, sock, address
        self.limits = server.limits
        self.buf = bytearray()
        self.waiting = True       # waiting for (the rest of) a request: may be evicted
        self.since = accepted
        self.served = 0

    def idle(self, now: float) -> bool:
        """Waiting for a request for a while, with nothing unread in the kernel (a burst of
        new connections whose requests wait for their threads is not idle)."""
        if not self.waiting or now - self.since < EVICT_AFTER_S:
            return False
        poll = select.poll()
        try:
            poll.register(self.sock, select.POLLIN)
        except (OSError, ValueError):
            return False          # closing already
        return not poll.poll(0)   # readable: a request (or EOF) is there for its thread

    # ---- reading

    def _recv(self, deadline: float | None, idle: bool) -> None:
        """Append what arrives to buf; raise Closed on EOF or an idle timeout, 408 past deadline."""
        if deadline is None:
            self.sock.settimeout(self.limits.idle_timeout_s)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HTTPError(408, "request not complete in time")
            self.sock.settimeout(left)
        try:
            data = self.sock.recv(RECV)
        except TimeoutError:
            if idle:
                raise Closed() from None
            raise HTTPError(408, "request not complete in time") from None
        except OSError:
            raise Closed() from None
        if not data:
            raise Closed()
        self.buf += data

    def read_head(self):
        """Return (method, target, version, headers) of the next request."""
        limits = self.limits
        while not self.buf.lstrip(b"\r\n"):      # tolerate CRLF between requests (RFC 9112 2.2)
            self.buf.clear()
            self._recv(None, idle=True)
        deadline = time.monotonic() + limits.request_timeout_s
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > limits.max_header_bytes:
                line_end = self.buf.find(b"\n")
                if line_end < 0 or line_end > limits.max_header_bytes:
                    raise HTTPError(414, "request line too long")
                raise HTTPError(431, "request headers too large")
            self._recv(deadline, idle=False)
        if end + 4 > limits.max_header_bytes:
            raise HTTPError(431 if self.buf.find(b"\r\n") < end else 414, "request head too large")
        head = bytes(self.buf[:end]).lstrip(b"\r\n")
        del self.buf[:end + 4]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0] or not set(parts[0]) <= TOKEN or not parts[1]:
            raise HTTPError(400, "malformed request line")
        method, target, version = parts
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            if version.startswith(b"HTTP/") and version[5:6].isdigit():
                raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1")
            raise HTTPError(400, "malformed request line")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or not set(name) <= TOKEN:
                raise HTTPError(400, "malformed header line")
            headers.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
        return method.decode("latin-1"), target.decode("latin-1"), version.decode("latin-1"), headers, deadline

    def read_body(self, headers: dict, deadline: float) -> bytes:
        limits = self.limits
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if coding is not None:
            if length is not None:
                raise HTTPError(400, "both Transfer-Encoding and Content-Length")
            if coding.strip().lower() != "chunked":
                raise HTTPError(501, f"transfer-coding {coding!r} not supported")
            return self.read_chunked(deadline)
        if length is None:
            return b""
        if not length.isdigit() or not length.isascii():   # also -5, "abc", "1,2", " "
            raise HTTPError(400, f"bad Content-Length {length[:40]!r}")
        size = int(length)
        if size > limits.max_body_bytes:
            raise HTTPError(413, f"body of {size} bytes over the {limits.max_body_bytes}-byte limit")
        while len(self.buf) < size:
            self._recv(deadline, idle=False)
        body = bytes(self.buf[:size])
        del self.buf[:size]
        return body

    def read_chunked(self, deadline: float) -> bytes:
        body = bytearray()
        limit = self.limits.max_body_bytes
        while True:
            while (end := self.buf.find(b"\r\n")) < 0:
                if len(self.buf) > 1024:
                    raise HTTPError(400, "chunk size line too long")
                self._recv(deadline, idle=False)
            size_text = bytes(self.buf[:end]).split(b";", 1)[0].strip()
            del self.buf[:end + 2]
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HTTPError(400, "bad chunk size") from None
            if size < 0 or not size_text.isalnum():
                raise HTTPError(400, "bad chunk size")
            if size == 0:
                break
            if len(body) + size > limit:
                raise HTTPError(413, f"chunked body over the {limit}-byte limit")
            while len(self.buf) < size + 2:
                self._recv(deadline, idle=False)
            if self.buf[size:size + 2] != b"\r\n":
                raise HTTPError(400, "chunk not followed by CRLF")
            body += self.buf[:size]
            del self.buf[:size + 2]
        while (end := self.buf.find(b"\r\n")) != 0:    # trailers: read and drop
            if end < 0:
                if len(self.buf) > self.limits.max_header_bytes:
                    raise HTTPError(431, "trailers too large")
                self._recv(deadline, idle=False)
            else:
                del self.buf[:end + 2]
        del self.buf[:2]
        return bytes(body)

    # ---- answering

    def send(self, data) -> None:
        self.sock.settimeout(self.limits.send_timeout_s)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            # a reader too slow: reset, so the kernel drops the unsent bytes at once
            # instead of trickling them out of buffers charged to our cgroup
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raise

    def refuse(self, error: HTTPError) -> None:
        body = f"{error.status} {REASONS[error.status]}: {error}\n".encode()
        try:
            self.send(f"HTTP/1.1 {error.status} {REASONS[error.status]}\r\nContent-Type: text/plain\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
        except OSError:
            pass

    def environ(self, method, target, version, headers, body) -> dict:
        if target.startswith(("http://", "https://")):          # absolute form
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        server = self.server
        env = {"REQUEST_METHOD": method, "SCRIPT_NAME": "",
               "PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": query,
               "SERVER_NAME": server.server_name, "SERVER_PORT": server.server_port,
               "SERVER_PROTOCOL": version, "REMOTE_ADDR": self.address[0],
               "REMOTE_PORT": str(self.address[1]),
               "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
               "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
               "wsgi.run_once": False, "wsgi.file_wrapper": FileWrapper}
        for name, value in headers:
            if name == "content-type":
                env["CONTENT_TYPE"] = value
            elif name == "content-length":
                env["CONTENT_LENGTH"] = value
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
                env[key] = f"{env[key]},{value}" if key in env else value
        if "transfer-encoding" in dict(headers):
            env["CONTENT_LENGTH"] = str(len(body))
        return env

    def run_app(self, method, version, environ, keep_alive: bool) -> bool:
        """Run the app and send its answer; return whether the connection stays open."""
        state = {"status": None, "headers": None, "sent": False, "close": not keep_alive}
        head_only = method == "HEAD"

        def head_bytes() -> bytes:
            names = {name.lower() for name, _ in state["headers"]}
            if "content-length" not in names:
                state["close"] = True     # close-delimited body
            lines = [f"HTTP/1.1 {state['status']}\r\n"]
            lines.extend(f"{name}: {value}\r\n" for name, value in state["headers"])
            if state["close"]:
                lines.append("Connection: close\r\n")
            lines.append("\r\n")
            state["sent"] = True
            return "".join(lines).encode("latin-1")

        def start_response(status, headers, exc_info=None):
            if exc_info:
                try:
                    if state["sent"]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state["status"] is not None:
                raise AssertionError("start_response called twice without exc_info")
            state["status"], state["headers"] = status, list(headers)
            return write

        def write(data: bytes):
            if state["status"] is None:
                raise AssertionError("write() before start_response()")
            out = b"" if head_only else data
            self.send(head_bytes() + out if not state["sent"] else out)

        try:
            result = self.server.app(environ, start_response)
        except Exception:
            return self.app_failed(state)
        try:
            whole = whole_bytes(result)
            if whole is not None:
                self.send(head_bytes())
                if not head_only:
                    view = memoryview(whole)
                    for start in range(0, len(view), SEND_PIECE):
                        self.send(view[start:start + SEND_PIECE])
            elif isinstance(result, list) and len(result) == 1 and not state["sent"]:
                self.send(head_bytes() + (b"" if head_only else result[0]))
            else:
                for chunk in result:
                    if chunk:
                        write(chunk)
                if not state["sent"]:
                    write(b"")
        except OSError:
            return False
        except Exception:
            return self.app_failed(state)
        finally:
            if hasattr(result, "close"):
                try:
                    result.close()
                except Exception:
                    traceback.print_exc(file=sys.stderr)
        return not state["close"]

    def app_failed(self, state) -> bool:
        traceback.print_exc(file=sys.stderr)
        if not state["sent"]:
            body = b"internal server error\n"
            try:
                self.send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
        return False

    def serve(self) -> None:
        while True:
            if self.served:
                self.waiting, self.since = True, time.monotonic()
            method, target, version, headers, deadline = self.read_head()
            fields = dict(headers)
            if len({v for n, v in headers if n == "content-length"}) > 1:
                raise HTTPError(400, "conflicting Content-Length headers")
            if fields.get("expect", "").lower() == "100-continue" and version == "HTTP/1.1":
                length = fields.get("content-length", "0")
                if length.isdigit() and int(length) > self.limits.max_body_bytes:
                    raise HTTPError(413, f"body of {length} bytes over the "
                                         f"{self.limits.max_body_bytes}-byte limit")
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self.read_body(fields, deadline)
            self.waiting = False
            connection = fields.get("connection", "").lower()
            keep_alive = ("close" not in connection if version == "HTTP/1.1"
                          else "keep-alive" in connection)
            environ = self.environ(method, target, version, headers, body)
            if not self.run_app(method, version, environ, keep_alive):
                return
            self.served += 1
            self.waiting = True

    def run(self) -> None:
        try:
            self.serve()
        except HTTPError as error:
            self.refuse(error)
        except (Closed, OSError):
            pass
        finally:
            self.server.release(self)
            try:
                self.sock.close()
            except OSError:
                pass


class LeanServer:
    """Accept loop with the connection cap and eviction; a thread per admitted connection."""

    def __init__(self, sock: socket.socket, app, limits: Limits):
        self.sock, self.app, self.limits = sock, app, limits
        host, port = sock.getsockname()[:2]
        self.server_name, self.server_port = host or "localhost", str(port)
        self.active: set[Connection] = set()
        self.lock = threading.Condition()
        self.stopping = False

    def shutdown(self) -> None:
        """Stop accepting (serve_forever returns); admitted connections finish by themselves."""
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self, conn: Connection) -> None:
        with self.lock:
            self.active.discard(conn)
            self.lock.notify()

    def make_room(self) -> None:
        """Block until the new connection may have a thread: evict a connection that has
        waited long for a request (never-served ones first), else wait for a slot."""
        with self.lock:
            while len(self.active) >= self.limits.max_connections:
                now = time.monotonic()
                # connections that never completed a request go first; a served one (the
                # collector's keep-alive) only when no other is even waiting
                fresh = [c for c in self.active if c.waiting and not c.served]
                idle = [c for c in (fresh or self.active) if c.idle(now)]
                if idle:
                    victim = min(idle, key=lambda c: c.since)
                    self.active.discard(victim)
                    victim.waiting = False
                    try:
                        victim.sock.shutdown(socket.SHUT_RDWR)   # its thread sees EOF and ends
                    except OSError:
                        pass
                    return
                self.lock.wait(0.05)

    def serve_forever(self) -> None:
        while not self.stopping:
            try:
                client, address = self.sock.accept()
            except OSError:
                if self.stopping:
                    return
                time.sleep(0.01)      # e.g. EMFILE: let connections close, then go on
                continue
            accepted = time.monotonic()
            self.make_room()
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:
                client.close()
                continue
            conn = Connection(self, client, address, accepted)
            with self.lock:
                self.active.add(conn)
            threading.Thread(target=conn.run, daemon=True).start()


def serve(app, host: str, port: int, limits: Limits = Limits()):
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # a deep listen backlog: a burst of new connections waits here for a slot instead of
        # having its SYNs dropped (a dropped SYN is retried after 1 s)
        sock.listen(1024)
        LeanServer(sock, app, limits).serve_forever()
