"""A private Docker daemon for tests and CI: ``dockerd`` with its own data root, exec root,
socket, pidfile and config, that leaves the host's Docker (if any), iptables and docker0
alone. Clients reach it through ``DOCKER_HOST=unix://<dir>/docker.sock``.

    with DockerDaemon() as d:          # started, `docker info` answers
        os.environ["DOCKER_HOST"] = d.host
    # stopped by pid (SIGTERM, then SIGKILL), its containerd and shims too; dir removed

``python -m tests.platforms.docker_daemon up --dir DIR`` / ``down --dir DIR`` does the same across
commands (``up`` prints the ``export DOCKER_HOST=...`` line).

Networking: no default bridge (``--bridge none``), no iptables rules, no IP forwarding;
compose's project network is a bridge of this daemon's own and published ports are
served by docker-proxy on 127.0.0.1. Image builds that need the network use the host's
(``--network host``; see stack/docker_engine.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from plumbing.process import pid_alive, proc_start_time
from plumbing.wait import WaitTimeout, wait_until
from stack.api import StackError


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int(Path(d, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def missing_requirement() -> str | None:
    """None if a private daemon can run here, else one line: what is missing and the fix."""
    for b, pkg in (("dockerd", "docker.io"), ("containerd", "docker.io"), ("runc", "docker.io"),
                   ("docker", "docker.io")):
        if not shutil.which(b):
            return f"{b} not installed; fix: apt-get install {pkg}"
    if os.geteuid() != 0:
        return "a private Docker daemon needs root; fix: run the Docker lane as root"
    return None


class DockerDaemon:
    """One private dockerd (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike | None = None, timeout: float = 60.0):
        self.owned_dir = directory is None
        # short: the socket path must fit in 108 bytes
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="ebd-", dir="/tmp"))
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.dir / "dockerd.pid"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def argv(self) -> list[str]:
        return ["dockerd", "--host", self.host, "--data-root", str(self.dir / "data"),
                "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.pidfile),
                "--config-file", str(self.dir / "daemon.json"), "--bridge", "none",
                "--iptables=false", "--ip-forward=false", "--ip-masq=false",
                "--log-level", "warn"]

    def answers(self) -> bool:
        try:
            r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=self.env(),
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0 and bool(r.stdout.strip())

    def start(self) -> "DockerDaemon":
        why = missing_requirement()
        if why:
            raise StackError(why)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "daemon.json").write_text("{}\n")  # not the host's /etc/docker/daemon.json
        log = open(self.dir / "dockerd.log", "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True)
        log.close()
        (self.dir / "owner.json").write_text(json.dumps(
            {"pid": self.proc.pid, "starttime": proc_start_time(self.proc.pid)}))
        try:
            answered = wait_until(lambda: "answered" if self.answers() else self.proc.poll() is not None,
                                  self.timeout, "the private dockerd to answer", interval=0.2)
        except WaitTimeout:
            answered = False
        if answered != "answered":  # it exited, or never answered
            tail = (self.dir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-1:]
            self.stop()
            raise StackError(f"private dockerd did not answer within {self.timeout:g}s: "
                             f"{tail[0] if tail else 'no output'}; fix: see {self.dir}/dockerd.log")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM dockerd (it stops its containers and its containerd), wait, then SIGKILL
        whatever of its process tree is left. Removes the directory if it made it."""
        pid = self.proc.pid if self.proc else _recorded_pid(self.dir)
        if pid and pid_alive(pid):
            tree = _descendants(pid)  # containerd and the shims, for the rare hard case
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            def exited() -> bool:
                if self.proc is not None:
                    self.proc.poll()  # reap it, or it stays a zombie that looks alive
                return not pid_alive(pid)
            try:
                wait_until(exited, timeout, f"dockerd (pid {pid}) to exit", interval=0.1)
            except WaitTimeout:
                pass  # its tree is killed below
            for p in [pid] + tree:
                if pid_alive(p):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        unmount_under(self.dir)  # what dockerd mounted and left (its default netns, overlays)
        if self.owned_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "DockerDaemon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def unmount_under(d: Path) -> list[str]:
    """Lazily unmount every mount point under ``d``, deepest first; returns them."""
    prefix = str(d.resolve()).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = sorted({f.split()[4].replace("\\040", " ") for f in lines if f.split()[4].startswith(prefix)},
                    key=len, reverse=True)
    for mp in points:
        subprocess.run(["umount", "-l", mp], capture_output=True)
    return points


def _recorded_pid(d: Path) -> int | None:
    """dockerd's pid from owner.json, if it is still that process (start time checked)."""
    try:
        o = json.loads((d / "owner.json").read_text())
    except (OSError, ValueError):
        return None
    return o["pid"] if proc_start_time(o["pid"]) == o.get("starttime") else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.platforms.docker_daemon", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("up", "down"))
    p.add_argument("--dir", required=True, help="the daemon's directory (data, exec root, socket)")
    args = p.parse_args(argv)
    d = DockerDaemon(args.dir)
    try:
        if args.action == "up":
            if _recorded_pid(d.dir) and d.answers():
                print(f"export DOCKER_HOST={d.host}")
                return 0
            d.start()
            print(f"export DOCKER_HOST={d.host}")
        else:
            d.stop()
            print(f"stopped the Docker daemon in {d.dir}")
    except StackError as e:
        print(f"edgebench docker daemon: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
