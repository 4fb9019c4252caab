"""The reference side of an A/B: a git ref checked out into a temporary worktree.

The worktree's directory carries the gate's pid; a gate killed before it could remove
its worktree (SIGKILL) leaves one behind, which the next gate removes."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgebench.results import ROOT
from edgebench.scenarios import ParameterError

PREFIX = "edgebench-ref-"


def _git(*args, repo: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def resolve_ref(against: str | None, repo: Path = ROOT) -> tuple[str, str]:
    """(commit, how it was chosen). Default: the merge base with main, else HEAD."""
    if against:
        out = _git("rev-parse", "--verify", "--quiet", f"{against}^{{commit}}", repo=repo)
        if out.returncode != 0:
            raise ParameterError(f"AGAINST={against!r} is not a git ref here: pass a branch, tag "
                                 f"or commit (e.g. AGAINST=main or AGAINST=HEAD~1)")
        return out.stdout.strip(), f"AGAINST={against}"
    for main in ("main", "origin/main"):
        out = _git("merge-base", "HEAD", main, repo=repo)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip(), f"merge base of HEAD and {main}"
    out = _git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", repo=repo)
    if out.returncode != 0:
        raise ParameterError("no commit to compare against: commit first, or pass AGAINST=<ref>")
    return out.stdout.strip(), "HEAD (no main branch)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphan_worktrees(repo: Path = ROOT) -> list[Path]:
    """Worktrees of gates that died without removing them (their pid is gone)."""
    out = _git("worktree", "list", "--porcelain", repo=repo)
    removed = []
    for line in out.stdout.splitlines():
        if not line.startswith("worktree "):
            continue
        path = Path(line.split(" ", 1)[1])
        parent = path.parent.name
        if not parent.startswith(PREFIX):
            continue
        pid = parent[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            _git("worktree", "remove", "--force", str(path), repo=repo)
            shutil.rmtree(path.parent, ignore_errors=True)
            removed.append(path)
    _git("worktree", "prune", repo=repo)
    return removed


@contextmanager
def worktree(commit: str, repo: Path = ROOT):
    """A detached checkout of `commit`, removed afterwards whatever happens."""
    remove_orphan_worktrees(repo)
    parent = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    path = parent / "ref"
    out = _git("worktree", "add", "--detach", "--quiet", str(path), commit, repo=repo)
    if out.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise ParameterError(f"cannot check out {commit[:12]} into a worktree: "
                             f"{out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'git failed'}")
    try:
        if not (path / "service" / "__main__.py").exists():
            raise ParameterError(f"ref {commit[:12]} has no service/ package to measure: "
                                 f"pass a newer ref with AGAINST=<ref>")
        yield path
    finally:
        _git("worktree", "remove", "--force", str(path), repo=repo)
        _git("worktree", "prune", repo=repo)
        shutil.rmtree(parent, ignore_errors=True)
