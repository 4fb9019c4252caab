"""`make profile`: py-spy, memory-profiler and tracemalloc attached to the running
service from outside its cgroup, for the steady phase of each scenario."""
from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path

from plumbing.files import write_json_atomic

CAPTURE_TIMEOUT_S = 30.0  # a traced baseline scrape takes several seconds at 0.5 CPU


class Profilers:
    """The profilers of one scenario; stop() is safe to call twice and never raises.

    tracemalloc: the first /metrics scrape of the warm-up is captured (peak + after
    snapshots). Tracing makes that one scrape seconds slower, so it belongs to the
    warm-up, which no figure uses; stop() waits for it and writes the CSVs.
    """

    def __init__(self, state_dir: Path, sdir: Path, warmup_s: float, tracemalloc: bool,
                 duration_s: float = 0.0, pyspy_rate: int = 100):
        from profiling.sampler import pid_getter
        self.profile_dir = sdir / "profile"
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_dir / "state.json"
        self.get_pid = pid_getter(self.state_file, "sensor-service")
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.tracemalloc = tracemalloc
        self.pyspy_rate = pyspy_rate
        self.errors: list[str] = []
        self.pyspy = None
        self.mprof = None
        self._capture_timer: threading.Timer | None = None
        self._capture_started = threading.Event()
        self._capture: tuple[Path, Path] | None = None
        self._stopped = False

    def _service_url(self) -> str | None:
        from stack.state import read_state
        state = read_state(self.state_file.parent)
        svc = state.services.get("sensor-service") if state else None
        return svc.url if svc else None

    def start(self) -> "Profilers":
        from profiling import ProfilerError
        from profiling.memory import MprofRecorder
        from profiling.pyspy import PySpyRecorder
        try:
            self.pyspy = PySpyRecorder(self.get_pid, self.profile_dir, rate=self.pyspy_rate).start()
        except ProfilerError as e:
            self._error(f"py-spy: {e}")
        try:
            self.mprof = MprofRecorder(self.get_pid, self.profile_dir / "memory.dat").start()
        except ProfilerError as e:
            self._error(f"memory-profiler: {e}")
        if self.tracemalloc:  # armed now: the warm-up's first scrape takes it
            self._capture_timer = threading.Timer(0.0, self._capture_scrape)
            self._capture_timer.daemon = True
            self._capture_timer.start()
        return self

    def _error(self, line: str) -> None:
        self.errors.append(line)
        print(f"edgebench profile: {line}")

    def _capture_scrape(self) -> None:
        """Timer thread: arm the capture and wait for the scrape that writes it."""
        from profiling import ProfilerError
        from profiling.memory import capture_scrape_allocations
        self._capture_started.set()
        from profiling.memory import capture_scrape_allocations_in_container
        from stack.state import read_state
        url = self._service_url()
        if not url:
            self._error(f"tracemalloc: no service url in {self.state_file}")
            return
        state = read_state(self.state_file.parent)
        svc = state.services["sensor-service"] if state else None
        try:
            if state and state.engine == "docker":  # from inside the container, copied out
                self._capture = capture_scrape_allocations_in_container(
                    svc.container_id, svc.container_port, self.profile_dir, timeout=CAPTURE_TIMEOUT_S)
            else:
                self._capture = capture_scrape_allocations(url, self.profile_dir,
                                                           timeout=CAPTURE_TIMEOUT_S)
        except ProfilerError as e:
            self._error(f"tracemalloc: {e}")

    def _finish_capture(self) -> None:
        timer = self._capture_timer
        if timer is None:
            return
        timer.cancel()
        if not self._capture_started.is_set():
            self._error("tracemalloc: the run ended before the scrape capture was armed")
            return
        timer.join(CAPTURE_TIMEOUT_S + 10)
        if timer.is_alive():
            self._error("tracemalloc: the scrape capture did not finish; fix: check the service log")
            return
        if self._capture:
            from profiling.memory import scrape_allocation_sites
            try:
                scrape_allocation_sites(*self._capture, out_dir=self.profile_dir)
            except Exception as e:  # noqa: BLE001 - keep the rest of the profile
                self._error(f"tracemalloc: reading the scrape snapshots failed: "
                            f"{type(e).__name__}: {e}")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._finish_capture()
        for name, rec in (("py-spy", self.pyspy), ("memory-profiler", self.mprof)):
            if rec is None:
                continue
            try:
                meta = rec.stop()
                for err in (meta or {}).get("errors", []) if isinstance(meta, dict) else []:
                    self._error(f"{name}: {err}")
            except Exception as e:  # noqa: BLE001
                self._error(f"{name}: stopping failed: {type(e).__name__}: {e}")
        for snap in self.profile_dir.glob("tracemalloc-*.snap*"):
            snap.unlink()  # only loadable by the same Python: the CSVs keep what matters
        write_json_atomic(self.profile_dir / "profile_meta.json",
                          {"errors": self.errors, "tracemalloc": self.tracemalloc,
                           "pids": getattr(self.pyspy, "meta", {}).get("pids") if self.pyspy else None,
                           "stopped_at": time.time()})


def start_profilers(stack: ExitStack, params, state_dir: Path, sdir: Path) -> Profilers:
    profilers = Profilers(state_dir, sdir, params.warmup_s, params.tracemalloc,
                          duration_s=params.duration_s, pyspy_rate=params.pyspy_rate).start()
    stack.callback(profilers.stop)   # stopped on error and Ctrl-C too
    return profilers


def compare_variants(run_path: Path) -> Path | None:
    """Top functions before/after: baseline-vm's profile against optimized-vm's."""
    from profiling.top_functions import write_diff
    before = run_path / "baseline-vm" / "profile" / "top_functions.csv"
    after = run_path / "optimized-vm" / "profile" / "top_functions.csv"
    if not (before.exists() and after.exists()):
        return None
    out = run_path / "optimized-vm" / "profile" / "top_functions_diff.csv"
    write_diff(before, after, out)
    return out
