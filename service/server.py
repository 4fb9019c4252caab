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
    optimized: service.lean_server (one process, a thread per connection, bounded reads;
    why this server, measured against five others: docs/service.md)."""
    if config.server == "werkzeug":
        from werkzeug.serving import run_simple
        run_simple(config.host, config.port, app, threaded=False, processes=1)
        return 0
    pin_mmap_threshold()
    from service import lean_server
    lean_server.serve(app, config.host, config.port, config.server_limits)
    return 0


def log_start(config: Config):
    print(f"sensor-service starting: {config.describe()}", file=sys.stderr, flush=True)
