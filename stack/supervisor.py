"""The native supervisor: a detached process (``python -m stack supervise``) that starts the
planned services in their cgroups, applies docker's restart policy, counts restarts and
OOM kills, keeps ``<state-dir>/state.json`` current and tears everything down on
SIGTERM/SIGINT/SIGHUP.

Input: ``<state-dir>/plan.json`` written by ``stack.api.start_stack`` (or ``stack up``).
Single-threaded on purpose: children are forked with a ``preexec_fn``.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from plumbing.cgroup import detect_version
from plumbing.files import write_json_atomic

from .cgroups import CgroupUnavailable, ServiceCgroup
from .native import http_ok, proc_starttime, signal_group, spawn, tail

TICK = 0.05
BACKOFF_START = 0.1  # docker's restart manager: 100 ms, doubled per quick exit,
BACKOFF_MAX = 60.0  # capped at one minute,
BACKOFF_RESET_AFTER = 10.0  # back to 100 ms after 10 s up.
STOP_GRACE = 10.0  # docker stop's default


def next_backoff(previous: float, up_for: float) -> float:
    """Docker's restart delay: 100 ms, doubled per quick exit, capped at 60 s; back to
    100 ms when the process had been up for 10 s or more."""
    if previous <= 0 or up_for >= BACKOFF_RESET_AFTER:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)


def should_restart(policy: str, exit_code: int, restarts: int, max_retries: int | None) -> bool:
    """Docker's restart policies (``exit_code`` < 0: killed by that signal, a failure)."""
    if policy in ("always", "unless-stopped"):
        return True
    if policy == "on-failure":
        return exit_code != 0 and (max_retries is None or restarts < max_retries)
    return False


class Runner:
    """One service: its plan, cgroup, current process and counters."""

    def __init__(self, plan: dict, state_dir: Path):
        self.plan = plan
        self.name = plan["name"]
        self.log = state_dir / "logs" / f"{self.name}.log"
        self.cgroup: ServiceCgroup | None = None
        self.proc = None
        self.pid_starttime = None
        self.status = "created"
        self.health = "starting"
        self.restarts = 0
        self.oom_kills = 0
        self.oom_seen = 0  # last cgroup oom_kill counter
        self.started_at = 0.0
        self.next_start = None
        self.backoff = 0.0
        self.last_probe = 0.0
        self.ever_healthy = False
        self.exit_code = None

    def state(self) -> dict:
        p = self.plan
        return {"pid": self.proc.pid if self.proc and self.proc.returncode is None else None,
                "pid_starttime": self.pid_starttime if self.proc and self.proc.returncode is None else None,
                "status": self.status, "health": self.health,
                "url": p["url"], "health_url": p["health_url"], "host_port": p["host_port"],
                "mem_limit_bytes": p["mem_limit"], "memswap_limit_bytes": p["memswap_limit"],
                "cpus": p["cpus"], "restart_policy": p["restart"],
                "cgroups": {k: str(v) for k, v in self.cgroup.paths.items()} if self.cgroup else {},
                "restarts": self.restarts, "oom_kills": self.oom_kills, "exit_code": self.exit_code,
                "started_at": self.started_at, "log": str(self.log), "argv": p["argv"],
                "volumes": p["volumes"]}


class Supervisor:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.plan = json.loads((self.state_dir / "plan.json").read_text())
        self.runners = [Runner(p, self.state_dir) for p in self.plan["services"]]
        self.status = "starting"
        self.error = None
        self.stop_requested = False
        self.limits_enforced = True
        self.cgroup_version = detect_version()
        self.started_at = time.time()
        self.healthy_at = None
        self.warnings: list[str] = []
        self.events = open(self.state_dir / "events.jsonl", "a", buffering=1)
        self.dirty = True
        self.finished = False

    # ------------------------------------------------------------ bookkeeping
    def event(self, r: Runner, kind: str, pid=None, detail=None) -> None:
        self.events.write(json.dumps({"t": time.time(), "service": r.name, "event": kind, "pid": pid,
                                      "detail": detail}) + "\n")
        self.dirty = True

    def write_state(self) -> None:
        alive = not self.finished
        write_json_atomic(self.state_dir / "state.json", {
            "engine": "native", "stack_id": self.plan["stack_id"],
            "supervisor_pid": os.getpid() if alive else None,
            "supervisor_starttime": proc_starttime(os.getpid()) if alive else None,
            "status": self.status, "error": self.error,
            "cgroup_version": self.cgroup_version, "limits_enforced": self.limits_enforced,
            "warnings": self.warnings,
            "compose_file": self.plan.get("compose_file"), "state_dir": str(self.state_dir),
            "started_at": self.started_at, "healthy_at": self.healthy_at, "updated_at": time.time(),
            "services": {r.name: r.state() for r in self.runners}})
        self.dirty = False

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        print(f"edgebench stack: warning: {msg}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------ lifecycle
    def _on_signal(self, signum, frame):
        self.stop_requested = True

    def create_cgroups(self) -> None:
        made: list[ServiceCgroup] = []
        try:
            for r in self.runners:
                p = r.plan
                r.cgroup = ServiceCgroup.create(f"edgebench-{self.plan['stack_id']}-{r.name}",
                                                p["mem_limit"], p["memswap_limit"], p["cpus"])
                made.append(r.cgroup)
        except CgroupUnavailable as e:
            for cg in made:
                cg.remove()
            for r in self.runners:
                r.cgroup = None
            self.limits_enforced = False
            self.warn(f"{e}; running the services UNCONFINED: memory and CPU limits are NOT enforced "
                      f"(run as root with cgroups mounted, or use --engine docker)")

    def start(self, r: Runner) -> None:
        r.proc = spawn(r.plan["argv"], r.plan["env"], r.plan["cwd"], r.log, r.cgroup)
        r.pid_starttime = proc_starttime(r.proc.pid)
        r.started_at = time.time()
        r.status, r.health, r.next_start, r.exit_code = "running", "starting", None, None
        self.event(r, "start", r.proc.pid, {"argv": r.plan["argv"]})

    def check_oom(self, r: Runner, pid) -> None:
        if r.cgroup is None:
            return
        n = r.cgroup.oom_kills()
        if n > r.oom_seen:
            r.oom_kills += n - r.oom_seen
            self.event(r, "oom_kill", pid, {"count": n - r.oom_seen, "cgroup_oom_kill": n,
                                            "mem_limit_bytes": r.plan["mem_limit"]})
            r.oom_seen = n

    def on_exit(self, r: Runner) -> None:
        rc = r.proc.returncode
        pid = r.proc.pid
        detail = {"exit_code": rc} if rc >= 0 else {"signal": signal.Signals(-rc).name}
        r.exit_code = rc
        self.event(r, "exit", pid, detail)
        self.check_oom(r, pid)
        if r.cgroup is not None:  # like docker: the container ends with its main process
            r.cgroup.kill_all()
        else:
            signal_group(pid, signal.SIGKILL)
        up_for = time.time() - r.started_at
        restart = should_restart(r.plan["restart"], rc, r.restarts, r.plan["restart_max_retries"])
        if self.status == "starting" and not r.ever_healthy:
            self.fail(f"service '{r.name}' exited ({_fmt(detail)}) before it became healthy; "
                      f"log {r.log}: {tail(r.log) or '(empty)'}")
            r.status = "exited"
            return
        if not restart or self.stop_requested:
            r.status, r.health = "exited", "none"
            return
        r.backoff = next_backoff(r.backoff, up_for)
        r.next_start = time.monotonic() + r.backoff
        r.status, r.health = "restarting", "starting"

    def fail(self, msg: str) -> None:
        if self.error is None:
            self.error = msg
            print(f"edgebench stack: error: {msg}", file=sys.stderr, flush=True)
        self.status = "failed"
        self.stop_requested = True

    def tick(self) -> None:
        now = time.monotonic()
        for r in self.runners:
            if r.proc is not None and r.status == "running":
                if r.proc.poll() is not None:
                    self.on_exit(r)
                    continue
                self.check_oom(r, r.proc.pid)
                if r.health != "healthy" and now - r.last_probe >= 0.1:
                    r.last_probe = now
                    if http_ok(r.plan["health_url"]):
                        r.health = "healthy"
                        r.ever_healthy = True
                        self.dirty = True
                        self.event(r, "healthy", r.proc.pid, {"after_s": round(time.time() - r.started_at, 3)})
            elif r.status == "restarting" and r.next_start is not None and now >= r.next_start \
                    and not self.stop_requested:
                r.restarts += 1
                self.start(r)
                self.event(r, "restart", r.proc.pid, {"restarts": r.restarts, "backoff_s": r.backoff})
        if self.status == "starting" and all(r.health == "healthy" for r in self.runners):
            self.status = "running"
            self.healthy_at = time.time()
            self.dirty = True
        if self.status == "starting" and time.time() - self.started_at > self.plan["timeout"]:
            bad = [r for r in self.runners if r.health != "healthy"]
            self.fail("; ".join(f"service '{r.name}' not healthy at {r.plan['health_url']} after "
                                f"{self.plan['timeout']:g}s (log {r.log}: {tail(r.log, 2) or 'empty'})"
                                for r in bad)
                      + "; fix: see the log, or raise the timeout")

    def teardown(self) -> None:
        if self.status != "failed":
            self.status = "stopping"
        self.write_state()
        live = [r for r in self.runners if r.proc is not None and r.proc.returncode is None]
        for r in reversed(live):
            signal_group(r.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.plan.get("stop_grace", STOP_GRACE)
        while time.monotonic() < deadline and any(r.proc.poll() is None for r in live):
            time.sleep(TICK)
        for r in live:
            if r.proc.poll() is None:
                signal_group(r.proc.pid, signal.SIGKILL)
                self.event(r, "kill", r.proc.pid, {"after_s": self.plan.get("stop_grace", STOP_GRACE)})
            try:
                r.proc.wait(timeout=5)
            except Exception:
                pass
            self.event(r, "stop", r.proc.pid, {"exit_code": r.proc.returncode})
        for r in self.runners:
            if r.cgroup is not None:
                if not r.cgroup.remove(timeout=5):
                    self.warn(f"could not remove cgroup {r.cgroup.paths}")
            r.status, r.health = "stopped", "none"
        if self.status != "failed":
            self.status = "stopped"
        self.finished = True
        self.write_state()

    def run(self) -> int:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        try:
            self.create_cgroups()
            self.write_state()
            for r in self.runners:
                if self.stop_requested:
                    break
                try:
                    self.start(r)
                except OSError as e:
                    self.fail(f"service '{r.name}': cannot start {r.plan['argv'][0]}: {e.strerror}")
                    break
            self.write_state()
            last_write = time.monotonic()
            while not self.stop_requested:
                self.tick()
                if self.dirty or time.monotonic() - last_write > 5:
                    self.write_state()
                    last_write = time.monotonic()
                time.sleep(TICK)
        except Exception as e:  # never leave processes or cgroups behind
            self.fail(f"supervisor crashed: {type(e).__name__}: {e}")
            raise
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.teardown()
            self.events.close()
        return 1 if self.status == "failed" else 0


def _fmt(detail: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in detail.items())


def main(state_dir: str) -> int:
    return Supervisor(Path(state_dir)).run()
