"""Shared fixtures and helpers. Keep this small: add what several test files need.

Helpers are plain functions (``from tests.conftest import free_port, running_service``)
so that module-scoped fixtures and context managers can use them too.
"""
import gc
import http.client
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


from plumbing.ports import free_port  # noqa: E402,F401  (the product's own)
from plumbing.ports import free_ports as _free_ports  # noqa: E402
from plumbing.process import preexec_die_with_parent  # noqa: E402  (needs REPO_ROOT on sys.path)
from plumbing.wait import wait_until  # noqa: E402


def pytest_unconfigure(config):
    """The process ends next. The interpreter's last garbage collection walks everything
    the tests loaded (the parsed sources, the data frames) and took 1-2 s of the fast
    tier while freeing nothing that outlives the process: frozen, it is skipped."""
    gc.freeze()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def service_env(**env) -> dict:
    """This environment without any ``SENSOR_*`` knob of the caller's, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    clean.update({k: str(v) for k, v in env.items()})
    return clean


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _healthz(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def restarted_and_healthy(handle, name: str, timeout: float, what: str):
    """Wait until service ``name`` of a running stack has restarted at least once and is
    healthy again; returns its state then."""
    def after_restart():
        svc = handle.service(name)
        return svc if (svc.restarts or 0) >= 1 and svc.health == "healthy" else None
    return wait_until(after_restart, timeout, what)


def start_service(log_dir: Path, args=(), *, port: int | None = None, host: str = "127.0.0.1",
                  timeout: float = 20, **env) -> tuple[subprocess.Popen, int]:
    """``python -m service`` on ``port`` (a free one by default) with only the ``SENSOR_*``
    knobs given, healthy on /healthz; it dies with pytest however pytest ends. Returns
    (process, port); stop it with `stop_process`. A service that exits before it is healthy
    fails the test with the end of its log."""
    port = port or free_port()
    log_path = Path(log_dir) / f"service-{port}-{os.urandom(3).hex()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port), "--host", host, *args],
                                cwd=REPO_ROOT, env=service_env(**env), stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=preexec_die_with_parent())

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        return _healthz(port)
    try:
        wait_until(healthy, timeout, f"the service on port {port} to answer /healthz", interval=0.05)
    except BaseException:
        stop_process(proc)
        raise
    return proc, port


@contextmanager
def running_service(log_dir: Path, args=(), host: str = "127.0.0.1", **env):
    """`start_service` for a ``with`` block: yields (process, port), stops it by pid afterwards."""
    proc, port = start_service(log_dir, args, host=host, **env)
    try:
        yield proc, port
    finally:
        stop_process(proc)


@pytest.fixture
def free_ports():
    """``free_ports(n)`` -> n distinct loopback TCP ports free right now (the product's picker)."""
    def make(n: int = 1) -> list[int]:
        return _free_ports(n)
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



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """`make test-platforms` sets EDGEBENCH_PLATFORMS_REQUIRED=1: there a platform cell that
    cannot run fails, naming what is missing, instead of being skipped."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and item.get_closest_marker("platform") and os.environ.get("EDGEBENCH_PLATFORMS_REQUIRED") == "1":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome, rep.longrepr = "failed", f"platform cell cannot run (EDGEBENCH_PLATFORMS_REQUIRED=1): {reason}"
