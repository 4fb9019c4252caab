"""The cgroup v2 guest's parts that need no boot: kernel and busybox lookup, module order,
the initramfs archive, the scripts the guest runs, and one-line refusals."""
import os
import subprocess
import sys

import pytest

from tests.platforms import guest, guest_image
from tests.platforms.guest_image import GuestUnavailable


def read_cpio(data: bytes) -> dict:
    """{name: (mode, bytes)} of a newc archive (what the kernel unpacks)."""
    out, i = {}, 0
    while True:
        assert data[i:i + 6] == b"070701", f"bad magic at {i}"
        f = [int(data[i + 6 + 8 * k:i + 14 + 8 * k], 16) for k in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[i + 110:i + 110 + namesize - 1].decode()
        i += 110 + namesize
        i += -i % 4
        body = data[i:i + size]
        i += size
        i += -i % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def fake_kernel(tmp_path, dep_lines, compressed=()):
    root = tmp_path / "k"
    mods = root / "lib" / "modules" / "6.1.0-test"
    for line in dep_lines:
        rel = line.split(":")[0]
        p = mods / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".xz"):
            import lzma
            p.write_bytes(lzma.compress(b"ELF " + rel.encode()))
        else:
            p.write_bytes(b"ELF " + rel.encode())
    (mods / "modules.dep").write_text("\n".join(dep_lines) + "\n")
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-test").write_bytes(b"kernel")
    return root, guest_image.Kernel(root / "boot" / "vmlinuz-6.1.0-test", mods, "6.1.0-test")


DEP = [
    "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko",
    "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko "
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_ring.ko:",
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko:",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
    "kernel/net/9p/9pnet.ko: kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko",
    "kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko",
    "kernel/fs/netfs/netfs.ko:",
    "kernel/drivers/net/unrelated.ko:",
]


def test_module_order_puts_every_dependency_first(tmp_path):
    _, k = fake_kernel(tmp_path, DEP)
    names = [guest_image._module_name(m) for m in guest_image.module_order(k.modules)]
    assert len(names) == len(set(names)) == 10 and "unrelated" not in names
    deps = {guest_image._module_name(line.split(":")[0]): [guest_image._module_name(d) for d in line.split(":")[1].split()]
            for line in DEP}
    for i, n in enumerate(names):
        assert set(deps[n]) <= set(names[:i]), (n, names)
    assert names[-1] == "9p"


def test_initramfs_holds_busybox_init_and_decompressed_modules(tmp_path, monkeypatch):
    _, k = fake_kernel(tmp_path, DEP)
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF-static-busybox")
    out = guest_image.build_initramfs(k, bb, tmp_path / "initramfs.cpio")
    files = read_cpio(out.read_bytes())
    assert files["bin/busybox"] == (0o100755, bb.read_bytes())
    assert files["init"][0] == 0o100755 and files["init"][1].startswith(b"#!/bin/busybox sh")
    order = files["modules.order"][1].decode().split()
    assert order[-1] == "9p.ko" and len(order) == 10
    assert files["modules/9p.ko"][1] == b"ELF kernel/fs/9p/9p.ko.xz"        # xz undone on the host
    assert all(f"modules/{m}" in files for m in order)


def test_kernel_from_env_and_its_refusal(tmp_path, monkeypatch):
    root, k = fake_kernel(tmp_path, DEP)
    monkeypatch.setenv(guest_image.KERNEL_ENV, str(k.image))
    assert guest_image.find_kernel() == guest_image.Kernel(k.image, k.modules.resolve(), "6.1.0-test")
    monkeypatch.setenv(guest_image.KERNEL_ENV, str(tmp_path / "vmlinuz-9.9"))
    with pytest.raises(GuestUnavailable, match=r"^EDGEBENCH_GUEST_KERNEL=.*vmlinuz-9\.9: want a readable") as e:
        guest_image.find_kernel()
    assert "\n" not in str(e.value)


def test_missing_qemu_and_busybox_are_one_line_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GuestUnavailable, match=r"^qemu-system-x86_64 not found: apt-get install qemu-system-x86"):
        guest_image.find_qemu()
    monkeypatch.setenv(guest_image.BUSYBOX_ENV, sys.executable)       # dynamically linked
    with pytest.raises(GuestUnavailable, match=r"is not a static busybox: apt-get install busybox-static"):
        guest_image.find_busybox()
    assert not guest_image._is_static_elf(tmp_path)                    # a directory, not an ELF
    problems = guest.check()
    assert any("qemu-system-x86" in p for p in problems) and any("busybox-static" in p for p in problems)


@pytest.mark.slow
def test_static_busybox_is_recognised():
    if not os.path.exists("/bin/busybox"):
        pytest.skip("no /bin/busybox: apt-get install busybox-static")
    static = guest_image._is_static_elf(guest_image.Path("/bin/busybox"))
    ldd = subprocess.run(["ldd", "/bin/busybox"], capture_output=True, text=True)
    assert static == ("not a dynamic executable" in (ldd.stdout + ldd.stderr))


def test_stage2_mounts_cgroup2_and_shares_then_switches_root_and_runs_the_command(tmp_path):
    work = tmp_path / "work"
    shares = [(guest_image.Path("/tmp/a/b"), True, "eb-share0"), (guest_image.Path("/srv/ro"), False, "eb-share1")]
    s = guest._stage2(shares, work)
    lines = s.splitlines()
    at = {key: next(i for i, x in enumerate(lines) if key in x) for key in (
        "hostroot $R", "cgroup2 $R/sys/fs/cgroup", "'+memory +cpu +io'", "tmpfs $R/tmp ", "eb-share0 $R/tmp/a/b",
        "eb-share1 $R/srv/ro", f"mount --bind $W $R{work}", "cp /bin/busybox $W/busybox",
        f"exec switch_root $R {work}/busybox sh {work}/stage3.sh")}
    assert at["hostroot $R"] < at["cgroup2 $R/sys/fs/cgroup"] < at["'+memory +cpu +io'"]
    assert at["tmpfs $R/tmp "] < at["eb-share0 $R/tmp/a/b"] < at["cp /bin/busybox $W/busybox"] \
        < at[f"exec switch_root $R {work}/busybox sh {work}/stage3.sh"]
    assert ",ro " in lines[at["eb-share1 $R/srv/ro"]] and ",ro " not in lines[at["eb-share0 $R/tmp/a/b"]]
    assert ",ro," in lines[at["hostroot $R"]]
    assert "chroot" not in s
    three = guest._stage3(work, 42).splitlines()
    run = next(i for i, x in enumerate(three) if f"$B timeout -s KILL 42 /bin/sh {work}/cmd.sh > {work}/output.log" in x)
    assert run < three.index(f"echo $? > {work}/rc") < three.index("$B kill -KILL -1") < three.index("$B poweroff -f")
    cmd = guest._cmd_sh(["python", "-c", "print('a b')"], guest_image.Path("/repo dir"), {"X": "1 2"})
    assert cmd.splitlines()[0] == "cd '/repo dir' || exit 125"
    assert "export X='1 2'" in cmd and "export EDGEBENCH_RUNTIME_DIR=/run/edgebench" in cmd
    assert cmd.rstrip().endswith("exec python -c 'print('\"'\"'a b'\"'\"')'")


@pytest.mark.slow
def test_cli_refuses_bad_input_in_one_line(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tests.platforms.guest", *args], capture_output=True, text=True,
                              cwd=guest.REPO, timeout=60)
    r = cli("run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "no command: write it after --" in r.stderr
    r = cli("run", "--env", "NOEQUALS", "--", "true")
    assert r.returncode == 2 and "--env 'NOEQUALS': write KEY=VALUE" in r.stderr
    r = cli("run", "--share", str(tmp_path / "missing"), "--", "true")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert f"share {tmp_path / 'missing'} is not a directory: create it first" in r.stderr


def test_extra_modules_and_tmpfs_for_other_commands(tmp_path):
    """What a dockerd in the guest needs: overlay loaded, its data root on a tmpfs."""
    _, k = fake_kernel(tmp_path, DEP + ["kernel/fs/overlayfs/overlay.ko:"])
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF")
    files = read_cpio(guest_image.build_initramfs(k, bb, tmp_path / "i.cpio", ("overlay",)).read_bytes())
    assert files["modules.order"][1].decode().split()[-1] == "overlay.ko"
    with pytest.raises(GuestUnavailable, match=r"^kernel 6\.1\.0-test has no module nosuch \(built in, or misspelt\?\)"):
        guest_image.build_initramfs(k, bb, tmp_path / "j.cpio", ("nosuch",))
    s = guest._stage2([], tmp_path / "work", ("/tmp", "/var/lib/docker"))
    assert "mount -t tmpfs -o mode=1777 tmpfs $R/var/lib/docker ||" in s
    with pytest.raises(guest.GuestError, match=r"^tmpfs 'var/lib': give an absolute directory other than /"):
        guest.run(["true"], tmpfs=["var/lib"])


@pytest.mark.slow
def test_stack_commands_do_not_import_the_report_code():
    """`up`/`down`/`status` start in a fraction of a second: pandas and scipy (the report
    code, seconds here and over a minute in the guest) are not imported to build them."""
    code = ("import sys; from edgebench.cli import build_parser\n"
            "for c in ('up', 'down', 'status'): build_parser(c).parse_args([c])\n"
            "print(sorted(m for m in ('pandas', 'scipy', 'reports', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=guest.REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_product_packages_import_nothing_from_the_tests():
    """The guest and the private daemon are test harness: no product module may need them."""
    import ast
    from pathlib import Path

    from tests import sources
    repo = Path(guest.REPO)
    product = ("edgebench", "stack", "service", "loadtests", "profiling", "reports", "plumbing")
    offenders = []
    files = [f for pkg in product if (repo / pkg).is_dir() for f in (repo / pkg).rglob("*.py")]
    assert len(files) > 20
    for f in files:
        for node in sources.imports(f):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{f.relative_to(repo)}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert offenders == []
    assert not any((repo / "stack" / m).exists() for m in ("guest.py", "guest_image.py", "docker_daemon.py"))
