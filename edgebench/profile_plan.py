"""`make profile`: py-spy, memory-profiler and tracemalloc attached to the running
service from outside its cgroup, for the steady phase of each scenario."""
from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path

from edgebench.fileio import write_json_atomic


class Profilers:
    """The profilers of one scenario; stop() is safe to call twice and never raises."""

    def __init__(self, state_dir: Path, sdir: Path, warmup_s: float, tracemalloc: bool):
        from profiling.sampler import pid_getter
        self.profile_dir = sdir / "profile"
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_dir / "state.json"
        self.get_pid = pid_getter(self.state_file, "sensor-service")
        self.warmup_s = warmup_s
        self.tracemalloc = tracemalloc
        self.errors: list[str] = []
        self.pyspy = None
        self.mprof = None
        self._snap_timer: threading.Timer | None = None
        self._start_snapshot: Path | None = None
        self._stopped = False

    def _service_url(self) -> str | None:
        from profiling.sampler import load_state
        state = load_state(self.state_file) or {}
        return (state.get("services", {}).get("sensor-service") or {}).get("url")

    def start(self) -> "Profilers":
        from profiling import ProfilerError
        from profiling.memory import MprofRecorder
        from profiling.pyspy import PySpyRecorder
        try:
            self.pyspy = PySpyRecorder(self.get_pid, self.profile_dir).start()
        except ProfilerError as e:
            self._error(f"py-spy: {e}")
        try:
            self.mprof = MprofRecorder(self.get_pid, self.profile_dir / "memory.dat").start()
        except ProfilerError as e:
            self._error(f"memory-profiler: {e}")
        if self.tracemalloc:  # the first snapshot when the steady phase begins
            self._snap_timer = threading.Timer(self.warmup_s, self._snapshot_start)
            self._snap_timer.daemon = True
            self._snap_timer.start()
        return self

    def _error(self, line: str) -> None:
        self.errors.append(line)
        print(f"edgebench profile: {line}")

    def _snapshot(self, name: str, at_next_scrape: bool = False) -> Path | None:
        from profiling import ProfilerError
        from profiling.memory import take_snapshot
        url = self._service_url()
        if not url:
            self._error(f"tracemalloc: no service url in {self.state_file}")
            return None
        try:
            return take_snapshot(url, self.profile_dir / name, timeout=15,
                                 at_next_scrape=at_next_scrape)
        except ProfilerError as e:
            self._error(f"tracemalloc: {e}")
            return None

    def _snapshot_start(self) -> None:
        self._start_snapshot = self._snapshot("tracemalloc-start.snap")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._snap_timer:
            self._snap_timer.cancel()
            self._snap_timer.join()
        if self.tracemalloc and self._start_snapshot:
            # at the peak of a scrape: what a scrape holds, plus everything retained
            end = self._snapshot("tracemalloc-end.snap", at_next_scrape=True)
            if end:
                from profiling.memory import allocation_growth, top_allocations
                try:
                    allocation_growth(self._start_snapshot, end, out_dir=self.profile_dir)
                    top_allocations(end, out_dir=self.profile_dir)
                except Exception as e:  # noqa: BLE001 - keep the rest of the profile
                    self._error(f"tracemalloc: comparing snapshots failed: {type(e).__name__}: {e}")
        elif self.tracemalloc:
            self._error("tracemalloc: no snapshot at the start of the steady phase")
        for name, rec in (("py-spy", self.pyspy), ("memory-profiler", self.mprof)):
            if rec is None:
                continue
            try:
                meta = rec.stop()
                for err in (meta or {}).get("errors", []) if isinstance(meta, dict) else []:
                    self._error(f"{name}: {err}")
            except Exception as e:  # noqa: BLE001
                self._error(f"{name}: stopping failed: {type(e).__name__}: {e}")
        for snap in self.profile_dir.glob("tracemalloc-*.snap"):
            snap.unlink()  # large, and only loadable by the same Python: the CSVs keep what matters
        write_json_atomic(self.profile_dir / "profile_meta.json",
                          {"errors": self.errors, "tracemalloc": self.tracemalloc,
                           "pids": getattr(self.pyspy, "meta", {}).get("pids") if self.pyspy else None,
                           "stopped_at": time.time()})


def start_profilers(stack: ExitStack, params, state_dir: Path, sdir: Path) -> Profilers:
    profilers = Profilers(state_dir, sdir, params.warmup_s, params.tracemalloc).start()
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


def profile_diff(run, params, commit: str, inject: dict) -> str:
    """The gate's explanation of a CPU regression: one more side-by-side round of A and B
    with py-spy attached (no tracemalloc), then the top-function diff A -> B."""
    import dataclasses

    from edgebench.gate_plan import _measure_rounds
    from edgebench.gitref import worktree
    from profiling.top_functions import write_diff

    p = dataclasses.replace(params, profile=True, tracemalloc=False)
    sub = run.path / "explain"
    sub.mkdir(exist_ok=True)

    class _Run:
        path = sub
    a_dirs, b_dirs, errors = [], [], []
    with worktree(commit) as ref_dir:
        _measure_rounds(_Run, p, 1, ref_dir, inject, a_dirs, b_dirs, errors)
    if errors:
        raise RuntimeError("; ".join(errors))
    before = a_dirs[0] / "profile" / "top_functions.csv"
    after = b_dirs[0] / "profile" / "top_functions.csv"
    out = run.path / "top_functions_diff.csv"
    df = write_diff(before, after, out)
    grew = df[df["status"].isin(["new", "grew"])].head(3) if "status" in df else df.head(3)
    where = ", ".join(f"{r.function} ({r.file}, {r.delta_self_pct:+.1f} pts of samples)"
                      for r in grew.itertuples()) or "no single function stands out"
    return f"where the CPU went (py-spy, A -> B): {where}; see {out.name}"
