"""Count what one request costs the service, through its real request path.

One run per instrument and side: a fresh `python -m service --variant optimized`
(started by edgebench/cost/boot.py in the measured tree) on a free loopback port, with
fixed seeds (PYTHONHASHSEED=0, SENSOR_SEED) and ASLR off (setarch -R). One client sends
warm-up requests to every endpoint over one keep-alive connection, then, endpoint by
endpoint, a batch of N and a batch of 2N requests, with a mark before and after each
batch (no request in flight at a mark). Whatever a batch costs besides its requests
(the mark itself) is the same in both, so (batch(2N) - batch(N)) / N is one request.

- ``callgrind``: instructions (Ir), each C function's own Ir and the calls into
  CPython's object allocator (blocks); instrumentation is off until the warm-up is done
  and each mark is a dump (callgrind_control); GC off;
- ``strace``: system calls by name (strace -f, the trace cut at each mark), GC off;
- ``py``: GC collections (GC on), tracemalloc's traced bytes, sys.getallocatedblocks();
- ``lines``: each Python function's calls and executed lines (attribution), GC off.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgebench.cost.callgrind import parse_callgrind
from plumbing.errors import EdgebenchError
from plumbing.ports import free_port
from plumbing.process import preexec_die_with_parent
from plumbing.wait import wait_until

BOOT = Path(__file__).with_name("boot.py")
ENDPOINTS = ("/metrics", "/sensor", "/healthz")
INSTRUMENTS = ("callgrind", "strace", "py", "lines")
# system calls whose number depends on thread scheduling: shown, never decided on
SCHEDULING = frozenset({"futex", "sched_yield", "restart_syscall", "clock_nanosleep", "nanosleep"})
START_TIMEOUT_S = 180.0
_SYSCALL = re.compile(r"^\d+\s+([a-z0-9_]+)\(")


class CostError(EdgebenchError):
    """The cost tier could not measure (the gate's exit 3)."""
    exit_code = 3


# requests per batch under valgrind (about 50x slower than native): /sensor's blob answers
# (5 MB in 256 KB pieces) take a number of send() calls that depends on timing, which
# more requests average out
N_CALLGRIND = (("/metrics", 30), ("/sensor", 100), ("/healthz", 40))


@dataclass(frozen=True)
class Plan:
    """Requests per batch: N per endpoint under valgrind, N_native in the other runs."""
    warmup: int = 20
    n: tuple = N_CALLGRIND
    n_native: int = 100
    seed: int = 1

    def batch(self, instrument: str, endpoint: str) -> int:
        return dict(self.n)[endpoint] if instrument == "callgrind" else self.n_native


RCVBUF = 16 * 1024 * 1024


class _Client(http.client.HTTPConnection):
    """A keep-alive client whose receive window holds a whole /sensor blob (5 MB), so
    each 256 KB piece the server sends goes out in one send() whatever the client's
    speed: the server's send loop then runs the same number of times in every run."""

    def connect(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)     # SO_RCVBUFFORCE (root)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _connect(port: int):
    try:
        conn = _Client("127.0.0.1", port, timeout=120)
        conn.connect()
        return conn
    except OSError:
        return None


# x86-64 system call numbers: the threads' resting places between requests
# accept4, rt_sigtimedwait, poll, epoll_wait, select, pselect6, futex, epoll_pwait, recvfrom
RESTING = {"288", "128", "7", "232", "23", "270", "202", "281", "45"}


def _at_rest(pid: int) -> bool:
    """Every thread (main, marker and the server's) blocked where it waits, e.g. the lean
    server's connection thread polling for the next request: a request's tail
    (bookkeeping after the answer was sent) is done before a mark is taken."""
    try:
        calls = [Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[0]
                 for tid in os.listdir(f"/proc/{pid}/task")]
    except (OSError, IndexError):
        return False
    return len(calls) >= 3 and all(c in RESTING for c in calls)


class Run:
    """One server process under one instrument; marks split its life into batches."""

    made = 0

    def __init__(self, tree: Path, instrument: str, work: Path, seed: int, env_extra: dict | None = None):
        self.instrument, self.work = instrument, work
        Run.made += 1          # fixed-width names: the environment's size is the same in every run
        self.out = work / f"{instrument[:5]:<5}-{os.getpid():08d}-{Run.made:06d}"
        self.port = free_port()
        self.marks = 0
        mode = instrument if instrument in ("py", "lines") else "count"
        env = {**os.environ, "PYTHONHASHSEED": "0", "SENSOR_SEED": str(seed), "SENSOR_HOST": "127.0.0.1",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(work / "pycache"),
               "PYTHONPATH": str(tree), "EDGEBENCH_COST_MODE": mode, "EDGEBENCH_COST_OUT": str(self.out),
               **(env_extra or {})}
        env.pop("PYTHONTRACEMALLOC", None)
        python = [sys.executable, str(BOOT), "--variant", "optimized", "--port", str(self.port)]
        tool = {"callgrind": ["valgrind", "--tool=callgrind", "--quiet", "--instr-atstart=no",
                              f"--callgrind-out-file={self.out}.cg"],
                "strace": ["strace", "-f", "-qq", "-e", "signal=none", "-o", f"{self.out}.strace"]}
        self.proc = subprocess.Popen(["setarch", "-R", *tool.get(instrument, []), *python], cwd=tree, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=preexec_die_with_parent())
        self.conn = None

    def start(self) -> None:
        def listening():
            if self.proc.poll() is not None:
                raise CostError(f"the service under {self.instrument} exited ({self.proc.returncode}) "
                                f"before listening: {self._stderr()}")
            return _connect(self.port)
        self.conn = wait_until(listening, START_TIMEOUT_S, f"the service under {self.instrument} "
                                                           f"to listen on port {self.port}")
        self.pid = wait_until(self._python_pid, 10, "the service's pid")

    def _stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace").strip()[-400:]

    def _python_pid(self) -> int | None:
        """The Python process itself (strace runs it as its child)."""
        if self.instrument != "strace":
            return self.proc.pid
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def requests(self, path: str, count: int) -> None:
        for _ in range(count):
            self.conn.request("GET", path)
            answer = self.conn.getresponse()
            answer.read()
            if answer.status >= 500 and path != "/sensor":    # /sensor answers 500 by design
                raise CostError(f"GET {path} answered {answer.status} under the cost tier")

    def _control(self, *args: str) -> None:
        out = subprocess.run(["callgrind_control", *args, str(self.pid)], capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise CostError(f"callgrind_control {' '.join(args)} failed: {out.stderr.strip()[-200:]}")

    def mark(self) -> None:
        wait_until(lambda: _at_rest(self.pid), 60, "the serving thread to wait for the next request",
                   interval=0.005)
        if self.instrument == "callgrind":
            if self.marks == 0:
                self._control("-i", "on")
            self._control("-d")
        else:
            os.kill(self.pid, signal.SIGUSR1)
            done = Path(f"{self.out}.{self.marks}")
            wait_until(done.exists, 60, f"mark {self.marks} of the {self.instrument} run")
        self.marks += 1

    def stop(self) -> None:
        """SIGTERM (nothing after the last mark is counted); kill if anything is left."""
        try:
            if self.conn is not None:
                self.conn.close()
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def batches(self) -> list[dict]:
        """The counts between consecutive marks, one dict per batch."""
        if self.instrument == "callgrind":
            found = []
            for i in range(2, self.marks + 1):     # dump 1 holds the warm-up (uninstrumented)
                profile = parse_callgrind(Path(f"{self.out}.cg.{i}"))
                found.append({"instructions": profile.total, "alloc_blocks": profile.allocator_calls(),
                              "functions": profile.self_cost})
            return found
        if self.instrument == "strace":
            return strace_batches(Path(f"{self.out}.strace").read_text())[1:self.marks]
        snaps = [json.loads(Path(f"{self.out}.{i}").read_text()) for i in range(self.marks)]
        return [_difference(snaps[i + 1], snaps[i]) for i in range(len(snaps) - 1)]


def _difference(after: dict, before: dict) -> dict:
    out = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict):
            out[key] = {k: v - (old or {}).get(k, 0) for k, v in value.items() if v != (old or {}).get(k, 0)}
        elif isinstance(value, list):
            out[key] = [a - b for a, b in zip(value, old or [0] * len(value))]
        else:
            out[key] = value - (old or 0)
    return out


def strace_batches(text: str) -> list[dict]:
    """strace -f output cut at each mark (the marker thread's sigwait returning SIGUSR1):
    {syscall: calls} per piece (the first piece is start-up and warm-up)."""
    pieces, current = [], {}
    for line in text.splitlines():
        if "rt_sigtimedwait" in line and line.rstrip().endswith("(SIGUSR1)"):
            pieces.append(current)
            current = {}
        m = _SYSCALL.match(line)
        if m:
            current[m.group(1)] = current.get(m.group(1), 0) + 1
    pieces.append(current)
    return [{"syscalls": p} for p in pieces]


def run_side(tree: Path, instrument: str, plan: Plan, work: Path, env_extra: dict | None = None) -> dict:
    """One process: warm-up, then per endpoint N and 2N; {endpoint: (batch N, batch 2N)}."""
    run = Run(tree, instrument, work, plan.seed, env_extra)
    try:
        run.start()
        for endpoint in ENDPOINTS:
            run.requests(endpoint, plan.warmup)
        run.mark()
        for endpoint in ENDPOINTS:
            n = plan.batch(instrument, endpoint)
            run.requests(endpoint, n)
            run.mark()
            run.requests(endpoint, 2 * n)
            run.mark()
    finally:
        run.stop()
    if run.proc.returncode not in (0, -signal.SIGTERM):
        raise CostError(f"the service under {instrument} ended with {run.proc.returncode}: {run._stderr()}")
    batches = run.batches()
    return {endpoint: (batches[2 * i], batches[2 * i + 1]) for i, endpoint in enumerate(ENDPOINTS)}


def prime(tree: Path, work: Path, seed: int) -> None:
    """A short native run with bytecode writing on, so every measured run reads the same
    cached bytecode (a run that compiled would count the compiler)."""
    run_side(tree, "plain", Plan(warmup=2, n=tuple((e, 1) for e in ENDPOINTS), n_native=1, seed=seed), work,
             {"PYTHONDONTWRITEBYTECODE": ""})


def check_tools() -> None:
    for tool in ("valgrind", "callgrind_control", "strace", "setarch"):
        if shutil.which(tool) is None:
            raise CostError(f"{tool} is not installed: run `make setup` (stack/install-os-packages.sh "
                            f"installs valgrind and strace) or `sudo apt-get install valgrind strace`")


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgebench-cost-"))
