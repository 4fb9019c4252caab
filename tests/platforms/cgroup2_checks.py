"""Inside the cgroup v2 guest: edgebench's own commands against a real v2 kernel.

Run by tests/test_platform_cgroup2.py through the guest (``python -m
tests.platforms.cgroup2_checks OUT_DIR`` in the checkout). It only observes and records:
every check writes what it saw to ``OUT_DIR/checks.json`` (re-written after each check, so a guest cut off
half-way still reports what it did) and the host-side test asserts on that. A check that
raises records its traceback and the next one runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import urllib.request
from pathlib import Path

from plumbing.cgroup_counters import PeakMark, detect_version, read_cgroups, read_text
from plumbing.wait import wait_until
from profiling.sampler import ResourceSampler
from stack.api import start_stack
from stack.state import StackState, read_state

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float = 5) -> bytes:
    with _opener.open(url, timeout=timeout) as r:
        return r.read()


def scrape_until_refused(url: str, timeout: float, most: int = 60) -> int:
    """Scrapes of the leaking service until one fails (the OOM kill), at most ``most``:
    each retains 4 MB until the kernel steps in. Returns how many succeeded."""
    for n in range(most):
        try:
            get(url, timeout=timeout)
        except OSError:
            return n
    return most


def cg_files(d: str, names) -> dict:
    return {n: (read_text(Path(d) / n) or "").strip() if (Path(d) / n).exists() else None for n in names}


def cli(*args, timeout: float = 180) -> dict:
    t0 = time.monotonic()
    p = subprocess.run([PY, "-m", "edgebench", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                       timeout=timeout)
    return {"argv": list(map(str, args)), "rc": p.returncode, "stdout": p.stdout[-4000:],
            "stderr": p.stderr[-4000:], "seconds": round(time.monotonic() - t0, 2)}


def check_environment(work: Path) -> dict:
    root = Path("/sys/fs/cgroup")
    return {"kernel": os.uname().release, "detect_version": detect_version(),
            "controllers": (read_text(root / "cgroup.controllers") or "").split(),
            "subtree_control": (read_text(root / "cgroup.subtree_control") or "").split(),
            "nproc": os.cpu_count()}


def check_up(work: Path) -> dict:
    """`edgebench up --engine native` (make up), its limits in memory.max / cpu.max, status, down."""
    state_dir = work / "up-state"
    out: dict = {"up": cli("up", "--engine", "native", "--state-dir", state_dir)}
    st = read_state(state_dir) or StackState()
    out["state"] = {k: getattr(st, k) for k in ("engine", "status", "limits_enforced", "stack_id")}
    services = {}
    for name, s in st.services.items():
        d = s.cgroups.get("unified")
        c = read_cgroups(s.cgroups)
        services[name] = {
            "cgroups": s.cgroups, "pid": s.pid, "health": s.health,
            "files": cg_files(d, ("memory.max", "memory.swap.max", "cpu.max", "cgroup.procs")) if d else None,
            "counters": {"mem_limit_bytes": c.mem_limit_bytes, "cpus": c.cpus, "mem_bytes": c.mem_bytes,
                         "cpu_seconds": c.cpu_seconds, "source": c.source} if c else None,
        }
    out["services"] = services
    out["status"] = cli("status")
    out["down"] = cli("down")
    out["left_after_down"] = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("edgebench-*"))
    return out


LEAK_COMPOSE = """\
services:
  sensor-service:
    build: {{context: "{repo}"}}
    image: edgebench/sensor-service:local
    command: ["python", "-m", "service"]
    environment:
      SENSOR_LEAK_BYTES_PER_SCRAPE: "4000000"
    ports: ["127.0.0.1:8000:8000"]
    restart: always
    mem_limit: 40m
    memswap_limit: 40m
    cpus: 1
"""


def check_oom(work: Path) -> dict:
    """The service leaking 4 MB per scrape under 40 MB: an OOM kill in memory.events, a restart."""
    compose = work / "oom-compose.yml"
    compose.write_text(textwrap.dedent(LEAK_COMPOSE.format(repo=REPO)))
    out: dict = {}
    with start_stack(compose, work / "oom-state", ports={"sensor-service": 18100}, engine="native",
                     timeout=120) as h:
        s0 = h.service("sensor-service")
        d = s0.cgroups["unified"]
        out["before"] = {"pid": s0.pid, "memory.events": cg_files(d, ("memory.events",))["memory.events"]}
        out["scrapes_before_failure"] = scrape_until_refused("http://127.0.0.1:18100/metrics", timeout=20)
        s = wait_until(lambda: (lambda x: x if x.restarts >= 1 and x.health == "healthy" else None)(
            h.service("sensor-service")), 120, "a restart after the OOM kill")
        out["after"] = {"pid": s.pid, "restarts": s.restarts, "oom_kills": s.oom_kills,
                        "cgroups_same": s.cgroups == s0.cgroups,
                        "memory.events": cg_files(d, ("memory.events",))["memory.events"],
                        "counters_oom_kills": read_cgroups(s.cgroups).oom_kills}
        events_file = work / "oom-state" / "events.jsonl"
        out["events"] = [json.loads(x) for x in events_file.read_text().splitlines()] if events_file.exists() else []
        out["healthz_after_restart"] = get("http://127.0.0.1:18100/healthz", timeout=20).decode()[:200]
    return out


def _hammer(url: str, seconds: float, threads: int = 4) -> int:
    stop = time.monotonic() + seconds
    count = [0]

    def loop():
        while time.monotonic() < stop:
            try:
                get(url, timeout=10)
                count[0] += 1
            except OSError:
                pass

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return count[0]


def check_throttle_and_peak(work: Path) -> dict:
    """The baseline service under 0.5 CPU and load: nr_throttled / nr_periods from cpu.stat;
    the kernel's memory.peak read through PeakMark and the sampler, reset where possible."""
    out: dict = {}
    with start_stack(REPO / "docker-compose.yml", work / "thr-state", services=["sensor-service"],
                     env={"sensor-service": {"SENSOR_VARIANT": "baseline"}}, ports={"sensor-service": 18200},
                     engine="native", timeout=120) as h:
        s = h.service("sensor-service")
        cg = s.cgroups
        d = cg["unified"]
        out["cpu.max"] = cg_files(d, ("cpu.max",))["cpu.max"]
        sampler = ResourceSampler(work / "thr-state" / "state.json", work / "thr-resources.csv", interval_s=0.5)
        sampler.start()
        try:
            c0 = read_cgroups(cg)
            reset_at = sampler.reset_peak()
            mark = PeakMark(cg)
            out["peak_mark"] = {"reset": mark.reset(), "read_before_load": mark.read()}
            requests = _hammer("http://127.0.0.1:18200/metrics", 8)
            # the kernel's own memory.peak just before and just after c1: the service is still
            # running, so c1's peak lies between the two (and equals them when nothing moved)
            out["memory.peak.before"] = cg_files(d, ("memory.peak",))["memory.peak"]
            c1 = read_cgroups(cg)
            out["cpu.stat"] = cg_files(d, ("cpu.stat",))["cpu.stat"]  # the same moment as c1
            out["memory.peak"] = cg_files(d, ("memory.peak",))["memory.peak"]
            out["peak_mark"]["read_after_load"] = mark.read()
            out["peak_mark"]["scope"] = mark.scope()
            out["peak_mark"]["not_reset_because"] = mark.not_reset_because
            mark.close()
        finally:
            meta = sampler.stop()
        out["requests"] = requests
        out["counters"] = {
            "before": {"nr_periods": c0.nr_periods, "throttled_periods": c0.throttled_periods,
                       "throttled_seconds": c0.throttled_seconds, "cpu_seconds": c0.cpu_seconds},
            "after": {"nr_periods": c1.nr_periods, "throttled_periods": c1.throttled_periods,
                      "throttled_seconds": c1.throttled_seconds, "cpu_seconds": c1.cpu_seconds,
                      "mem_peak_bytes": c1.mem_peak_bytes, "usage_bytes": c1.usage_bytes},
        }
        out["sampler"] = {"reset_peak": reset_at, "meta_peak_reset_at": meta.get("peak_reset_at"),
                          "meta_peak_scope": meta.get("peak_scope"),
                          "rows": meta.get("rows"), "errors": meta.get("errors"), "last_error": meta.get("last_error")}
        csv_text = (work / "thr-resources.csv").read_text()
        out["sampler"]["csv_head"] = csv_text.splitlines()[:3]
    return out


CHECKS = {"environment": check_environment, "up": check_up, "oom": check_oom,
          "throttle_and_peak": check_throttle_and_peak}


def main() -> int:
    out_dir = Path(sys.argv[1])
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else list(CHECKS)
    work = Path("/tmp/edgebench-guest-checks")
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for name in only:
        t0 = time.monotonic()
        try:
            results[name] = {"ok": True, **CHECKS[name](work)}
        except BaseException as e:  # record and go on: the host asserts on what was seen
            results[name] = {"ok": False, "error": "".join(traceback.format_exception(e))[-3000:]}
        results[name]["seconds"] = round(time.monotonic() - t0, 2)
        print(f"check {name}: {'ok' if results[name]['ok'] else 'FAILED'} in {results[name]['seconds']} s",
              flush=True)
        (out_dir / "checks.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
