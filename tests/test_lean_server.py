"""service/lean_server.py on real loopback sockets, in this process: WSGI conformance
(wsgiref.validate), 500 on app errors, request framing and its limits."""

import http.client
import re
import socket
import threading
import time
import warnings
import wsgiref.validate
from contextlib import contextmanager

import pytest

from service.config import ConfigError, parse_config
from service.lean_server import LeanServer, Limits


@contextmanager
def serving(app, **limits):
    """The lean server on a free loopback port in a thread; stopped afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = LeanServer(sock, app, Limits(**limits))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        server.shutdown()
        thread.join(5)
        sock.close()
        assert not thread.is_alive()


def raw(port, data: bytes, timeout=3.0) -> bytes:
    """Send ``data``, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while piece := s.recv(65536):
                out += piece
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def statuses(answer: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


def echo_app(environ, start_response):
    body = environ["wsgi.input"].read()
    keys = sorted(k for k in environ if k.startswith(("HTTP_", "SERVER_", "CONTENT_", "wsgi.version")))
    out = (f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']} "
           f"body={body!r} {keys} {environ.get('HTTP_X_TEST')}").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


def test_the_sensor_app_passes_wsgiref_validate_on_the_lean_server(tmp_path):
    from service.wsgi import SensorApp
    app = wsgiref.validate.validator(SensorApp(parse_config([], environ={"SENSOR_SEED": "3"})))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a WSGIWarning fails the test
        with serving(app) as port:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            seen = set()
            for method, path in [("GET", "/metrics"), ("GET", "/healthz"), ("HEAD", "/metrics"),
                                 ("GET", "/nowhere"), ("POST", "/metrics")] + [("GET", "/sensor")] * 40:
                conn.request(method, path)
                resp = conn.getresponse()
                resp.read()
                seen.add(resp.status)
                assert resp.status != 500 or path == "/sensor", (method, path)   # validator errors are 500s
            conn.close()
    assert {200, 404, 405} <= seen


def test_app_errors_answer_500_and_the_server_goes_on():
    def broken(environ, start_response):
        if environ["PATH_INFO"] == "/late":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"partial", None])     # fails while the answer is being sent
        raise RuntimeError("boom")

    with serving(broken) as port:
        assert statuses(raw(port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")) == ["500"]
        late = raw(port, b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
        assert statuses(late) == ["200"] and late.endswith(b"partial")     # then closed
        assert statuses(raw(port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")) == ["500"]


def test_environ_headers_chunked_body_pipelining_and_write():
    def writer(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    with serving(echo_app) as port:
        out = raw(port, b"POST /p%20q?a=1 HTTP/1.1\r\nHost: h\r\nX-Test: yes\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
                        b"GET /second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert statuses(out) == ["200", "200"]
        assert b"POST /p q?a=1 body=b'abcde'" in out and b"'HTTP_X_TEST'" in out and b" yes" in out
        assert b"'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL'" in out and b"wsgi.version" in out
        assert b"GET /second? body=b''" in out
    with serving(writer) as port:
        out = raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert out.endswith(b"written returned") and b"Connection: close" in out   # no length: close


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", "413"),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", "400"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n" + b"x" * 0x2000 + b"\r\n0\r\n\r\n", "413"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", "414"),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n", "431"),
    (b"GET / HTTP/2.0\r\n\r\n", "505"),
    (b"\x16\x03\x01\x00\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400"),
])
def test_malformed_and_oversized_requests_get_a_4xx_and_a_close(request_bytes, status):
    with serving(echo_app, max_header_bytes=4096, max_body_bytes=4096) as port:
        assert statuses(raw(port, request_bytes)) == [status]


def test_slow_and_idle_clients_are_cut_off_and_the_cap_evicts_waiting_connections():
    with serving(echo_app, request_timeout_s=0.5, idle_timeout_s=1.0, max_connections=4) as port:
        t0 = time.monotonic()
        assert statuses(raw(port, b"GET / HTTP/1.1\r\nHost: a\r\n")) == ["408"]     # head never ends
        assert 0.4 < time.monotonic() - t0 < 2.5
        t0 = time.monotonic()
        assert raw(port, b"") == b"" and 0.9 < time.monotonic() - t0 < 2.5             # idle: closed
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]     # twice the cap
        try:
            time.sleep(0.3)   # the time after which a waiting connection may be evicted (0.25 s)
            t0 = time.monotonic()
            assert statuses(raw(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")) == ["200"]
            assert time.monotonic() - t0 < 0.5
        finally:
            for s in idle:
                s.close()


def test_limit_settings_come_from_the_environment_and_bad_ones_are_refused():
    config = parse_config([], environ={"SENSOR_MAX_CONNECTIONS": "10", "SENSOR_IDLE_TIMEOUT_S": "2.5"})
    assert config.server_limits == Limits(max_connections=10, idle_timeout_s=2.5)
    assert "max_connections=10" in config.describe()
    for env in ({"SENSOR_MAX_BODY_BYTES": "lots"}, {"SENSOR_REQUEST_TIMEOUT_S": "0"}):
        with pytest.raises(ConfigError) as info:
            parse_config([], environ=env)
        assert "\n" not in str(info.value) and list(env)[0] in str(info.value)
