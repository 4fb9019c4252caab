"""Run one command on a real cgroup v2 kernel: a throwaway QEMU guest that sees the host's files.

The host may mount cgroup v1 (and must keep it); edgebench's v2 code paths need a kernel
booted with ``cgroup_no_v1=all``. :func:`run` boots Debian's kernel under QEMU (software
emulation is enough: ~6 s to boot), mounts the host's root read-only over 9p, cgroup2 at
``/sys/fs/cgroup`` with ``+memory +cpu +io`` enabled for children, tmpfs on ``/tmp``,
``/run`` and ``/var/tmp``, and each *share* (a host directory, writable by default) at its
own path; then makes that tree the root (``switch_root``) and runs ONE command in it, with loopback networking only,
and powers off. The command's output and exit status come back through a per-run work
directory shared read-write, so paths are the same on both sides: a results folder passed
as a share is filled on the host.

Anything else that should run on v2 (a dockerd with its data root on a guest tmpfs, say)
runs the same way: a command, its shares, its timeout.

The guest is ~6x slower than the host for Python: use it for functional checks, not
timings. QEMU is killed by pid on error, timeout and Ctrl-C; the work directory is removed.

    .venv/bin/python -m tests.platforms.guest run --share /tmp/out -- .venv/bin/python -m edgebench up --engine native
    .venv/bin/python -m tests.platforms.guest check          # what is missing, one line each
    .venv/bin/python -m tests.platforms.guest fetch-kernel   # apt-get download linux-image-amd64 into the cache
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from plumbing.errors import EdgebenchError
from plumbing.process import preexec_die_with_parent, sigterm_as_ctrl_c
from plumbing.wait import WaitTimeout, wait_until

from .guest_image import WORK_TAG, GuestUnavailable, build_initramfs, fetch_kernel, find_busybox, find_kernel, find_qemu

REPO = Path(__file__).resolve().parents[2]
BOOT_BUDGET_S = 120.0  # boot + power-off allowance on top of the command's own timeout (busy hosts)
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_TMPFS = ("/tmp", "/run", "/var/tmp")
MSIZE = 262144
# x86-64-v2 (SSE4.2, POPCNT), no AVX: QEMU 7.2's TCG emulates AVX2 wrongly (numpy's AVX2
# argsort returns misordered indices and its vpgatherqq raises #GP, a SIGSEGV in the guest);
# qemu64, QEMU's default, lacks SSE4.2, and numpy 2.x dies of SIGILL on import there.
CPU_MODEL = "Nehalem"


class GuestError(EdgebenchError):
    """The guest booted but could not run the command, or ran out of time."""


@dataclass
class GuestResult:
    returncode: int            # the command's exit status (137: killed by the in-guest timeout)
    output: str                # its stdout and stderr, interleaved
    kernel_release: str        # uname -r in the guest
    controllers: list[str]     # the cgroup2 root's cgroup.controllers
    subtree_control: list[str]
    seconds: float             # boot to power-off, wall clock
    console: str = field(repr=False, default="")


def _q(s) -> str:
    return shlex.quote(str(s))


def _stage2(shares: list[tuple[Path, bool, str]], work_path: Path,
            tmpfs: tuple[str, ...] = GUEST_TMPFS) -> str:
    """The guest's second stage (busybox sh, PID 1): mounts the tree, then ``switch_root`` into it.

    switch_root moves the 9p root onto ``/``, so it is the mount namespace's real root, not
    a chroot inside the initramfs: a process that joins a namespace (runc's ``docker exec``
    does, with setns) resolves paths against it."""
    lines = [
        "R=/newroot",
        "W=/mnt/work",
        'fail() { echo "edgebench-guest: $*"; echo "$*" > $W/setup-error; sync; poweroff -f; }',
        f"mount -t 9p -o trans=virtio,version=9p2000.L,msize={MSIZE},ro,cache=loose hostroot $R"
        " || fail 'cannot mount the host root over 9p'",
        "mount -t proc proc $R/proc || fail 'cannot mount /proc'",
        "mount -t sysfs sys $R/sys || fail 'cannot mount /sys'",
        "mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail 'cannot mount cgroup2 at /sys/fs/cgroup'",
        "echo '+memory +cpu +io' > $R/sys/fs/cgroup/cgroup.subtree_control"
        " || fail 'cannot enable +memory +cpu +io in the cgroup2 root'",
        "mount -t devtmpfs dev $R/dev || fail 'cannot mount /dev'",
        "mkdir -p $R/dev/pts $R/dev/shm",
        "mount -t devpts devpts $R/dev/pts",
        "mount -t tmpfs -o mode=1777 shm $R/dev/shm",
    ]
    for d in tmpfs:
        lines.append(f"mkdir -p $R{_q(d)}")
        lines.append(f"mount -t tmpfs -o mode=1777 tmpfs $R{_q(d)} || fail {_q('cannot mount a tmpfs on ' + d)}")
    mounts = [(p, rw, tag) for p, rw, tag in shares] + [(work_path, True, None)]
    for path, rw, tag in sorted(mounts, key=lambda m: len(m[0].parts)):
        lines.append(f"mkdir -p $R{_q(path)}")
        if tag is None:
            lines.append(f"mount --bind $W $R{_q(path)} || fail 'cannot bind the work share'")
        else:
            opts = f"trans=virtio,version=9p2000.L,msize={MSIZE},cache=mmap" + ("" if rw else ",ro")
            lines.append(f"mount -t 9p -o {opts} {tag} $R{_q(path)} || fail {_q('cannot mount share ' + str(path))}")
    lines += [
        "ip link set lo up",
        "uname -r > $W/kernel-release",
        "cat $R/sys/fs/cgroup/cgroup.controllers > $W/controllers",
        "cat $R/sys/fs/cgroup/cgroup.subtree_control > $W/subtree_control",
        # the initramfs is emptied by switch_root: stage 3 runs the busybox copied to the work share
        "cp /bin/busybox $W/busybox || fail 'cannot copy busybox to the work share'",
        f"exec switch_root $R {_q(work_path / 'busybox')} sh {_q(work_path / 'stage3.sh')}",
        "fail 'switch_root failed'",
    ]
    return "\n".join(lines) + "\n"


def _stage3(work_path: Path, timeout: float) -> str:
    """The guest's third stage (PID 1 on the 9p root): the command, its status, power-off."""
    w = work_path
    return "\n".join([
        f"B={_q(w / 'busybox')}",
        "echo 'edgebench-guest: running the command'",
        # the output goes to a file on the work share, which the host follows (a pipe would
        # stay open while anything the command left behind holds it); when the command ends
        # or its timeout kills it, everything else it started is killed (kill -1 spares init)
        f"$B timeout -s KILL {int(timeout)} /bin/sh {_q(w / 'cmd.sh')} > {_q(w / 'output.log')} 2>&1 < /dev/null",
        f"echo $? > {_q(w / 'rc')}",
        "$B kill -KILL -1",
        "$B sync",
        "echo 'edgebench-guest: power off'",
        "$B poweroff -f",
    ]) + "\n"


def _cmd_sh(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    base = {"PATH": GUEST_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "EDGEBENCH_RUNTIME_DIR": "/run/edgebench",
            "PYTHONUNBUFFERED": "1",  # output streams to the console as it comes
            "EDGEBENCH_LOAD_START_TIMEOUT_S": "900",   # Locust took 5 min to start on a busy host
            "EDGEBENCH_STACK_START_TIMEOUT_S": "600"}  # the service took over 45 s to answer at load 7
    base.update(env)
    exports = "\n".join(f"export {k}={_q(v)}" for k, v in base.items())
    return f"cd {_q(cwd)} || exit 125\n{exports}\nexec {shlex.join(argv)}\n"


def check() -> list[str]:
    """What stops the guest from booting here, one line each (empty: it can boot)."""
    problems = []
    for probe in (find_qemu, find_kernel, find_busybox):
        try:
            probe()
        except GuestUnavailable as e:
            problems.append(str(e))
    return problems


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run(argv: list[str], *, cwd: str | os.PathLike | None = None, shares=(), env: dict[str, str] | None = None,
        timeout: float = 600, memory_mb: int = 2560, cpus: int = 2, cpu_model: str = CPU_MODEL, stream=None,
        keep_workdir: bool = False, boot_budget: float = BOOT_BUDGET_S, tmpfs=(), modules=()) -> GuestResult:
    """Boot the guest, run ``argv`` (in ``cwd``, default the checkout) and power off.

    ``shares``: host directories (``str``/``Path``, writable) or ``(path, writable)`` pairs,
    mounted at the same path in the guest. ``stream``: a text file receiving the guest's
    console (kernel messages) and the command's output as they come. ``tmpfs``: more guest
    directories on a tmpfs (besides /tmp, /run, /var/tmp), e.g. a dockerd's data root;
    ``modules``: more kernel modules to load (e.g. ``overlay``). QEMU is killed when
    ``timeout + boot_budget`` seconds pass without a power-off. Raises GuestUnavailable
    (cannot boot here), GuestError (booted, but the command did not run or timed out)."""
    cwd = Path(cwd or REPO).resolve()
    norm: list[tuple[Path, bool, str]] = []
    for i, s in enumerate(shares):
        path, rw = (s, True) if isinstance(s, (str, os.PathLike)) else s
        path = Path(path).resolve()
        if not path.is_dir():
            raise GuestError(f"share {path} is not a directory: create it first")
        norm.append((path, bool(rw), f"eb-share{i}"))
    tmpfs = tuple(dict.fromkeys((*GUEST_TMPFS, *(str(Path(t)) for t in tmpfs))))
    bad = [t for t in tmpfs if not Path(t).is_absolute() or Path(t) == Path("/")]
    if bad:
        raise GuestError(f"tmpfs {bad[0]!r}: give an absolute directory other than /, e.g. /var/lib/docker")
    hidden = any(cwd.is_relative_to(t) for t in tmpfs)   # under a guest tmpfs: share it read-only
    if hidden and not any(cwd.is_relative_to(p) for p, _, _ in norm):
        norm.append((cwd, False, f"eb-share{len(norm)}"))
    qemu, kernel, busybox = find_qemu(), find_kernel(), find_busybox()
    tmp = Path(tempfile.mkdtemp(prefix="edgebench-guest-"))
    work = tmp / "work"
    work.mkdir()
    proc = None
    t0 = time.monotonic()
    try:
        initrd = build_initramfs(kernel, busybox, tmp / "initramfs.cpio", modules)
        (work / "stage2.sh").write_text(_stage2(norm, work, tmpfs))
        (work / "stage3.sh").write_text(_stage3(work, timeout))
        (work / "cmd.sh").write_text(_cmd_sh(list(argv), cwd, env or {}))
        console = tmp / "console.log"
        sec = "passthrough" if os.geteuid() == 0 else "none"  # passthrough keeps owners, needs root
        cmd = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-accel", "tcg,thread=multi", "-cpu", cpu_model, "-smp", str(cpus), "-m", str(memory_mb),
               "-kernel", str(kernel.image), "-initrd", str(initrd),
               "-append", "console=ttyS0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 panic=-1 "
                          "quiet loglevel=4 rdinit=/init",
               "-serial", f"file:{console}", "-monitor", "none", "-nic", "none",
               "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
               "-virtfs", f"local,path={work},mount_tag={WORK_TAG},security_model={sec},multidevs=remap"]
        for path, rw, tag in norm:
            cmd += ["-virtfs", f"local,path={path},mount_tag={tag},security_model={sec},multidevs=remap"
                    + ("" if rw else ",readonly=on")]
        with open(tmp / "qemu.log", "wb") as qlog:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=preexec_die_with_parent())
        deadline = t0 + timeout + boot_budget
        seen = {console: 0, work / "output.log": 0}   # the kernel's console, the command's output

        def follow():
            for path in seen:
                seen[path] = _follow(path, seen[path], stream)

        def powered_off() -> bool:
            follow()
            return proc.poll() is not None
        try:
            wait_until(powered_off, max(0.0, deadline - time.monotonic()), "the guest to power off", interval=0.2)
        except WaitTimeout:
            _kill(proc)
            raise GuestError(f"the guest did not power off within {timeout + boot_budget:.0f} s "
                             f"(command timeout {timeout:.0f} s + {boot_budget:.0f} s to boot): QEMU killed; "
                             f"raise the timeout (last console line: {_tail(console) or 'none'})") from None
        follow()
        seconds = time.monotonic() - t0

        def read(name: str) -> str:
            p = work / name
            return p.read_text(errors="replace") if p.exists() else ""

        if not (work / "rc").exists():
            why = read("setup-error").strip() or _tail(console) or _tail(tmp / "qemu.log")
            raise GuestError(f"the guest did not run the command (QEMU exit {proc.returncode}): {why}")
        return GuestResult(returncode=int(read("rc").strip() or 255), output=read("output.log"),
                           kernel_release=read("kernel-release").strip(),
                           controllers=read("controllers").split(), subtree_control=read("subtree_control").split(),
                           seconds=seconds, console=console.read_text(errors="replace"))
    finally:
        if proc is not None:
            _kill(proc)
        if not keep_workdir:
            shutil.rmtree(tmp, ignore_errors=True)


def _follow(path: Path, seen: int, stream) -> int:
    if stream is None:
        return seen
    try:
        with open(path, "rb") as f:
            f.seek(seen)
            data = f.read()
    except OSError:
        return seen
    if data:
        stream.write(data.decode(errors="replace"))
        stream.flush()
    return seen + len(data)


def _tail(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.platforms.guest", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="boot, run one command in the cgroup v2 guest, power off")
    r.add_argument("--share", action="append", default=[], metavar="DIR[:ro]",
                   help="host directory mounted at the same path in the guest (writable unless :ro)")
    r.add_argument("--cwd", default=str(REPO), help="working directory of the command (default: the checkout)")
    r.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--timeout", type=float, default=600, help="seconds the command may run (default 600)")
    r.add_argument("--memory", type=int, default=2560, help="guest RAM in MB (default 2560)")
    r.add_argument("--cpus", type=int, default=2)
    r.add_argument("--cpu-model", default=CPU_MODEL, help=f"QEMU's -cpu model (default {CPU_MODEL})")
    r.add_argument("--tmpfs", action="append", default=[], metavar="DIR",
                   help="another guest directory on a tmpfs, e.g. /var/lib/docker")
    r.add_argument("--module", action="append", default=[], metavar="NAME",
                   help="another kernel module to load, e.g. overlay")
    r.add_argument("--quiet", action="store_true", help="print only the command's output, at the end")
    r.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("check", help="say what is missing to boot the guest")
    sub.add_parser("fetch-kernel", help="apt-get download Debian's kernel into the cache (no install)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "check":
            problems = check()
            for p in problems:
                print(p, file=sys.stderr)
            if not problems:
                k = find_kernel()
                print(f"guest ready: kernel {k.release} ({k.image}), {find_qemu()}, {find_busybox()}")
            return 1 if problems else 0
        if a.cmd == "fetch-kernel":
            k = fetch_kernel()
            print(f"guest kernel {k.release}: {k.image}")
            return 0
        command = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not command:
            raise GuestError("no command: write it after --, e.g. python -m tests.platforms.guest run -- uname -r")
        env = {}
        for kv in a.env:
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise GuestError(f"--env {kv!r}: write KEY=VALUE")
            env[k] = v
        shares = [(s[:-3], False) if s.endswith(":ro") else (s, True) for s in a.share]
        undo = sigterm_as_ctrl_c()
        try:
            res = run(command, cwd=a.cwd, shares=shares, env=env, timeout=a.timeout, memory_mb=a.memory,
                      cpus=a.cpus, cpu_model=a.cpu_model, stream=None if a.quiet else sys.stdout, tmpfs=a.tmpfs, modules=a.module)
        finally:
            undo()
        if a.quiet:
            sys.stdout.write(res.output if res.output.endswith("\n") or not res.output else res.output + "\n")
            sys.stdout.flush()
        print(f"guest: kernel {res.kernel_release}, cgroup2 controllers {' '.join(res.controllers)}; "
              f"exit {res.returncode} after {res.seconds:.1f} s", file=sys.stderr)
        return res.returncode
    except EdgebenchError as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgebench: interrupted; the guest was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
