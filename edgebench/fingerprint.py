"""The machine and versions a result was measured on: figures without them prove little."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("flask", "prometheus_client", "waitress", "locust", "py-spy",
            "memory-profiler", "pandas", "matplotlib", "psutil")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cgroup_version() -> int | None:
    """The cgroup version of this machine (plumbing.cgroup_counters decides, for every package)."""
    from plumbing.cgroup_counters import detect_version
    return detect_version()


def _binary_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _os_package_version(name: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_fingerprint() -> dict:
    """What makes two results comparable: hardware, kernel, cgroups, versions."""
    mem_total = None
    try:
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "mem_total_bytes": mem_total,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cgroup_version": cgroup_version(),
        "python": platform.python_version(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "os_packages": {name: _os_package_version(name)
                        for name in ("victoria-metrics", "prometheus")},
    }


def comparable_key(fp: dict) -> dict:
    """The part of a fingerprint that must match for an A/B to be honest."""
    return {k: fp.get(k) for k in ("cpu_model", "cores", "kernel", "cgroup_version", "python")}
