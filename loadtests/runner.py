"""Run Locust headless in a subprocess and collect its raw per-request samples.

Locust monkey-patches the interpreter with gevent, so it never runs inside the
orchestrator: :func:`run_load` starts ``python -m locust`` as a child process
(its own session, so a terminal Ctrl-C reaches only us and we stop it in order),
watches it, reports progress, and merges the per-process sample parts written by
``loadtests/locustfile.py`` into ``<out_dir>/requests.csv.gz``.

Layout under ``out_dir``::

    requests.csv.gz        merged raw samples, one row per intended request, sorted by
                           intended time (columns: loadtests.samples.SAMPLE_COLUMNS)
    locust/                Locust's own output: locust_stats.csv, locust_stats_history.csv,
                           locust_failures.csv, locust_exceptions.csv, report.html,
                           test_start.json, schedule.json (users' phases), load_result.json
    logs/locust.log        Locust's stdout/stderr
"""
from __future__ import annotations

import ctypes
import io
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import psutil

from loadtests import samples as sample_format
from loadtests.samples import SAMPLE_COLUMNS
from loadtests.spec import LoadError, LoadSpec  # noqa: F401 - LoadError: loadtests.runner's refusal
from plumbing.checks import number
from plumbing.files import read_json, write_atomic, write_json_atomic
from plumbing.ports import free_port

PHASE_SEED = 1  # the users' phases are the same every run
PR_SET_PDEATHSIG = 1
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
PACKAGE_ROOT = LOCUSTFILE.parent.parent
CPU_BOTTLENECK_PERCENT = 90.0  # of one core, like Locust's own CPU_WARNING_THRESHOLD
LOCUST_CPU_WARNINGS = ("CPU usage above", "CPU usage was too high", "CPU usage threshold was exceeded")
START_TIMEOUT_S = 30.0  # launch -> test_start (workers connecting included)
START_TIMEOUT_ENV = "EDGEBENCH_LOAD_START_TIMEOUT_S"  # a slower machine (the cgroup v2 guest: minutes)
STOP_GRACE_S = 8.0  # SIGINT -> SIGTERM -> SIGKILL
# Locust ends its run on its own clock, a fraction of a millisecond around the steady
# window's computed end: only an end well before it means Locust died early.
EARLY_END_TOLERANCE_S = 1.0


@dataclass
class LoadResult:
    target: str
    out_dir: Path
    requests_csv: Path
    locust_dir: Path
    log_path: Path
    started_at: float  # epoch s, test start (users start spawning)
    steady_start: float  # started_at + warmup_s
    steady_end: float  # steady_start + duration_s, or the stop time if interrupted
    ended_at: float  # epoch s, Locust exited
    warmup_s: float
    duration_s: float
    samples: int  # rows in requests.csv.gz (all, warm-up included; one per intended request)
    steady_samples: int  # rows intended inside the steady window
    failures: int  # sent rows with ok == 0
    status_codes: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)  # sample rows per Locust process (part file name)
    loadgen_cpu_seconds: float = 0.0
    # the load generator's own overhead: Locust CPU seconds per sent request, steady window
    loadgen_cpu_s_per_request: float | None = None
    loadgen_peak_cpu_percent: float = 0.0  # highest 1 s sample of any one Locust process
    loadgen_bottleneck: bool = False
    loadgen_warning: str = ""
    exit_code: int | None = None
    interrupted: bool = False
    spec: LoadSpec | None = None  # the load as checked (users, rates, workers, timeout)
    phase_seed: int = PHASE_SEED
    schedule: list = field(default_factory=list)  # every user's slot, phase_s, interval_s, cap
    pids: list = field(default_factory=list)  # every Locust process seen (all stopped on return)
    command: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        return d


# ---------------------------------------------------------------------------
# reachability
# ---------------------------------------------------------------------------
def check_target(target: str, timeout: float = 3.0) -> None:
    """Raise LoadError unless something answers HTTP at target (/healthz, then /metrics)."""
    base = target.rstrip("/")
    last = None
    for path in ("/healthz", "/metrics"):
        try:
            with urllib.request.urlopen(base + path, timeout=timeout) as resp:
                resp.read(1)
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                return  # it answers HTTP; an error status is for the load test to record
            last = f"HTTP {exc.code} on {path}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"{reason}"
            break  # not reachable at all: no point trying another path
    raise LoadError(f"load target {base} does not answer ({last}): start the service (make up) "
                    f"or pass TARGET=<url> of a running one")


# ---------------------------------------------------------------------------
# samples: tolerant part reader, live tail, merge
# ---------------------------------------------------------------------------
def _decode_members(data: bytes) -> tuple[str, int]:
    """Decompress concatenated gzip members; stop at the first incomplete/corrupt one.

    Returns the text of the complete members and the number of bytes they used.
    """
    out, used = [], 0
    while used < len(data):
        d = zlib.decompressobj(wbits=31)
        try:
            text = d.decompress(data[used:])
        except zlib.error:
            break
        if not d.eof:
            break  # member cut short (writer killed mid-write, or still being written)
        out.append(text)
        used = len(data) - len(d.unused_data)
    return b"".join(out).decode("utf-8", "replace"), used


def read_part(path: Path) -> pd.DataFrame:
    text, _ = _decode_members(Path(path).read_bytes())
    if not text.strip():
        return sample_format.empty_samples()
    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    df = df[df[SAMPLE_COLUMNS[0]] != SAMPLE_COLUMNS[0]]  # a repeated header (a part reopened) is not a sample
    return sample_format.normalise(df.replace("", float("nan")))


def merge_samples(parts_dir: Path, dest: Path, remove_parts: bool = True) -> dict:
    """Merge requests.part-*.csv.gz under parts_dir into dest (sorted by intended time);
    atomic write. Returns {part file name: rows} (one entry per Locust process that ran users).
    """
    parts = sorted(Path(parts_dir).glob("requests.part-*.csv.gz"))
    frames = [read_part(p) for p in parts]
    counts = {p.name: len(f) for p, f in zip(parts, frames)}
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else sample_format.empty_samples()
    df = sample_format.normalise(df).sort_values("intended", kind="mergesort").reset_index(drop=True)
    write_atomic(dest, lambda tmp: df.to_csv(tmp, index=False,
                                              compression={"method": "gzip", "compresslevel": 6}))
    if remove_parts:
        for p in parts:
            p.unlink(missing_ok=True)
    return counts


def merge_schedules(parts_dir: Path, dest: Path) -> list:
    """Merge schedule.part-*.json (each process's users and phases) into dest; returns the users."""
    users = []
    for part in sorted(Path(parts_dir).glob("schedule.part-*.json")):
        try:
            info = read_json(part)
            users += [{**u, "pid": info.get("pid"), "origin": info.get("origin")} for u in info.get("users", [])]
        except (OSError, ValueError):
            pass
        part.unlink(missing_ok=True)
    users.sort(key=lambda u: (u.get("user", ""), u.get("slot", 0)))
    write_json_atomic(dest, {"users": users})
    return users


class _LiveTail:
    """Follows the part files while Locust writes them, for live requests/s and p95."""

    WINDOW_S = 3.0

    def __init__(self, directory: Path):
        self.directory = directory
        self.pos: dict[Path, int] = {}
        self.recent: list[tuple[float, float, int]] = []  # (end time, latency_ms, ok)
        self.total = 0
        self.failures = 0

    def poll(self) -> None:
        for path in self.directory.glob("requests.part-*.csv.gz"):
            pos = self.pos.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(pos)
                    data = fh.read()
            except OSError:
                continue
            text, used = _decode_members(data)
            self.pos[path] = pos + used
            for line in text.splitlines():
                fields = line.split(",")
                if len(fields) != len(SAMPLE_COLUMNS) or fields[0] == SAMPLE_COLUMNS[0]:
                    continue
                try:  # unsent rows (empty start) are skipped by the ValueError
                    start, lat, ok = float(fields[1]), float(fields[3]), int(fields[4])
                except ValueError:
                    continue
                self.recent.append((start + lat / 1000.0, lat, ok))
                self.total += 1
                self.failures += 1 - ok

    def figures(self, now: float) -> dict:
        # rows arrive up to ~1 s late (the locustfile flushes once a second): look at a
        # window ending 1 s ago so the rate is not biased low.
        hi = now - 1.0
        lo = hi - self.WINDOW_S
        self.recent = [r for r in self.recent if r[0] >= lo]
        window = [r for r in self.recent if r[0] <= hi]
        lats = sorted(r[1] for r in window)
        p95 = lats[min(len(lats) - 1, int(math.ceil(0.95 * len(lats))) - 1)] if lats else None
        return {"rps": len(window) / self.WINDOW_S, "p95_ms": p95,
                "requests": self.total, "failures": self.failures}


# ---------------------------------------------------------------------------
# process watching
# ---------------------------------------------------------------------------
class _ProcWatch:
    """CPU accounting for the Locust process tree (psutil), sampled about once a second."""

    def __init__(self, pid: int):
        self.root = pid
        self.procs: dict[int, psutil.Process] = {}
        self.cpu: dict[int, float] = {}
        self.peak_percent = 0.0
        self.hot_streak: dict[int, int] = {}
        self.hot = False
        self._last_sample = 0.0
        self.history: list[tuple[float, float]] = []  # (epoch s, CPU seconds of every process)
        try:
            self.procs[pid] = psutil.Process(pid)
        except psutil.Error:
            pass

    def pids(self) -> list[int]:
        return list(self.procs)

    def sample(self, force=False, count_peaks=True) -> None:
        now = time.monotonic()
        if not force and now - self._last_sample < 1.0:
            return
        first = self._last_sample == 0.0
        self._last_sample = now
        root = self.procs.get(self.root)
        if root is not None:
            try:
                for child in root.children(recursive=True):
                    if child.pid not in self.procs:
                        self.procs[child.pid] = child
                        child.cpu_percent(None)  # prime
            except psutil.Error:
                pass
        for pid, proc in list(self.procs.items()):
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    pct = proc.cpu_percent(None)
            except psutil.Error:
                continue
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), t.user + t.system)
            if not count_peaks or (first and pid == self.root):
                continue
            self.peak_percent = max(self.peak_percent, pct)
            streak = self.hot_streak.get(pid, 0) + 1 if pct >= CPU_BOTTLENECK_PERCENT else 0
            self.hot_streak[pid] = streak
            if streak >= 2:  # two consecutive seconds near a full core
                self.hot = True
        self.history.append((time.time(), self.cpu_seconds()))

    def cpu_between(self, start: float, end: float) -> float | None:
        """CPU seconds the processes used in [start, end], interpolated between samples."""
        if len(self.history) < 2 or end <= start:
            return None
        ts = [t for t, _ in self.history]
        if ts[0] > start + 1.5 or ts[-1] < end - 1.5:
            return None  # not sampled across the window
        cpu = [c for _, c in self.history]
        return float(np.interp(end, ts, cpu) - np.interp(start, ts, cpu))

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def alive_pids(self) -> list[int]:
        alive = []
        for pid, proc in self.procs.items():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.Error:
                pass
        return alive


def _signal_pids(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _read_json(path: Path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _die_with_parent() -> None:
    """preexec_fn: Locust gets SIGKILL when the process that ran run_load dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _tail_text(path: Path, lines=8) -> str:
    try:
        text = [l for l in path.read_text(errors="replace").strip().splitlines() if not l.startswith("# ")]
        return " | ".join(text[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def build_command(target, locust_dir: Path, spec: LoadSpec, phase_seed: int = PHASE_SEED) -> list[str]:
    """The Locust command line. The users' schedules end ``spec.run_time_s`` after the test
    start; Locust's run time (-t) ends just after, and ``--stop-timeout`` (longer than a
    request can take) lets the users await their in-flight requests: the cool-down.
    The locustfile reads every edgebench value from these options (and only from them)."""
    users = spec.users
    schedule_s = spec.run_time_s
    run_time_s = max(1, math.ceil(schedule_s))
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           # spawn everyone at once: the schedule's phases, not the spawn order, set the send times
           "-H", target.rstrip("/"), "-u", str(users), "-r", str(max(100, users)), "-t", f"{run_time_s}s",
           "--stop-timeout", str(math.ceil(spec.request_timeout) + 3),
           "--csv", str(locust_dir / "locust"), "--html", str(locust_dir / "report.html"),
           "--only-summary", "--exit-code-on-error", "1",
           "--scrapers", str(spec.scrapers), "--scrape-rate", repr(float(spec.scrape_rate or 1.0)),
           "--sensor-users", str(spec.sensor_users), "--sensor-rate", repr(float(spec.sensor_rate or 1.0)),
           "--request-timeout", repr(float(spec.request_timeout)), "--samples-dir", str(locust_dir),
           "--schedule-s", repr(float(schedule_s)), "--phase-seed", str(int(phase_seed)),
           "--load-processes", str(max(1, spec.workers))]
    if spec.workers > 0:
        # Locust's own master + forked workers (the master waits for all of them), on a port
        # of its own: Locust's default 5557 is shared by every run on the machine
        port = free_port()
        cmd += ["--processes", str(spec.workers), "--master-bind-port", str(port), "--master-port", str(port)]
    classes = [c for c, n in (("ScraperUser", spec.scrapers), ("SensorUser", spec.sensor_users)) if n > 0]
    return cmd + classes


@dataclass
class _Paths:
    """Where one run writes (the layout in this module's docstring)."""

    out_dir: Path

    @property
    def locust_dir(self) -> Path:
        return self.out_dir / "locust"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "logs" / "locust.log"

    @property
    def requests_csv(self) -> Path:
        return self.out_dir / "requests.csv.gz"


@dataclass
class _Watched:
    """What watching Locust run left behind: when the test started, how it ended."""

    started_at: float | None = None
    stop_sent_at: float | None = None   # Locust was stopped for not starting in time
    rusage_cpu: float = 0.0
    interrupted: bool = False
    raise_after: BaseException | None = None   # Ctrl-C (or another exception), re-raised at the end
    ended_at: float = 0.0


def run_load(target: str, out_dir: Path, spec: LoadSpec,
             on_progress: Callable[[dict], None] | None = None, check: bool = True) -> LoadResult:
    """Run Locust headless against ``target`` for ``spec.warmup_s + spec.duration_s`` seconds.

    ``spec`` was checked where the user set it (:func:`loadtests.spec.check_load`) and is
    not checked again. ``on_progress(dict)`` is called about once a second with
    ``elapsed``, ``remaining``, ``phase`` (starting/warmup/steady/stopping), ``rps``,
    ``p95_ms``, ``requests``, ``failures``.

    Raises LoadError for an output path that is a file, an unreachable target or a
    Locust that does not start. On Ctrl-C, Locust is stopped, the samples written so far
    are merged and KeyboardInterrupt is re-raised with ``.load_result`` attached.
    """
    paths = _prepare(target, Path(out_dir), check)
    cmd = build_command(target, paths.locust_dir, spec)
    start_timeout = _start_timeout()
    proc = _launch(cmd, paths.log_path)
    watch = _ProcWatch(proc.pid)
    run = _watch(proc, watch, paths.locust_dir, spec, start_timeout, on_progress)
    parts = merge_samples(paths.locust_dir, paths.requests_csv)
    schedule = merge_schedules(paths.locust_dir, paths.locust_dir / "schedule.json")
    if run.started_at is None and run.raise_after is None:
        _raise_not_started(proc, run, start_timeout, paths.log_path)
    result = _collect(target, paths, spec, proc, watch, run, parts, schedule, cmd)
    write_json_atomic(paths.locust_dir / "load_result.json", result.to_dict())
    if run.raise_after is not None:
        try:
            run.raise_after.load_result = result
        except Exception:
            pass
        raise run.raise_after
    _check_ended_on_time(proc, result, paths)
    return result


def _prepare(target: str, out_dir: Path, check: bool) -> _Paths:
    """Refuse what cannot run before anything starts; make the folders, drop stale parts."""
    if out_dir.exists() and not out_dir.is_dir():
        raise LoadError(f"load output {out_dir} is a file, not a directory: pass a directory path")
    if check:
        check_target(target)
    paths = _Paths(out_dir)
    paths.locust_dir.mkdir(parents=True, exist_ok=True)
    paths.log_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (list(paths.locust_dir.glob("requests.part-*.csv.gz"))
                  + list(paths.locust_dir.glob("schedule.part-*.json"))
                  + [paths.locust_dir / "test_start.json"]):
        stale.unlink(missing_ok=True)
    return paths


def _launch(cmd: list[str], log_path: Path) -> subprocess.Popen:
    """Locust in its own session (a terminal's Ctrl-C reaches only us), dying with us."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]))
    env.pop("LOCUST_LOCUSTFILE", None)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        log.write(f"# {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(PACKAGE_ROOT), env=env, start_new_session=True,
                                preexec_fn=_die_with_parent)


def _watch(proc: subprocess.Popen, watch: _ProcWatch, locust_dir: Path, spec: LoadSpec,
           start_timeout: float, on_progress) -> _Watched:
    """Follow Locust until it exits: its start, its CPU, live progress; stop it on Ctrl-C
    or when it does not start in time. Nothing it started outlives this call."""
    run = _Watched()
    launched = time.time()
    tail = _LiveTail(locust_dir)
    progress_error = False
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                run.rusage_cpu = rusage.ru_utime + rusage.ru_stime
                break
            now = time.time()
            # start-up (imports, forks, connecting workers) is not load: judge the load
            # generator's CPU from the steady phase on
            watch.sample(count_peaks=run.started_at is not None and now >= run.started_at + spec.warmup_s)
            if run.started_at is None:
                info = _read_json(locust_dir / "test_start.json")
                if info:
                    run.started_at = float(info["test_start"])
                elif now - launched > start_timeout and run.stop_sent_at is None:
                    _signal_pids([proc.pid], signal.SIGINT)
                    run.stop_sent_at = now
            if run.stop_sent_at is not None and now - run.stop_sent_at > STOP_GRACE_S:
                _signal_pids(watch.alive_pids(), signal.SIGKILL)
            if on_progress is not None and not progress_error:
                tail.poll()
                try:
                    on_progress(_progress(now, run.started_at, spec.warmup_s, spec.duration_s, tail))
                except Exception as exc:  # a broken display must not break the measurement
                    progress_error = True
                    print(f"edgebench: progress callback failed, disabled: {exc}", file=sys.stderr)
            _sleep_until_tick(proc.pid)
    except BaseException:
        run.interrupted = True
        run.rusage_cpu = max(run.rusage_cpu, _stop(proc, watch))
        run.raise_after = sys.exc_info()[1]
    finally:
        # whatever happened, nothing we started may outlive us
        leftovers = watch.alive_pids()
        if leftovers:
            _signal_pids(leftovers, signal.SIGKILL)
    run.ended_at = time.time()
    return run


def _raise_not_started(proc: subprocess.Popen, run: _Watched, start_timeout: float, log_path: Path) -> None:
    if run.stop_sent_at is not None:
        raise LoadError(f"locust did not start the test within {start_timeout:g} s and was stopped "
                        f"(log {log_path}): on a slow machine set {START_TIMEOUT_ENV} to more seconds")
    raise LoadError(f"locust exited with code {proc.returncode} before the test started "
                    f"(log {log_path}): {_tail_text(log_path)}")


def _loadgen_warning(log_path: Path) -> str:
    """Locust's own CPU warning line, if it logged one."""
    try:
        log_text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return next((line.strip() for line in log_text.splitlines()
                 if any(w in line for w in LOCUST_CPU_WARNINGS)), "")


def _collect(target: str, paths: _Paths, spec: LoadSpec, proc: subprocess.Popen, watch: _ProcWatch,
             run: _Watched, parts: dict, schedule: list, cmd: list[str]) -> LoadResult:
    """The LoadResult: the steady window, the samples' tallies, the load generator's cost."""
    samples = sum(parts.values())
    warning = _loadgen_warning(paths.log_path)
    ended_at = run.ended_at
    start = run.started_at if run.started_at is not None else ended_at
    steady_start = start + spec.warmup_s
    steady_end = min(steady_start + spec.duration_s, ended_at) if run.interrupted else steady_start + spec.duration_s
    steady_end = max(steady_start, steady_end)
    df = sample_format.read_samples(paths.requests_csv) if samples else sample_format.empty_samples()
    window = sample_format.steady(df, steady_start, steady_end)
    sent = df[df["sent"] == 1]
    failures = int((sent["ok"] == 0).sum())
    codes = {str(k): int(v) for k, v in sent["status_code"].value_counts().sort_index().items()}
    steady_cpu = watch.cpu_between(steady_start, steady_end)
    steady_sent = int(((sent["start"] >= steady_start) & (sent["start"] < steady_end)).sum())
    cpu_per_request = round(steady_cpu / steady_sent, 7) if steady_cpu is not None and steady_sent else None
    return LoadResult(
        target=target.rstrip("/"), out_dir=paths.out_dir, requests_csv=paths.requests_csv,
        locust_dir=paths.locust_dir, log_path=paths.log_path, started_at=start, steady_start=steady_start,
        steady_end=steady_end, ended_at=ended_at, warmup_s=float(spec.warmup_s),
        duration_s=float(spec.duration_s), samples=samples, steady_samples=len(window), failures=failures,
        status_codes=codes, parts=parts,
        loadgen_cpu_seconds=round(max(watch.cpu_seconds(), run.rusage_cpu), 3),
        loadgen_cpu_s_per_request=cpu_per_request,
        loadgen_peak_cpu_percent=round(watch.peak_percent, 1),
        loadgen_bottleneck=bool(warning) or watch.hot, loadgen_warning=warning,
        exit_code=proc.returncode, interrupted=run.interrupted,
        spec=spec, phase_seed=PHASE_SEED, schedule=schedule, pids=sorted(watch.pids()), command=cmd)


def _check_ended_on_time(proc: subprocess.Popen, result: LoadResult, paths: _Paths) -> None:
    """A Locust killed, or ended well before the steady window's end, is an error."""
    killed = proc.returncode is not None and proc.returncode < 0
    if killed or result.ended_at < result.steady_end - EARLY_END_TOLERANCE_S:
        how = f"was killed by {signal.Signals(-proc.returncode).name}" if killed else \
            f"exited with code {proc.returncode}"
        raise LoadError(f"locust {how} before the load ended ({result.ended_at - result.steady_end:+.1f} s from "
                        f"the end of the steady window): what it sent is kept in {paths.requests_csv}; "
                        f"see {paths.log_path}")


def _sleep_until_tick(pid: int, tick=1.0) -> None:
    """Sleep up to `tick` seconds, waking early if the child exits."""
    deadline = time.monotonic() + tick
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        time.sleep(0.05)


def _start_timeout() -> float:
    """Seconds Locust may take from launch to the test's start: $EDGEBENCH_LOAD_START_TIMEOUT_S or 30."""
    text = os.environ.get(START_TIMEOUT_ENV)
    return START_TIMEOUT_S if text is None else float(number(
        text, START_TIMEOUT_ENV, above=0, unit="s", what="a number of seconds",
        fix=f"e.g. {START_TIMEOUT_ENV}=300", error=LoadError))


def _progress(now, started_at, warmup_s, duration_s, tail: _LiveTail) -> dict:
    figures = tail.figures(now)
    if started_at is None:
        return {"elapsed": 0.0, "remaining": float(warmup_s + duration_s), "phase": "starting", **figures}
    elapsed = now - started_at
    if elapsed < warmup_s:
        phase = "warmup"
    elif elapsed < warmup_s + duration_s:
        phase = "steady"
    else:
        phase = "stopping"
    return {"elapsed": round(elapsed, 2), "remaining": round(max(0.0, warmup_s + duration_s - elapsed), 2),
            "phase": phase, **figures}


def _stop(proc: subprocess.Popen, watch: _ProcWatch) -> float:
    """SIGINT the master (it stops its workers and writes its reports), then SIGTERM,
    then SIGKILL everything that is left. Returns the rusage CPU seconds of the master."""
    watch.sample(force=True)
    steps = [(signal.SIGINT, [proc.pid], STOP_GRACE_S * 0.6), (signal.SIGTERM, None, STOP_GRACE_S * 0.4),
             (signal.SIGKILL, None, 2.0)]
    # a second Ctrl-C while we stop must not leave Locust running: ignore it meanwhile
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        for sig, pids, grace in steps:
            _signal_pids(pids if pids is not None else watch.alive_pids() or [proc.pid], sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status, rusage = proc.pid, 0, None
                if pid:
                    if rusage is not None:
                        proc.returncode = os.waitstatus_to_exitcode(status)
                    elif proc.returncode is None:
                        proc.returncode = -1
                    # the master is gone; give its workers a moment, then stop them too
                    _wait_gone(watch, 2.0)
                    _signal_pids(watch.alive_pids(), signal.SIGKILL)
                    return (rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0
                watch.sample()
                time.sleep(0.05)
        return 0.0
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _wait_gone(watch: _ProcWatch, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while watch.alive_pids() and time.monotonic() < deadline:
        time.sleep(0.05)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
