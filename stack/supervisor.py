"""The native supervisor: a detached process (``python -m stack.supervisor --state-dir DIR``,
started by stack.api, never by hand) that starts the
planned services in their cgroups, applies docker's restart policy, runs the compose
healthcheck, counts restarts and OOM kills, keeps ``<state-dir>/state.json`` current and
tears everything down on SIGTERM/SIGINT/SIGHUP, or as soon as its owner (the process that
started the stack, recorded in plan.json by pid and start time) is gone, however it died.
It registers the stack in the machine-wide registry (stack/registry.py) while it runs.

Input: ``<state-dir>/plan.json`` written by ``stack.api.start_stack``.
Single-threaded on purpose: children are forked with a ``preexec_fn``.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from plumbing.cgroup_counters import detect_version
from plumbing.files import write_json_atomic
from plumbing.wait import WaitTimeout, wait_until

from . import registry
from .cgroup_limits import CgroupUnavailable, ServiceCgroup
from .cgroup_view import ViewPlan, check_view, plan_view
from .native import http_ok, pid_alive, proc_starttime, signal_group, spawn, tail
from .state import checked

TICK = 0.05
BACKOFF_START = 0.1  # docker's restart manager: 100 ms, doubled per quick exit,
BACKOFF_MAX = 60.0  # capped at one minute,
BACKOFF_RESET_AFTER = 10.0  # back to 100 ms after 10 s up.
STOP_GRACE = 10.0  # docker stop's default
HEALTH_RETRY_WHILE_STARTING = 1.0  # s between compose healthchecks until the first success


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
        self.answering = False  # its health endpoint answered (the cheap start-up probe)
        self.check = HealthcheckRun(plan.get("healthcheck"), state_dir / "health" / f"{self.name}.out")

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
                "volumes": p["volumes"], "healthcheck": self.check.state()}


class HealthcheckRun:
    """The compose healthcheck of one service, run as Docker runs it: its ``test`` command
    inside the service's cgroup (its memory and CPU count against the limits), every
    ``interval``, killed after ``timeout``, unhealthy after ``retries`` failures in a row,
    failures inside ``start_period`` not counted. Until the first success it runs every
    HEALTH_RETRY_WHILE_STARTING s once the service answers, so a start-up waits for one
    check, not one interval. The CPU of each run (wait4's rusage) is kept in state.json."""

    def __init__(self, spec: dict | None, out_path: Path):
        self.spec = spec
        self.out_path = out_path
        self.proc = None
        self.started = 0.0
        self.next_at = 0.0
        self.timed_out = False
        self.runs = 0
        self.failures_in_a_row = 0
        self.last: dict | None = None
        self.cpu_ms_total = 0.0

    def state(self) -> dict | None:
        if not self.spec:
            return None
        return {"argv": self.spec["argv"], "interval_s": self.spec["interval_s"],
                "timeout_s": self.spec["timeout_s"], "retries": self.spec["retries"],
                "start_period_s": self.spec["start_period_s"], "runs": self.runs,
                "failures_in_a_row": self.failures_in_a_row, "last": self.last,
                "cpu_ms_mean": round(self.cpu_ms_total / self.runs, 3) if self.runs else None}

    def start(self, env: dict, cwd: str, cgroup: ServiceCgroup | None, view: ViewPlan | None = None) -> None:
        self.proc = spawn(self.spec["argv"], env, cwd, self.out_path, cgroup, append=False, view=view)
        self.started = time.monotonic()
        self.timed_out = False

    def poll(self, now: float) -> bool | None:
        """None while the check runs; else True (passed) / False (failed or timed out)."""
        try:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, ru = self.proc.pid, 1 << 8, None
        if pid == 0:
            if now - self.started <= self.spec["timeout_s"]:
                return None
            self.timed_out = True
            signal_group(self.proc.pid, signal.SIGKILL)
            pid, status, ru = os.wait4(self.proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # reaped here, through wait4, for its rusage
        self.proc = None
        cpu_ms = (ru.ru_utime + ru.ru_stime) * 1000 if ru else None
        self.runs += 1
        if cpu_ms is not None:
            self.cpu_ms_total += cpu_ms
        ok = code == 0 and not self.timed_out
        self.last = {"t": time.time(), "exit_code": code, "timed_out": self.timed_out, "ok": ok,
                     "duration_s": round(now - self.started, 4),
                     "cpu_ms": round(cpu_ms, 3) if cpu_ms is not None else None,
                     "output": tail(self.out_path, 2)}
        return ok

    def kill(self) -> None:
        if self.proc is not None:
            signal_group(self.proc.pid, signal.SIGKILL)
            try:
                os.waitpid(self.proc.pid, 0)
            except ChildProcessError:
                pass
            self.proc.returncode = -9
            self.proc = None


class Supervisor:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.plan = json.loads((self.state_dir / "plan.json").read_text())
        self.runners = [Runner(p, self.state_dir) for p in self.plan["services"]]
        self.status = "starting"
        self.error = None
        self.stop_requested = False
        self.limits_enforced = True
        self.view: ViewPlan | None = None  # each service's own /sys/fs/cgroup, as in a container
        self.view_error: str | None = None
        self.cgroup_version = detect_version()
        self.started_at = time.time()
        self.healthy_at = None
        self.warnings: list[str] = []
        self.events = open(self.state_dir / "events.jsonl", "a", buffering=1)
        self.dirty = True
        self.finished = False
        self.owner_pid = self.plan.get("owner_pid")
        self.owner_starttime = self.plan.get("owner_starttime")
        self.stop_reason: str | None = None
        self.last_owner_check = 0.0

    # ------------------------------------------------------------ bookkeeping
    def event(self, r: Runner, kind: str, pid=None, detail=None) -> None:
        self.events.write(json.dumps({"t": time.time(), "service": r.name, "event": kind, "pid": pid,
                                      "detail": detail}) + "\n")
        self.dirty = True

    def write_state(self) -> None:
        alive = not self.finished
        write_json_atomic(self.state_dir / "state.json", checked({
            "engine": "native", "stack_id": self.plan["stack_id"],
            "supervisor_pid": os.getpid() if alive else None,
            "supervisor_starttime": proc_starttime(os.getpid()) if alive else None,
            "status": self.status, "error": self.error, "stop_reason": self.stop_reason,
            "owner_pid": self.owner_pid, "owner_starttime": self.owner_starttime,
            "cgroup_version": self.cgroup_version, "limits_enforced": self.limits_enforced,
            "cgroup_view": "own" if self.view is not None else "host",
            "cgroup_view_error": self.view_error,
            "warnings": self.warnings,
            "compose_file": self.plan.get("compose_file"), "state_dir": str(self.state_dir),
            "started_at": self.started_at, "healthy_at": self.healthy_at, "updated_at": time.time(),
            "services": {r.name: r.state() for r in self.runners}}))
        self.dirty = False

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        print(f"edgebench stack: warning: {msg}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------ lifecycle
    def _on_signal(self, signum, frame):
        self.stop_requested = True
        if self.stop_reason is None:
            self.stop_reason = f"{signal.Signals(signum).name} received"

    def owner_gone(self) -> bool:
        """The process that started the stack (a bench, a profile, a gate) has exited."""
        if not self.owner_pid:
            return False
        return not pid_alive(self.owner_pid, self.owner_starttime)

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
            return
        self.choose_view()

    def choose_view(self) -> None:
        """Give every service a container's view of its own limits, or say once why not
        (EDGEBENCH_CGROUP_VIEW=host keeps the host's view, for comparing the two)."""
        if os.environ.get("EDGEBENCH_CGROUP_VIEW", "own") == "host":
            self.view_error = "EDGEBENCH_CGROUP_VIEW=host"
            return
        plan = plan_view()
        why = check_view(str(Path(__file__).resolve().parent.parent)) if plan else "no cgroup mounts found"
        if why is None:
            self.view = plan
        else:
            self.view_error = why
            self.warn(f"{why}; the services read the HOST's limits at /sys/fs/cgroup, not their own "
                      f"(a Go runtime or cache sizes itself from them)")

    def start(self, r: Runner) -> None:
        r.proc = spawn(r.plan["argv"], r.plan["env"], r.plan["cwd"], r.log, r.cgroup, view=self.view)
        r.pid_starttime = proc_starttime(r.proc.pid)
        r.started_at = time.time()
        r.status, r.health, r.next_start, r.exit_code = "running", "starting", None, None
        r.answering = False
        r.check.kill()
        r.check.failures_in_a_row = 0
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
        r.check.kill()
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
        if now - self.last_owner_check >= 0.2:
            self.last_owner_check = now
            if self.owner_gone():
                self.stop_reason = f"owner process {self.owner_pid} is gone; stack torn down"
                print(f"edgebench stack: {self.stop_reason}", file=sys.stderr, flush=True)
                self.stop_requested = True
                return
        for r in self.runners:
            if r.proc is not None and r.status == "running":
                if r.proc.poll() is not None:
                    self.on_exit(r)
                    continue
                self.check_oom(r, r.proc.pid)
                self.health_tick(r, now)
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

    def set_health(self, r: Runner, health: str) -> None:
        if health == r.health:
            return
        r.health = health
        self.dirty = True
        if health == "healthy":
            first = not r.ever_healthy
            r.ever_healthy = True
            self.event(r, "healthy", r.proc.pid, {"after_s": round(time.time() - r.started_at, 3)} if first else None)
        else:
            self.event(r, health, r.proc.pid, r.check.last)

    def health_tick(self, r: Runner, now: float) -> None:
        """The cheap probe (outside the cgroup) until the endpoint answers; then the
        compose healthcheck inside the cgroup, if the service has one."""
        chk = r.check
        if chk.proc is not None:
            ok = chk.poll(now)
            if ok is None:
                return
            self.dirty = True
            if ok:
                chk.failures_in_a_row = 0
                self.set_health(r, "healthy")
            elif time.time() - r.started_at >= chk.spec["start_period_s"]:
                chk.failures_in_a_row += 1
                if chk.failures_in_a_row >= chk.spec["retries"] and r.ever_healthy:
                    self.set_health(r, "unhealthy")
            chk.next_at = now + (chk.spec["interval_s"] if r.ever_healthy else HEALTH_RETRY_WHILE_STARTING)
            return
        if not r.answering:
            if now - r.last_probe >= 0.1:
                r.last_probe = now
                if http_ok(r.plan["health_url"]):
                    r.answering = True
                    chk.next_at = now
                    if chk.spec is None:
                        self.set_health(r, "healthy")
            return
        if chk.spec is not None and now >= chk.next_at and not self.stop_requested:
            try:
                chk.start(r.plan["env"], r.plan["cwd"], r.cgroup, self.view)
            except OSError as e:
                chk.last = {"t": time.time(), "ok": False, "output": f"cannot run: {e.strerror}"}
                chk.failures_in_a_row += 1
                chk.next_at = now + chk.spec["interval_s"]

    def teardown(self) -> None:
        if self.status != "failed":
            self.status = "stopping"
        self.write_state()
        for r in self.runners:
            r.check.kill()
        live = [r for r in self.runners if r.proc is not None and r.proc.returncode is None]
        for r in reversed(live):
            signal_group(r.proc.pid, signal.SIGTERM)
        try:
            wait_until(lambda: all(r.proc.poll() is not None for r in live), self.plan.get("stop_grace", STOP_GRACE),
                       "the services to exit after SIGTERM", interval=TICK)
        except WaitTimeout:
            pass  # the ones still running are killed below
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
            registry.register(self.plan["stack_id"], self.state_dir, "native", os.getpid(),
                              self.owner_pid, self.plan.get("compose_file"))
            if self.owner_gone():  # it died while we were starting
                self.stop_reason = f"owner process {self.owner_pid} is gone; stack torn down"
                self.stop_requested = True
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
            registry.unregister(self.plan["stack_id"])
        return 1 if self.status == "failed" else 0


def _fmt(detail: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in detail.items())


def main(state_dir: str) -> int:
    return Supervisor(Path(state_dir)).run()


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(prog="python -m stack.supervisor",
                                 description="internal: started detached by stack.api.start_stack")
    ap.add_argument("--state-dir", required=True)
    sys.exit(main(ap.parse_args().state_dir))
