"""Serving: check the address is free, then run the variant's HTTP server."""

import ctypes
import socket
import sys

from service.config import Config, ConfigError


def check_bindable(host: str, port: int):
    """Bind (and release) the address first so a busy port is one clear line,
    not a traceback from deep inside the server."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"host {host!r} (SENSOR_HOST / --host) cannot be resolved "
                          f"({exc.strerror}); use an address of this machine, e.g. 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as both servers do
        sock.bind(addr)
    except OSError as exc:
        if exc.errno == 98:  # EADDRINUSE
            raise ConfigError(f"port {port} (SENSOR_PORT / --port) is already in use on {host}; "
                              f"stop what listens there or pick another free port") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); set SENSOR_HOST / "
                          f"--host to an address of this machine and SENSOR_PORT / --port to a "
                          f"port you may use") from None
    finally:
        sock.close()


M_MMAP_THRESHOLD = -3  # glibc mallopt() parameter


def pin_mmap_threshold(nbytes=128 * 1024) -> bool:
    """Pin glibc's mmap threshold so large buffers go back to the OS when freed.

    glibc raises the threshold after each large free; later 64 KB-1 MB buffers
    (blob chunks, waitress output buffers) then stay in per-thread arenas and
    RSS climbs under blob traffic (docs/service.md).
    musl (Alpine) ignores the call; its malloc already unmaps large blocks.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):
        return False


def serve(app, config: Config):
    """baseline: Werkzeug's dev server, one request at a time, as the original.
    optimized: service.lean_server (one process, a thread per connection, bounded reads);
    SENSOR_SERVER picks one of the other measured candidates (docs/service.md)."""
    if config.server == "werkzeug":
        from werkzeug.serving import run_simple
        run_simple(config.host, config.port, app, threaded=False, processes=1)
        return 0
    pin_mmap_threshold()
    CANDIDATES[config.server](app, config.host, config.port, config.server_limits)
    return 0


def _lean(app, host, port, limits):
    from service import lean_server
    lean_server.serve(app, host, port, limits)


def _waitress(app, host, port, limits):
    """waitress tuned: the I/O loop holds idle and slow connections without threads, so its
    connection limit can be high (past it waitress stops accepting); two worker threads."""
    import waitress
    waitress.serve(app, host=host, port=port, threads=2, connection_limit=1000,
                   channel_timeout=limits.idle_timeout_s, cleanup_interval=5,
                   max_request_header_size=limits.max_header_bytes,
                   max_request_body_size=limits.max_body_bytes, asyncore_use_poll=True,
                   ident=None, _quiet=True, backlog=1024)


def _cheroot(app, host, port, limits):
    """cheroot: idle keep-alive connections wait in its selector; a worker thread per request."""
    from cheroot import wsgi
    server = wsgi.Server((host, port), app, numthreads=8, max=limits.max_connections,
                         request_queue_size=1024, timeout=limits.request_timeout_s)
    server.keep_alive_conn_limit = limits.max_connections
    server.max_request_header_size = limits.max_header_bytes
    server.max_request_body_size = limits.max_body_bytes
    server.safe_start()


def _gunicorn(app, host, port, limits):
    """gunicorn's gthread worker: an arbiter and one worker process with 4 threads."""
    from gunicorn.app.base import BaseApplication

    class Embedded(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread",
                               "threads": 4, "worker_connections": limits.max_connections,
                               "keepalive": int(limits.idle_timeout_s), "timeout": 30, "backlog": 1024,
                               "limit_request_line": limits.max_header_bytes // 2,
                               "limit_request_field_size": limits.max_header_bytes // 2,
                               "accesslog": None, "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Embedded().run()


def _granian(app, host, port, limits):
    """granian: a Rust HTTP core; one worker process (it builds its own app from the
    SENSOR_* environment), one runtime thread, two blocking threads, the head read
    timeout and buffer bounded by the limits."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    http1 = HTTP1Settings(header_read_timeout=int(limits.request_timeout_s * 1000),
                          max_buffer_size=max(8192, limits.max_header_bytes))
    Granian("service.wsgi:from_environment", address=host, port=port, interface=Interfaces.WSGI,
            workers=1, runtime_threads=1, blocking_threads=2, factory=True, log_enabled=False,
            http=HTTPModes.http1, websockets=False, backlog=1024, http1_settings=http1).serve()


def _prometheus(app, host, port, limits):
    """prometheus_client's own server: wsgiref with a thread per connection, no limits."""
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("Server", (ThreadingWSGIServer,), {"address_family": family})
    make_server(host, port, app, server_class, handler_class=_SilentHandler).serve_forever()


CANDIDATES = {"lean": _lean, "waitress": _waitress, "cheroot": _cheroot, "gunicorn": _gunicorn,
              "granian": _granian, "prometheus": _prometheus}


def log_start(config: Config):
    print(f"sensor-service starting: {config.describe()}", file=sys.stderr, flush=True)
