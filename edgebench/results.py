"""The results directory: one folder per run, never overwritten, with its manifest."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from edgebench.fileio import read_json, write_json_atomic
from edgebench.fingerprint import machine_fingerprint

ROOT = Path(__file__).resolve().parent.parent


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
        write_json_atomic(run.manifest_path, {
            "run_id": path.name,
            "command": command,
            "argv": sys.argv,
            "parameters": parameters,
            "git": git_info(),
            "machine": machine_fingerprint(),
            "started_at": time.time(),
            "status": "running",
            "scenarios": {},
        })
        return run

    def manifest(self) -> dict:
        return read_json(self.manifest_path)

    def update(self, **fields) -> None:
        data = self.manifest()
        data.update(fields)
        write_json_atomic(self.manifest_path, data)

    def record_scenario(self, name: str, info: dict) -> None:
        data = self.manifest()
        data.setdefault("scenarios", {})[name] = info
        write_json_atomic(self.manifest_path, data)

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
