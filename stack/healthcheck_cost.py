"""What one compose healthcheck costs in a cgroup (CPU ms, memory charged at its peak).

    python -m stack.healthcheck_cost [--runs 10] [-f docker-compose.yml]

Starts the sensor service alone (native engine), then runs each test command —
the compose file's own, the python one, and busybox-style wget — ``--runs`` times, each
run alone in a fresh cgroup of its own, exactly as the supervisor runs it in the
service's cgroup: the group's CPU counter gives the run's CPU, and its memory high-water
mark the memory the run adds to the service's cgroup at its peak (rusage's maxrss would
count the forking supervisor's pages). Prints medians side by side.
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from plumbing.process import die_with_parent

from .api import DEFAULT_COMPOSE, free_port, start_stack
from .cgroup_limits import ServiceCgroup
from .compose import load_compose

TESTS = {
    "python": ["python", "-c",
               "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"],
    "wget": ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/healthz"],
}


def run_once(argv: list[str]) -> tuple[float, int, int]:
    """(CPU ms, peak memory bytes, exit code) of one run in a cgroup of its own."""
    cg = ServiceCgroup.create(f"edgebench-hc-{os.getpid()}-{secrets.token_hex(3)}", None, None, None)
    try:
        parent = os.getpid()

        def pre():
            cg.add_pid(os.getpid())
            die_with_parent(parent)

        code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=pre, timeout=30).returncode
        c = cg.counters()
        return 1000 * (c.cpu_seconds or 0.0), c.mem_peak_bytes or 0, code
    finally:
        cg.remove()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stack.healthcheck_cost", description=__doc__.splitlines()[0])
    ap.add_argument("-f", "--compose", type=Path, default=DEFAULT_COMPOSE)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    compose = load_compose(args.compose)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="edgebench-hc-") as tmp, \
            start_stack(args.compose, Path(tmp) / "state", services=["sensor-service"],
                        ports={"sensor-service": port}, engine="native") as h:
        own = h.service("sensor-service").healthcheck
        tests = {"compose file": own.argv if own else None}
        for label, test in TESTS.items():
            test = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in test]
            tests[label] = [sys.executable] + test[1:] if test[0] == "python" else test
        print(f"{'test':<14}{'runs':>5}{'CPU ms/run':>12}{'max':>7}{'memory MB':>11}  command "
              f"(compose file: {compose.path})")
        for label, test in tests.items():
            if not test:
                continue
            runs = [run_once(test) for _ in range(args.runs)]
            cpu = [r[0] for r in runs]
            mem = [r[1] / 2**20 for r in runs]
            bad = sum(1 for r in runs if r[2] != 0)
            print(f"{label:<14}{len(runs):>5}{statistics.median(cpu):>12.1f}{max(cpu):>7.1f}"
                  f"{statistics.median(mem):>11.1f}  {' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(test))[:70]}"
                  + (f"  ({bad} failed)" if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
