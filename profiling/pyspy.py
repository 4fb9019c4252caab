"""py-spy CPU profiles of a running service, following it across restarts.

``PySpyRecorder(get_pid, out_dir)`` watches ``get_pid()`` (usually
``sampler.pid_getter(state_file, "sensor-service")``) and, for every new pid it
sees, starts ``py-spy record --nonblocking`` once per output format. py-spy can
write one format per process, so the formats are recorded *concurrently* by
separate py-spy processes on the same pid (each one is a read-only sampler,
~3% of a core at 100 Hz, running outside the service's cgroup; ``--nonblocking``
never pauses the service). When a pid goes away (OOM kill, restart) its py-spy
processes write their files and exit; on ``stop()`` the remaining ones get SIGINT
and write theirs. The per-pid outputs are then merged into ``out_dir``:

- ``collapsed.txt``  py-spy ``--format raw`` (collapsed stacks), all pids summed
- ``speedscope.json`` py-spy ``--format speedscope``, one profile per pid/thread
- ``flamegraph.svg`` py-spy ``--format flamegraph`` of the pid with most samples
  (the others stay as ``pyspy/flamegraph-<pid>.svg``; with one pid it is the whole run)
- ``top_functions.csv`` from collapsed.txt (see ``top_functions``)
- ``pyspy_meta.json`` pids covered, sample counts per pid and format, options, errors

Sampling options: default line numbers (``function (file:line)``, the current line),
no ``--idle`` (idle threads are dropped, so samples are on-CPU work) and no
``--gil`` (that would also drop on-CPU time in C code that released the GIL, e.g.
compression or hashing, which we want to see).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from plumbing.files import write_atomic
from plumbing.process import preexec_die_with_parent, proc_start_time

from .errors import ProfilerError
from .recorder import BackgroundRecorder
from .top_functions import format_collapsed, merge_stacks, parse_collapsed, write_top_functions

FORMATS = ("raw", "speedscope", "flamegraph")
_EXT = {"raw": "txt", "speedscope": "json", "flamegraph": "svg", "chrometrace": "json"}


def find_pyspy() -> str:
    """Path of the py-spy binary (the virtual environment's first), or ProfilerError."""
    cand = Path(sys.executable).parent / "py-spy"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    found = shutil.which("py-spy")
    if found:
        return found
    raise ProfilerError("py-spy not found: it is not in the virtual environment or on PATH; "
                        "fix: `.venv/bin/pip install py-spy` (make venv installs it)")


def explain_failure(pid: int, output: str) -> str:
    """One line naming the cause and the fix of a py-spy that could not attach."""
    low = output.lower()
    if "permission denied" in low or "operation not permitted" in low or "ptrace" in low:
        return (f"py-spy cannot attach to pid {pid}: ptrace not permitted; fix: run as root, or "
                f"`sysctl kernel.yama.ptrace_scope=0`, or with docker add `cap_add: [SYS_PTRACE]`")
    if ("no such process" in low or "failed to open process" in low or "is running" in low
            or "process not found" in low):
        return f"py-spy cannot attach to pid {pid}: the process is gone; fix: none needed if it was restarted"
    if "python" in low and ("failed to find" in low or "version" in low):
        return (f"py-spy cannot profile pid {pid}: not a Python process py-spy understands; "
                f"fix: point get_pid at the python process of the service")
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return f"py-spy failed on pid {pid}: {last}"


def _samples_from_log(text: str) -> int | None:
    import re
    m = re.findall(r"Samples:\s*(\d+)", text)
    return int(m[-1]) if m else None


class _Attachment:
    def __init__(self, pid: int, start_time, out_dir: Path, formats, cmd_base: list[str]):
        self.pid = pid
        self.start_time = start_time
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.paths: dict[str, Path] = {}
        self.logs: dict[str, Path] = {}
        self.reported: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.cmd_base = cmd_base
        for fmt in formats:
            self.paths[fmt] = out_dir / f"{'collapsed' if fmt == 'raw' else fmt}-{pid}.{_EXT[fmt]}"
            self.logs[fmt] = out_dir / f"pyspy-{pid}-{fmt}.log"
            self.spawn(fmt)

    def spawn(self, fmt: str) -> None:
        self.attempts[fmt] = self.attempts.get(fmt, 0) + 1
        with open(self.logs[fmt], "ab") as lf:
            self.procs[fmt] = subprocess.Popen(
                self.cmd_base + ["-p", str(self.pid), "-f", fmt, "-o", str(self.paths[fmt])],
                stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal is ours to forward
                # if the orchestrator dies (SIGKILL included), py-spy gets SIGINT: it writes
                # what it recorded and exits instead of outliving us
                preexec_fn=preexec_die_with_parent(signal.SIGINT))

    def target_alive(self) -> bool:
        return proc_start_time(self.pid) == self.start_time

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs.values())

    def stop(self, timeout: float = 15.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.ended_at is None:
            self.ended_at = time.time()


class PySpyRecorder(BackgroundRecorder):
    """Record py-spy profiles of whatever pid ``get_pid()`` returns, across restarts.

    ``start()`` raises ProfilerError when py-spy is missing; failures to attach to a
    pid are logged as one-line warnings and listed under ``errors`` in pyspy_meta.json,
    and the run continues.
    """

    thread_name = "edgebench-pyspy"

    def __init__(self, get_pid: Callable[[], int | None], out_dir: str | os.PathLike,
                 rate: int = 100, formats: Iterable[str] = FORMATS, poll_s: float = 0.5,
                 subprocesses: bool = False, extra_args: Iterable[str] = ()):
        super().__init__()
        self.get_pid = get_pid
        self.out_dir = Path(out_dir)
        self.work_dir = self.out_dir / "pyspy"
        self.rate = int(rate)
        self.formats = tuple(formats)
        bad = [f for f in self.formats if f not in _EXT]
        if bad or "raw" not in self.formats:
            raise ValueError(f"formats must include 'raw' and be among {sorted(_EXT)}: {self.formats}")
        self.poll_s = poll_s
        self.max_attempts = 3
        self.subprocesses = subprocesses
        self.extra_args = list(extra_args)
        self.attachments: list[_Attachment] = []
        self._lock = threading.Lock()
        self.started_at: float | None = None
        self.meta: dict | None = None

    def command(self) -> list[str]:
        cmd = [find_pyspy(), "record", "--nonblocking", "-r", str(self.rate)]
        if self.subprocesses:
            cmd.append("--subprocesses")
        return cmd + self.extra_args

    def start(self) -> "PySpyRecorder":
        self._cmd = self.command()  # raises ProfilerError if py-spy is missing
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        self._poll()
        self._start_thread()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._poll()
            except Exception as e:  # never kill the run
                self._note(f"py-spy watcher error: {type(e).__name__}: {e}")

    def _poll(self) -> None:
        with self._lock:
            for a in self.attachments:
                if a.ended_at is None and not a.alive():
                    a.ended_at = time.time()
                for fmt, p in list(a.procs.items()):
                    rc = p.poll()
                    # a pid that died under the profiler is a restart, not a failure: it wrote its file
                    if rc in (None, 0) or fmt in a.reported or a.paths[fmt].exists():
                        continue
                    if a.target_alive() and a.attempts[fmt] < self.max_attempts and not self._stop.is_set():
                        a.spawn(fmt)  # e.g. attached while the interpreter was still starting
                        a.ended_at = None
                        continue
                    a.reported.add(fmt)
                    text = a.logs[fmt].read_text(errors="replace") if a.logs[fmt].exists() else ""
                    self._note(explain_failure(a.pid, text))
            try:
                pid = self.get_pid()
            except Exception as e:
                self._note(f"py-spy: get_pid failed: {type(e).__name__}: {e}")
                return
            if not pid or self._stop.is_set():
                return
            st = proc_start_time(pid)
            if st is None:
                return  # not (yet / any more) running
            if any(a.pid == pid and a.start_time == st for a in self.attachments):
                return
            self.attachments.append(_Attachment(pid, st, self.work_dir, self.formats, self._cmd))

    def stop(self) -> dict:
        """Stop all py-spy processes, merge their outputs, write pyspy_meta.json."""
        self._stop_thread(join_timeout=10)
        with self._lock:
            for a in self.attachments:
                a.stop()
        self._poll_errors_after_stop()
        self.meta = self._merge()
        return self.meta

    def _poll_errors_after_stop(self) -> None:
        for a in self.attachments:
            for fmt, p in a.procs.items():
                if fmt in a.reported:
                    continue
                if not a.paths[fmt].exists():
                    a.reported.add(fmt)
                    text = a.logs[fmt].read_text(errors="replace") if a.logs[fmt].exists() else ""
                    self._note(explain_failure(a.pid, text))

    # -- merging -----------------------------------------------------------
    def _merge(self) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        pids_meta = []
        stacks_parts = []
        speedscopes = []
        flamegraphs = []
        for a in self.attachments:
            pids_meta.append(self._read_attachment(a, stacks_parts, speedscopes, flamegraphs))
        stacks = merge_stacks(stacks_parts)
        outputs = self._write_merged(stacks_parts, stacks, speedscopes, flamegraphs)
        covered = [p for p in pids_meta if p["samples"]]
        meta = {
            "tool": "py-spy",
            "command": self._cmd_str(),
            "rate_hz": self.rate,
            "formats": list(self.formats),
            "options": {"nonblocking": True, "idle": False, "gil_only": False, "line_numbers": True,
                        "subprocesses": self.subprocesses},
            "started_at": self.started_at,
            "stopped_at": time.time(),
            "processes": len({(a.pid, a.start_time) for a in self.attachments}),
            "processes_with_samples": len(covered),
            "total_samples": sum(stacks.values()),
            "pids": pids_meta,
            "outputs": outputs,
            "errors": list(self.errors),
        }
        write_atomic(self.out_dir / "pyspy_meta.json", json.dumps(meta, indent=2))
        return meta

    def _read_attachment(self, a, stacks_parts: list, speedscopes: list, flamegraphs: list) -> dict:
        """One attached process's entry for the metadata; its outputs go onto the merge lists."""
        entry = {"pid": a.pid, "started_at": a.started_at, "ended_at": a.ended_at, "formats": {}}
        for fmt, path in a.paths.items():
            logtext = a.logs[fmt].read_text(errors="replace") if a.logs[fmt].exists() else ""
            info = {"file": str(path.relative_to(self.out_dir)) if path.exists() else None,
                    "returncode": a.procs[fmt].returncode, "attempts": a.attempts.get(fmt, 0),
                    "samples": _samples_from_log(logtext)}
            if path.exists():
                if fmt == "raw":
                    st = parse_collapsed(path.read_text(errors="replace"))
                    stacks_parts.append(st)
                    info["samples"] = sum(st.values())
                elif fmt == "speedscope":
                    try:
                        doc = json.loads(path.read_text())
                        speedscopes.append((a.pid, doc))
                        info["samples"] = sum(len(p.get("samples", [])) for p in doc.get("profiles", []))
                    except ValueError:
                        self._note(f"py-spy speedscope output unreadable: {path}")
                elif fmt == "flamegraph":
                    flamegraphs.append((info["samples"] or 0, a.pid, path))
            entry["formats"][fmt] = info
        entry["samples"] = entry["formats"].get("raw", {}).get("samples") or 0
        return entry

    def _write_merged(self, stacks_parts: list, stacks, speedscopes: list, flamegraphs: list) -> dict:
        """Write the merged collapsed stacks, speedscope and the busiest flamegraph; their names."""
        outputs = {}
        if stacks_parts:
            write_atomic(self.out_dir / "collapsed.txt", format_collapsed(stacks))
            outputs["collapsed"] = "collapsed.txt"
            if stacks:
                write_top_functions(self.out_dir / "collapsed.txt", self.out_dir / "top_functions.csv")
                outputs["top_functions"] = "top_functions.csv"
        if speedscopes:
            write_atomic(self.out_dir / "speedscope.json", json.dumps(merge_speedscope(speedscopes)))
            outputs["speedscope"] = "speedscope.json"
        if flamegraphs:
            flamegraphs.sort(key=lambda x: (-x[0], x[1]))
            best = flamegraphs[0][2]
            write_atomic(self.out_dir / "flamegraph.svg", lambda tmp: shutil.copyfile(best, tmp))
            outputs["flamegraph"] = "flamegraph.svg"
            outputs["flamegraph_pid"] = flamegraphs[0][1]
        return outputs

    def _cmd_str(self) -> str:
        cmd = getattr(self, "_cmd", None)
        return " ".join(cmd + ["-p", "<pid>", "-f", "<format>", "-o", "<file>"]) if cmd else ""


def merge_speedscope(docs: list[tuple[int, dict]]) -> dict:
    """Merge py-spy speedscope documents (one per pid) into one file with all their
    profiles, each named ``pid N: <thread>``; frame indices are remapped."""
    frames: list = []
    profiles: list = []
    for pid, doc in docs:
        off = len(frames)
        frames.extend((doc.get("shared") or {}).get("frames", []))
        for p in doc.get("profiles", []):
            q = dict(p)
            q["name"] = f"pid {pid}: {p.get('name', '')}"
            if p.get("type") == "sampled":
                q["samples"] = [[i + off for i in s] for s in p.get("samples", [])]
            elif p.get("type") == "evented":
                q["events"] = [dict(e, frame=e["frame"] + off) for e in p.get("events", [])]
            profiles.append(q)
    first = docs[0][1] if docs else {}
    return {
        "$schema": first.get("$schema", "https://www.speedscope.app/file-format-schema.json"),
        "profiles": profiles,
        "shared": {"frames": frames},
        "activeProfileIndex": 0,
        "exporter": first.get("exporter", "py-spy") + " (merged by edgebench)",
        "name": "edgebench py-spy",
    }


