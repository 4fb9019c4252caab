"""A small threaded WSGI server for the optimized variant, on the standard library.

One thread per connection, reading and answering its keep-alive requests itself:
no hand-off of each request to a worker pool and no wake-up pipe to an I/O loop,
which took about half of waitress' CPU per scrape (profile in docs/service.md).
Answers go out with one sendall (headers and a small body together); a blob answer
(a file wrapper over an unmodified BytesIO) is sent straight from the once-encoded
bytes in 256 KB pieces, never copied into a buffer or a temporary file. Connections
are capped (MAX_CONNECTIONS): past that a new connection is closed at once, so
memory stays bounded under the 50 MB limit."""

import io
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

MAX_CONNECTIONS = 32
SEND_PIECE = 256 * 1024
IDLE_TIMEOUT_S = 75         # a keep-alive connection idle this long is closed


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


class WSGIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as collectors and Locust use it
    server_version = "sensor-service"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline or not self.parse_request():
                self.close_connection = True
                return
            self.run_app()
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def run_app(self):
        path, _, query = self.path.partition("?")
        length = self.headers.get("Content-Length")
        if length:   # no endpoint reads a body: drain it so the next request parses
            self.rfile.read(int(length))
        environ = {"REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
                   "REMOTE_ADDR": self.client_address[0], "SERVER_PROTOCOL": self.request_version,
                   "wsgi.file_wrapper": FileWrapper, "wsgi.input": io.BytesIO(),
                   "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http"}
        answer = []

        def start_response(status, headers, exc_info=None):
            answer[:] = [status, headers]

        result = self.server.app(environ, start_response)
        try:
            status, headers = answer
            head = [f"HTTP/1.1 {status}\r\n"]
            head.extend(f"{name}: {value}\r\n" for name, value in headers)
            if self.close_connection:
                head.append("Connection: close\r\n")
            head.append("\r\n")
            head = "".join(head).encode("latin-1")
            send = self.connection.sendall
            if self.command == "HEAD":
                send(head)
                return
            whole = whole_bytes(result)
            if whole is not None:
                send(head)
                view = memoryview(whole)
                for start in range(0, len(view), SEND_PIECE):
                    send(view[start:start + SEND_PIECE])
            elif isinstance(result, list) and len(result) == 1:
                send(head + result[0])
            else:
                send(head)
                for chunk in result:
                    send(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()

    def log_message(self, format, *args):   # no per-request log line
        pass


class LeanServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    # The listen backlog: socketserver's default of 5 drops the SYNs of a burst of new
    # connections (16 scrapers starting at once), and a dropped SYN is retried after 1 s,
    # so those first requests took a second. Room for every connection the cap admits.
    request_queue_size = MAX_CONNECTIONS
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, app):
        self.app = app
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, WSGIHandler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)   # over the cap: refuse, keep memory bounded
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def serve(app, host: str, port: int):
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    server_class = type("LeanServer", (LeanServer,), {"address_family": family})
    with server_class(address, app) as server:
        server.serve_forever()
