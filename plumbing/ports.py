"""Loopback ports for the servers edgebench starts: one picker for every one of them.

A port bound to 0 comes from the kernel's ephemeral range (net.ipv4.ip_local_port_range),
the range every outgoing connection takes its local port from. Between the pick and the
server's own bind, a client connection anywhere on the machine could take that port, and
the server then failed with "address already in use" (seen with parallel runs). Ports are
therefore drawn at random below the ephemeral range, where no connection lands."""
from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000      # below: well-known and registered services' ports
TRIES = 500


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on host:port (SO_REUSEADDR: TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _candidates() -> range:
    """The ports below the ephemeral range, or above it when it starts too low."""
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999          # the kernel's default
    return range(LOWEST, low) if low - LOWEST >= 1000 else range(high + 1, 65536)


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback TCP port nothing listens on, outside the ephemeral range."""
    ports = _candidates()
    for _ in range(TRIES if ports else 0):
        port = random.choice(ports)
        if not port_busy(port, host):
            return port
    with socket.socket() as s:          # no such range, or all of it in use: the kernel's pick
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct free ports."""
    out: list[int] = []
    while len(out) < n:
        port = free_port(host)
        if port not in out:
            out.append(port)
    return out
