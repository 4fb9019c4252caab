"""Build the stack's images without an image registry: ``make images-offline``.

Where no registry answers (an air-gapped CI runner, this project's test machines), the
Dockerfile's ``python:*`` base and the collectors' ``victoriametrics/*`` and ``prom/*``
images cannot be pulled. This module makes local stand-ins, the collectors tagged exactly
as the compose file names them, so ``docker compose build``/``up`` find them locally and
never pull:

- the Python base, ``edgebench/python-offline:bookworm`` (the build gets it as the
  Dockerfile's ``BASE_IMAGE`` argument when the default base is absent): a minimal Debian bookworm (``debootstrap`` from the Debian mirror)
  with python3, pip and wget, ``docker import``-ed with the layout of the official
  image (``python``, ``pip``, packages under /usr/local/lib/pythonX.Y/site-packages).
  The root file system tarball is cached (``$EDGEBENCH_CACHE_DIR``, default
  ``~/.cache/edgebench``), so a second run imports in seconds;
- VictoriaMetrics and Prometheus: ``FROM scratch`` with Debian's own
  /usr/bin/victoria-metrics and /usr/bin/prometheus and the shared libraries they load.

Every docker call honours ``DOCKER_HOST``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .images import StackError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3", "wget", "ca-certificates")
OFFLINE_COMMAND = "make images-offline"
# The local stand-in for the Dockerfile's python base (passed as build argument BASE_IMAGE)
OFFLINE_BASE = f"edgebench/python-offline:{DEBIAN_SUITE}"

COLLECTORS = {  # image name prefix -> (Debian binary, the image's entrypoint path)
    "victoriametrics/victoria-metrics": "/usr/bin/victoria-metrics",
    "prom/prometheus": "/usr/bin/prometheus",
}


def cache_dir() -> Path:
    d = os.environ.get("EDGEBENCH_CACHE_DIR")
    if d:
        return Path(d)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgebench"


def _docker(*args: str, input: bytes | None = None, timeout: float = 600, check: bool = True,
            cwd: str | None = None) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout, cwd=cwd)
    except FileNotFoundError:
        raise StackError("docker is not installed; fix: apt-get install docker.io") from None
    except subprocess.TimeoutExpired:
        raise StackError(f"`docker {' '.join(args[:3])}` did not finish within {timeout:g}s; "
                         f"fix: check the Docker engine") from None
    if check and r.returncode != 0:
        last = (r.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise StackError(f"`docker {' '.join(args[:3])} ...` failed: {last}")
    return r


def image_exists(tag: str) -> bool:
    return _docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


def dockerfile_bases(dockerfile: Path) -> list[str]:
    """The images a Dockerfile pulls: each FROM (``ARG`` defaults substituted), minus its
    own stage names and ``scratch``."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    out: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "ARG" and "=" in words[1] and not out:
            k, _, v = words[1].partition("=")
            args[k] = v.strip('"')
        if len(words) >= 2 and words[0].upper() == "FROM":
            ref = next(w for w in words[1:] if not w.startswith("--"))
            ref = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), ref)
            if "AS" in (w.upper() for w in words):
                stages.add(words[-1].lower())
            if ref.lower() not in stages and ref != "scratch" and ref not in out:
                out.append(ref)
    return out


def python_base_tag(dockerfile: Path | None = None) -> str:
    """The Dockerfile's default base (the ``BASE_IMAGE`` build argument)."""
    bases = dockerfile_bases(dockerfile or REPO_ROOT / "Dockerfile")
    if not bases:
        raise StackError(f"{dockerfile}: no FROM image found; fix: give the Dockerfile a FROM line")
    return bases[0]


# --------------------------------------------------------------------- base

def base_tarball() -> Path:
    return cache_dir() / f"rootfs-{DEBIAN_SUITE}-python.tar"


def build_rootfs_tarball(log=print) -> Path:
    """debootstrap a minimal bookworm with BASE_PACKAGES into a cached tarball (root only)."""
    out = base_tarball()
    if out.exists():
        return out
    if os.geteuid() != 0:
        raise StackError("building the offline base image needs root (debootstrap); fix: run as root")
    if not shutil.which("debootstrap"):
        raise StackError("debootstrap is not installed; fix: apt-get install debootstrap")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgebench-rootfs-", dir=out.parent) as tmp:
        root = Path(tmp) / "root"
        log(f"debootstrap {DEBIAN_SUITE} ({', '.join(BASE_PACKAGES)}) from {DEBIAN_MIRROR}: a few minutes ...")
        t0 = time.monotonic()
        r = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                            DEBIAN_SUITE, str(root), DEBIAN_MIRROR], capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stdout.strip().splitlines() or ["no output"])[-1]
            raise StackError(f"debootstrap failed: {last}; fix: check that {DEBIAN_MIRROR} answers")
        # what the image never needs at run time: apt lists, caches, docs
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                    "usr/share/locale"):
            shutil.rmtree(root / sub, ignore_errors=True)
            (root / sub).mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".tar.part")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(part), "."], check=True)
        part.rename(out)
        log(f"base root file system cached in {out} ({out.stat().st_size >> 20} MB, "
            f"{time.monotonic() - t0:.0f} s)")
    return out


def python_minor(tarball: Path) -> str:
    """'3.11' from the python3.X directory in the tarball's /usr/lib."""
    r = subprocess.run(["tar", "-tf", str(tarball), "./usr/bin/"], capture_output=True, text=True)
    found = sorted(set(re.findall(r"\./usr/bin/python(3\.\d+)$", r.stdout, re.M)))
    if not found:
        raise StackError(f"{tarball} has no /usr/bin/python3.X; fix: delete it and run {OFFLINE_COMMAND} again")
    return found[-1]


HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def import_base(tag: str, log=print) -> None:
    """``docker import`` the cached root file system as ``tag`` with the official image's
    layout where it matters: ``python``, ``pip``, and what ``pip install --prefix`` put
    under /usr/local on the path.
    The build machine's CA bundle replaces the image's, so pip in the build trusts what
    this machine trusts (a TLS-intercepting proxy's CA included)."""
    tarball = build_rootfs_tarball(log)
    minor = python_minor(tarball)
    # Debian's pip installs `--prefix P` into P/local/lib/pythonX.Y/dist-packages (its
    # posix_local scheme): the Dockerfile's `--prefix=/install` copied to /usr/local lands there
    changes = [f"ENV PYTHONPATH=/usr/local/lib/python{minor}/site-packages:"
               f"/usr/local/local/lib/python{minor}/dist-packages",
               "ENV PIP_BREAK_SYSTEM_PACKAGES=1", "ENV PIP_ROOT_USER_ACTION=ignore",
               "ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
               f"ENV PIP_CERT={HOST_CA_BUNDLE}",
               "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
               'CMD ["python3"]']
    args = ["import"]
    for c in changes:
        args += ["--change", c]
    _docker(*args, str(tarball), tag + "-rootfs", timeout=600)
    with tempfile.TemporaryDirectory(prefix="edgebench-image-") as tmp:
        ctx = Path(tmp)
        lines = [f"FROM {tag}-rootfs"]
        if HOST_CA_BUNDLE.is_file():
            shutil.copy2(HOST_CA_BUNDLE, ctx / "ca-certificates.crt")
            lines.append(f"COPY ca-certificates.crt {HOST_CA_BUNDLE}")
        (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
        _docker("build", "-q", "-t", tag, str(ctx), timeout=600)
    _docker("rmi", tag + "-rootfs", check=False, timeout=60)
    log(f"imported {tag} from {tarball}")


# --------------------------------------------------------------- collectors

def _libraries(binary: str) -> list[str]:
    """The shared libraries ``binary`` loads (ldd), the loader included; [] if static."""
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    libs = re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", r.stdout)
    return sorted(set(libs))


def build_collector(tag: str, binary: str, log=print) -> None:
    """A FROM-scratch image with ``binary`` (its entrypoint, at the same path) and its libraries."""
    if not os.access(binary, os.X_OK):
        raise StackError(f"{binary} is not installed (needed for {tag}); fix: run `make os-packages`")
    with tempfile.TemporaryDirectory(prefix="edgebench-image-") as tmp:
        ctx = Path(tmp)
        files = [binary] + _libraries(binary)
        for f in files:
            dst = ctx / "root" / f.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(f), dst)
        (ctx / "root" / "tmp").mkdir()
        (ctx / "Dockerfile").write_text(
            "FROM scratch\nCOPY root/ /\n"
            f'ENTRYPOINT ["{binary}"]\n')
        _docker("build", "-q", "-t", tag, str(ctx), timeout=600)
    log(f"built {tag} FROM scratch with {binary} and {len(files) - 1} libraries")


# ----------------------------------------------------------------- front

def compose_images(compose_path: Path) -> list[str]:
    from .compose import load_compose
    c = load_compose(compose_path)
    return [s.image for s in c.all_services.values() if s.image and s.build is None]


def _tag(ref: str) -> str:
    """``ref`` as ``docker image inspect`` lists it in RepoTags (``:latest`` when untagged)."""
    return ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"


def present_images(tags: list[str]) -> set[str]:
    """The tags among ``tags`` the engine has, from one ``docker image inspect``."""
    if not tags:
        return set()
    r = _docker("image", "inspect", "--format", "{{json .RepoTags}}", *tags, check=False, timeout=30)
    found: set[str] = set()
    for line in r.stdout.decode(errors="replace").splitlines():
        try:
            found.update(json.loads(line) or [])
        except ValueError:
            continue
    return {t for t in tags if _tag(t) in found}


def base_build_arg(dockerfile: Path | None = None) -> str | None:
    """``OFFLINE_BASE`` when the Dockerfile's own base is absent and the offline one is
    present (the build then gets ``BASE_IMAGE=OFFLINE_BASE``), else None."""
    base = python_base_tag(dockerfile)
    have = present_images([base, OFFLINE_BASE])
    return OFFLINE_BASE if base not in have and OFFLINE_BASE in have else None


def missing_refusal(missing: list[str], docker_said: str) -> StackError:
    """The one line for images the engine lacks and could not pull."""
    return StackError(f"image(s) {', '.join(missing)} are not in the Docker engine and could not be pulled "
                      f"(docker: {docker_said}); fix: run `{OFFLINE_COMMAND}` (builds them without a "
                      f"registry) or `docker load` them")


def check_missing(images: list[str], docker_said: str) -> None:
    """After ``compose up`` failed: raise ``missing_refusal`` if any of ``images`` (the
    pulled ones the stack names) is absent, one ``docker image inspect`` for all."""
    have = present_images(images)
    missing = [t for t in images if t not in have]
    if missing:
        raise missing_refusal(missing, docker_said)


def build_all(compose_path: Path, force: bool = False, log=print) -> list[str]:
    """Make every image the stack pulls; returns the tags made (existing ones are kept
    unless ``force``)."""
    made = []
    if force or not image_exists(OFFLINE_BASE):
        import_base(OFFLINE_BASE, log)
        made.append(OFFLINE_BASE)
    for tag in compose_images(compose_path):
        if not force and image_exists(tag):
            continue
        binary = next((b for prefix, b in COLLECTORS.items() if tag.split(":")[0] == prefix), None)
        if binary is None:
            raise StackError(f"no offline recipe for image {tag}; fix: `docker load` it or add it to "
                             f"stack/images_offline.py COLLECTORS")
        build_collector(tag, binary, log)
        made.append(tag)
    return made
