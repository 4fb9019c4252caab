"""Shared fixtures. Keep this small: add fixtures that several test files need."""
import signal
import socket
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def free_ports():
    """``free_ports(n)`` -> n distinct loopback TCP ports free right now."""
    def make(n: int = 1) -> list[int]:
        socks = []
        try:
            for _ in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
    return make


# A shell that starts jobs in the background without job control (nohup, `cmd &` in a
# script) leaves SIGINT ignored, and exec keeps it ignored in every process started from
# here: a Python started so never raises KeyboardInterrupt, and the Ctrl-C tests could
# interrupt nothing. A handled signal reverts to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _fast_tier_starts_no_process(request, monkeypatch):
    """The fast tier's promise, enforced: a test not marked slow that starts a process fails."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("platform"):
        return
    import subprocess

    def refuse(self, args, *a, **kw):
        raise AssertionError(f"a fast-tier test started a process ({args!r}); mark it slow")
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
