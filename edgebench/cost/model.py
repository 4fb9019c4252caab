"""The CPU model's constants, measured on this machine (`edgebench cost-calibrate --model`):

- ns per instruction: the optimized service's /metrics work (core.exposition) run in
  process, its user CPU time natively (the fastest of a few repeats) over its
  instruction count under callgrind;
- ns per system call, by name: a loop of that call from Python, its CPU time
  (time.process_time, user and kernel) less that of the same loop calling a no-op, over
  the number of calls (the fastest of a few repeats).
"""
from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CALLS = 20_000
SCRAPES = 100


def _loop_ns(fn, rounds: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        before = time.process_time()
        for _ in range(rounds):
            fn()
        best = min(best, (time.process_time() - before) / rounds * 1e9)
    return best


def _kernel_ns(fn, calls_per_round: int, rounds: int = CALLS, repeats: int = 5) -> float:
    empty = _loop_ns(lambda: None, rounds, repeats)
    return max(0.0, _loop_ns(fn, rounds, repeats) - empty) / calls_per_round


def syscall_costs() -> dict[str, float]:
    """Kernel ns per call for the calls the service makes per request."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    poller = select.poll()
    poller.register(b, select.POLLIN)
    a.send(b"x")

    def send_recv():
        a.send(b"GET /metrics HTTP/1.1\r\n\r\n")
        b.recv(4096)

    def open_close():
        os.close(os.open("/proc/self/stat", os.O_RDONLY))

    costs = {
        "newfstatat": _kernel_ns(lambda: os.stat("/proc/self/stat"), 1),
        "lseek": _kernel_ns(lambda: os.lseek(fd, 0, os.SEEK_SET), 1),
        "read": _kernel_ns(lambda: os.pread(fd, 4096, 0), 1),
        "ioctl": _kernel_ns(lambda: a.setblocking(False), 1),
        "prlimit64": _kernel_ns(lambda: resource.getrlimit(resource.RLIMIT_NOFILE), 1),
        "clock_gettime": _kernel_ns(time.thread_time, 1),
        "poll": _kernel_ns(lambda: poller.poll(0), 1),
        "send+recv": _kernel_ns(send_recv, 1),
        "openat+close": _kernel_ns(open_close, 1),
        "listdir": _kernel_ns(lambda: os.listdir("/proc/self/fd"), 1, rounds=CALLS // 4),
    }
    os.close(fd)
    a.close()
    b.close()
    pair, open_close_ns = costs.pop("send+recv"), costs.pop("openat+close")
    costs["sendto"] = costs["recvfrom"] = pair / 2
    costs["openat"] = costs["close"] = open_close_ns / 2
    # os.listdir: openat, fstat, two getdents64, close
    costs["getdents64"] = max(0.0, (costs.pop("listdir") - open_close_ns - costs["newfstatat"]) / 2)
    costs["default"] = sorted(costs.values())[len(costs) // 2]
    return {k: round(v, 1) for k, v in costs.items()}


_SCRAPE_PROGRAM = """
import resource, sys
sys.path.insert(0, {tree!r})
from service.config import parse_config
from service import core
config = parse_config(["--port", "1"])
core.prepare(config)
capture = core.ScrapeCapture()
for _ in range(20):
    core.exposition(config, capture)
t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
for _ in range({n}):
    core.exposition(config, capture)
print(resource.getrusage(resource.RUSAGE_SELF).ru_utime - t0)
"""


def ns_per_instruction(tree: Path, repeats: int = 5) -> float:
    """Native user CPU over callgrind instructions for N and 2N in-process scrapes."""
    from edgebench.cost.callgrind import parse_callgrind
    env = {**os.environ, "PYTHONHASHSEED": "0", "SENSOR_SEED": "1"}
    with tempfile.TemporaryDirectory(prefix="edgebench-cost-model-") as work:
        counts = []
        for n in (SCRAPES, 2 * SCRAPES):
            out = Path(work) / f"cg.{n}"
            subprocess.run(["setarch", "-R", "valgrind", "--tool=callgrind", "--quiet",
                            f"--callgrind-out-file={out}", sys.executable, "-c",
                            _SCRAPE_PROGRAM.format(tree=str(tree), n=n)],
                           check=True, env=env, capture_output=True)
            counts.append(parse_callgrind(out).total)
        instructions = (counts[1] - counts[0]) / SCRAPES
    seconds = min(float(subprocess.run([sys.executable, "-c", _SCRAPE_PROGRAM.format(tree=str(tree), n=SCRAPES)],
                                       check=True, env=env, capture_output=True, text=True).stdout)
                  for _ in range(repeats))
    return seconds / SCRAPES * 1e9 / instructions
