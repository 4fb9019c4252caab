"""The results directory: one folder per run, never overwritten, with its manifest, and
the run's life from its start to its status (docs/results.md).

manifest.json is read and written through reports.contract (docs/results.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from edgebench import REPO_ROOT
from edgebench.fingerprint import machine_fingerprint
from plumbing.process import proc_start_time, sigterm_as_ctrl_c
from reports.contract import Manifest, read_manifest, write_manifest

ROOT = REPO_ROOT


def git_info(repo: Path = ROOT) -> dict:
    def git(*args):
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


class RunDir:
    """A run's folder and its manifest; the status tells readers whether it finished."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.manifest_path = self.path / "manifest.json"

    @classmethod
    def create(cls, results_root: Path, label: str, command: str, parameters: dict) -> "RunDir":
        results_root = Path(results_root)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = results_root / f"{stamp}-{label}"
        n = 1
        while path.exists():  # never overwrite a run
            n += 1
            path = results_root / f"{stamp}-{label}-{n}"
        path.mkdir(parents=True)
        run = cls(path)
        write_manifest(path, Manifest(
            run_id=path.name, command=command, argv=list(sys.argv), parameters=parameters,
            git=git_info(), machine=machine_fingerprint(), started_at=time.time(),
            status="running", scenarios={},
            owner={"pid": os.getpid(), "starttime": proc_start_time(os.getpid())}))
        return run

    def manifest(self) -> Manifest:
        return read_manifest(self.path)

    def update(self, **fields) -> None:
        m = self.manifest()
        for k, v in fields.items():
            if hasattr(m, k) and k != "extra":
                setattr(m, k, v)
            else:
                m.extra[k] = v
        write_manifest(self.path, m)

    def record_scenario(self, name: str, info: dict) -> None:
        m = self.manifest()
        m.scenarios[name] = info
        write_manifest(self.path, m)

    def finish(self, status: str) -> None:
        self.update(status=status, finished_at=time.time())


def link_latest(run_path: Path) -> None:
    """Point results/latest at this run (atomically, via a temporary link)."""
    latest = run_path.parent / "latest"
    tmp = run_path.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_path.name)
    os.replace(tmp, latest)


COMPLETE, INTERRUPTED, FAILED = "complete", "interrupted", "failed"


class Lifecycle:
    """The life of a run after ``RunDir.create``, as a ``with`` block around its work.

    Inside the block SIGTERM is handled as Ctrl-C (`kill` and a CI timeout end a run as
    cleanly). However the block ends, in this order: ``save(status)`` writes the run's own
    document with its status, the manifest gets the status (complete, interrupted or
    failed) and its end time, ``render()`` writes the report (it reads that status and
    reports its own failures: the measurements stay either way), and a complete run with
    ``latest`` moves results/latest to itself. Ctrl-C prints the ``interrupted`` line and
    ends the block, the command returning ``exit_code`` (130), or with ``reraise`` reaches
    the caller (a gate inside a calibration stops the calibration too). Any other exception
    marks the run failed and propagates. Every command that writes a run directory runs its
    work in one (docs/results.md)."""

    def __init__(self, run: RunDir, *, save: Callable[[str], None] | None = None,
                 render: Callable[[], None] | None = None, latest: bool = False,
                 interrupted: str | None = None, say: Callable[[str], None] = print,
                 reraise: bool = False):
        self.run, self.save, self.render, self.latest = run, save, render, latest
        self.interrupted, self.say, self.reraise = interrupted, say, reraise
        self.status = "running"
        self._restore_sigterm = None

    @property
    def exit_code(self) -> int:
        """0 complete, 130 interrupted (as a shell reports Ctrl-C), 1 failed."""
        return {COMPLETE: 0, INTERRUPTED: 130}.get(self.status, 1)

    def __enter__(self) -> "Lifecycle":
        self._restore_sigterm = sigterm_as_ctrl_c()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._restore_sigterm()
        if exc_type is None:
            self.status = COMPLETE
        elif issubclass(exc_type, KeyboardInterrupt):
            self.status = INTERRUPTED
            if self.interrupted:
                self.say(f"\n{self.interrupted}")
        else:
            self.status = FAILED
        if self.save:
            self.save(self.status)
        self.run.finish(self.status)
        if self.render:
            self.render()
        if self.status == COMPLETE and self.latest:
            link_latest(self.run.path)
        return self.status == INTERRUPTED and not self.reraise
