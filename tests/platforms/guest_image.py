"""What a cgroup v2 guest boots: a Debian kernel, its virtio/9p modules and a busybox initramfs.

The guest (``tests/platforms/guest.py``) needs three things from the host, each refused in one line
naming the fix when missing: ``qemu-system-x86_64``, a kernel image with its module tree,
and a *static* busybox. The kernel is looked up in ``$EDGEBENCH_GUEST_KERNEL`` (a vmlinuz
whose ``../lib/modules/<release>`` holds its modules), then in the cache that
:func:`fetch_kernel` fills, then in ``/boot`` + ``/lib/modules``. :func:`fetch_kernel`
downloads the package with ``apt-get download`` and unpacks it with ``dpkg-deb -x``: on a
CI machine that changes nothing on the host (no initramfs hooks, no boot loader entry)
and needs no root.

The initramfs is built here in Python (newc cpio): busybox, the modules the 9p root needs
(in ``modules.dep`` order, decompressed when shipped as ``.ko.xz``) and a fixed ``/init``
that mounts the run's work share and hands over to the ``stage2.sh`` the host wrote there.
"""
from __future__ import annotations

import lzma
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from plumbing.errors import EdgebenchError

KERNEL_ENV = "EDGEBENCH_GUEST_KERNEL"
BUSYBOX_ENV = "EDGEBENCH_GUEST_BUSYBOX"
KERNEL_PACKAGE = "linux-image-amd64"
# What the guest loads: virtio PCI transport and the 9p file system over it (the
# dependencies come from modules.dep).
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
WORK_TAG = "eb-work"


class GuestUnavailable(EdgebenchError):
    """The guest cannot be booted on this machine (a missing program, kernel or busybox)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebench" / "guest"


@dataclass(frozen=True)
class Kernel:
    image: Path     # vmlinuz
    modules: Path   # .../lib/modules/<release>
    release: str


def _kernel_in(root: Path) -> list[Kernel]:
    """Kernels of a file system tree laid out like Debian's (boot/vmlinuz-R, lib/modules/R)."""
    found = []
    for image in sorted((root / "boot").glob("vmlinuz-*"), reverse=True):
        release = image.name[len("vmlinuz-"):]
        mods = root / "lib" / "modules" / release
        if (mods / "modules.dep").is_file() and os.access(image, os.R_OK):
            found.append(Kernel(image, mods, release))
    return found


def find_kernel() -> Kernel:
    """The kernel to boot: $EDGEBENCH_GUEST_KERNEL, the fetched cache, then /boot."""
    env = os.environ.get(KERNEL_ENV)
    if env:
        image = Path(env)
        release = image.name.partition("vmlinuz-")[2]
        mods = image.resolve().parent.parent / "lib" / "modules" / release
        if not image.is_file() or not (mods / "modules.dep").is_file():
            raise GuestUnavailable(f"{KERNEL_ENV}={env}: want a readable vmlinuz-<release> with its modules in "
                                   f"{mods}: point it at such a kernel or unset it")
        return Kernel(image, mods, release)
    for root in (cache_dir() / "root", Path("/")):
        found = _kernel_in(root)
        if found:
            return found[0]
    raise GuestUnavailable("no guest kernel (vmlinuz with /lib/modules): run `.venv/bin/python -m tests.platforms.guest "
                           f"fetch-kernel` (apt-get download {KERNEL_PACKAGE} into {cache_dir()})")


def fetch_kernel() -> Kernel:
    """Download Debian's kernel package into the cache and unpack it (no install, no root)."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if not shutil.which(tool):
            raise GuestUnavailable(f"fetching the guest kernel needs {tool} (Debian/Ubuntu): or set {KERNEL_ENV} "
                                   "to a vmlinuz-<release> with ../lib/modules/<release>")
    dest = cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    deps = subprocess.run(["apt-cache", "depends", KERNEL_PACKAGE], capture_output=True, text=True)
    image_pkgs = [line.split(":", 1)[1].strip() for line in deps.stdout.splitlines()
                  if line.strip().startswith("Depends:") and "linux-image-" in line]
    if deps.returncode != 0 or not image_pkgs:
        raise GuestUnavailable(f"apt-cache knows no {KERNEL_PACKAGE}: run `apt-get update` first "
                               f"({(deps.stderr or '').strip()[:120]})")
    pkg = image_pkgs[0]
    got = subprocess.run(["apt-get", "download", pkg], cwd=dest, capture_output=True, text=True)
    debs = sorted(dest.glob(f"{pkg}_*.deb"))
    if got.returncode != 0 or not debs:
        raise GuestUnavailable(f"apt-get download {pkg} failed: {(got.stderr or got.stdout).strip()[:200]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(dest / "root")], check=True)
    # modules.dep is made at install time (depmod), not shipped in the package
    images = sorted((dest / "root" / "boot").glob("vmlinuz-*"))
    release = images[-1].name[len("vmlinuz-"):] if images else pkg[len("linux-image-"):]
    depmod = shutil.which("depmod") or shutil.which("/sbin/depmod")
    dep = [depmod] if depmod else [str(find_busybox()), "depmod"]
    got = subprocess.run([*dep, "-b", str(dest / "root"), release], capture_output=True, text=True)
    found = _kernel_in(dest / "root")
    for deb in debs:
        deb.unlink()   # unpacked: the package itself is not needed again
    if got.returncode != 0 or not found:
        raise GuestUnavailable(f"depmod could not index the modules of {pkg} in {dest / 'root'}: "
                               f"{(got.stderr or got.stdout).strip()[:200]}; install kmod and run fetch-kernel again")
    return found[0]


def find_qemu() -> str:
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise GuestUnavailable("qemu-system-x86_64 not found: apt-get install qemu-system-x86 "
                               "(or make test-platforms, which installs it)")
    return qemu


def _is_static_elf(path: Path) -> bool:
    """True for an ELF without a program interpreter (PT_INTERP), i.e. statically linked."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def find_busybox() -> Path:
    """A statically linked busybox: $EDGEBENCH_GUEST_BUSYBOX, else /bin/busybox."""
    env = os.environ.get(BUSYBOX_ENV)
    for p in ([env] if env else ["/bin/busybox", "/usr/bin/busybox"]):
        if _is_static_elf(Path(p)):
            return Path(p)
    where = f"{BUSYBOX_ENV}={env} is not" if env else "no"
    raise GuestUnavailable(f"{where} a static busybox: apt-get install busybox-static "
                           "(a dynamically linked busybox cannot run in the initramfs)")


def _module_name(rel: str) -> str:
    base = rel.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def module_order(modules_dir: Path, wanted=WANTED_MODULES) -> list[str]:
    """The modules.dep paths to insmod, dependencies first; built-in (absent) ones are skipped."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        if mod:
            deps[mod] = rest.split()
            by_name[_module_name(mod)] = mod
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for d in deps.get(mod, ()):
            visit(d)
        order.append(mod)

    for name in wanted:
        if name in by_name:
            visit(by_name[name])
    return order


INIT = r"""#!/bin/busybox sh
# edgebench guest init: mount the basics, load the 9p modules, hand over to the host's stage 2.
/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /mnt/work /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do
  insmod "/modules/$m" || echo "edgebench-guest: insmod $m failed"
done
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap eb-work /mnt/work; then
  exec sh /mnt/work/stage2.sh   # as PID 1: it ends in switch_root, which only PID 1 may run
fi
echo "edgebench-guest: cannot mount the work share"
sync
echo "edgebench-guest: power off"
poweroff -f
"""


class _Cpio:
    """A minimal newc (SVR4, no CRC) archive writer: what the kernel unpacks as initramfs."""

    def __init__(self, f):
        self.f, self.ino = f, 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
        self.f.write(b"070701" + b"".join(b"%08X" % v for v in fields) + name_b)
        self.f.write(b"\0" * (-(110 + len(name_b)) % 4) + data + b"\0" * (-len(data) % 4))
        self.ino += 1

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)


def build_initramfs(kernel: Kernel, busybox: Path, out: Path, extra_modules=()) -> Path:
    """Write the initramfs (uncompressed cpio) to ``out``; ``extra_modules`` (e.g. ``overlay``
    for a dockerd) are loaded after the 9p ones, with their dependencies."""
    missing = [m for m in extra_modules if not module_order(kernel.modules, (m,))]
    if missing:
        raise GuestUnavailable(f"kernel {kernel.release} has no module {', '.join(missing)} (built in, or misspelt?): "
                               f"see {kernel.modules / 'modules.dep'}")
    mods = module_order(kernel.modules, (*WANTED_MODULES, *extra_modules))
    with open(out, "wb") as f:
        cpio = _Cpio(f)
        for d in ("bin", "modules"):
            cpio.dir(d)
        cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
        cpio.file("init", INIT.encode(), 0o755)
        names = []
        for rel in mods:
            data = (kernel.modules / rel).read_bytes()
            if rel.endswith(".xz"):
                data = lzma.decompress(data)
            elif not rel.endswith(".ko"):
                raise GuestUnavailable(f"module {rel} is compressed in a format busybox insmod cannot load: "
                                       f"set {KERNEL_ENV} to a kernel with .ko or .ko.xz modules")
            names.append(_module_name(rel) + ".ko")
            cpio.file("modules/" + names[-1], data)
        cpio.file("modules.order", ("\n".join(names) + "\n").encode())
        cpio.close()
    return out
