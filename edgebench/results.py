"""The results directory: one folder per run, never overwritten, with its manifest.

manifest.json is read and written through reports.contract (docs/results.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from edgebench import REPO_ROOT
from edgebench.fingerprint import machine_fingerprint
from plumbing.process import proc_start_time
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

    def finish(self, status: str, update_latest: bool = True) -> None:
        self.update(status=status, finished_at=time.time())
        if status == "complete" and update_latest:
            link_latest(self.path)


def link_latest(run_path: Path) -> None:
    """Point results/latest at this run (atomically, via a temporary link)."""
    latest = run_path.parent / "latest"
    tmp = run_path.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_path.name)
    os.replace(tmp, latest)
