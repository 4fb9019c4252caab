"""The stack's images as one ``docker save`` tarball, for a Docker engine that cannot build them.

The cgroup v2 guest has no network, so its dockerd loads the images instead of building
or pulling them: :func:`save_stack_images` starts a private daemon on the host
(tests/platforms/docker_daemon.py), makes the collectors and the Python base where no
registry answers (``stack/images_offline.py``), builds the service's image from the
checkout as ``edgebench up`` would, saves the images the default stack runs, and stops
the daemon.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from stack import images_offline

from .docker_daemon import DockerDaemon

REPO = Path(__file__).resolve().parents[2]
SERVICE_IMAGE = "edgebench/sensor-service:local"
COLLECTOR_IMAGE = "victoriametrics/victoria-metrics:v1.79.5"


def _docker(*args: str, env: dict, timeout: float = 900) -> str:
    r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


def save_stack_images(dest: Path) -> dict:
    """Write the service's and VictoriaMetrics' images to ``dest`` (a tar); returns what it did."""
    t0 = time.monotonic()
    with DockerDaemon(timeout=300) as d:
        env = d.env()
        old = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = d.host   # images_offline's docker calls follow DOCKER_HOST
        try:
            images_offline.build_all(REPO / "docker-compose.yml", log=lambda *_: None)
            base = images_offline.base_build_arg()
        finally:
            if old is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = old
        t1 = time.monotonic()
        _docker("build", "--network", "host", "-t", SERVICE_IMAGE,
                *(["--build-arg", f"BASE_IMAGE={base}"] if base else []), str(REPO), env=env)
        t2 = time.monotonic()
        _docker("save", "-o", str(dest), SERVICE_IMAGE, COLLECTOR_IMAGE, env=env)
    return {"images": [SERVICE_IMAGE, COLLECTOR_IMAGE], "bytes": dest.stat().st_size,
            "offline_images_s": round(t1 - t0, 1), "service_build_s": round(t2 - t1, 1),
            "seconds": round(time.monotonic() - t0, 1)}
