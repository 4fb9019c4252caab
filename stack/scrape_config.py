"""The collectors' scrape config (stack/scrape.yml): checked before a collector starts.

VictoriaMetrics and Prometheus would refuse a broken file only after they started, in their
own logs; here a malformed file, a missing field or a duration without its unit is one
line naming the file, the field and the fix. ``scrape_settings`` gives the scrape interval
and timeout to whoever needs them, so no figure copies them by hand.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plumbing.durations import parse_duration
from plumbing.errors import EdgebenchError


class ScrapeConfigError(EdgebenchError):
    """A scrape config that cannot be used; one line: file, field, problem, fix."""

    def __init__(self, file, field: str | None, problem: str, fix: str):
        where = f"{file}: {field}" if field else str(file)
        super().__init__(" ".join(f"{where}: {problem}; fix: {fix}".split()))


@dataclass(frozen=True)
class ScrapeSettings:
    interval_s: float
    timeout_s: float
    jobs: tuple[str, ...]


def scrape_settings(path: str | os.PathLike) -> ScrapeSettings:
    """Parse and check ``path``; the global interval/timeout and the job names."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScrapeConfigError(path, None, f"cannot read the file ({e.strerror})",
                                "pass the path of an existing scrape config") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ScrapeConfigError(path, None, f"invalid YAML{where}: {getattr(e, 'problem', None) or e}",
                                "correct the YAML syntax there") from None
    if not isinstance(doc, dict):
        raise ScrapeConfigError(path, None, "not a mapping", "write 'global:' and 'scrape_configs:' sections")
    glob = doc.get("global") or {}
    if not isinstance(glob, dict):
        raise ScrapeConfigError(path, "global", "is not a mapping", "write 'global: {scrape_interval: 5s}'")

    def duration(where: str, value: Any, default: float) -> float:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as e:
            raise ScrapeConfigError(path, where, str(e), "write a duration with its unit, e.g. 5s or 1m") from None

    interval = duration("global.scrape_interval", glob.get("scrape_interval"), 60.0)
    timeout = duration("global.scrape_timeout", glob.get("scrape_timeout"), min(10.0, interval))
    if timeout > interval:
        raise ScrapeConfigError(path, "global.scrape_timeout", f"{glob.get('scrape_timeout')} is longer than "
                                f"the scrape interval {glob.get('scrape_interval')}",
                                "make scrape_timeout at most scrape_interval")
    jobs = doc.get("scrape_configs")
    if not isinstance(jobs, list) or not jobs:
        raise ScrapeConfigError(path, "scrape_configs", "missing or not a list",
                                "add 'scrape_configs:' with at least one job")
    names = []
    for i, job in enumerate(jobs):
        where = f"scrape_configs[{i}]"
        if not isinstance(job, dict) or not isinstance(job.get("job_name"), str) or not job["job_name"]:
            raise ScrapeConfigError(path, f"{where}.job_name", "missing", "give every job a 'job_name'")
        ji = duration(f"{where}.scrape_interval", job.get("scrape_interval"), interval)
        jt = duration(f"{where}.scrape_timeout", job.get("scrape_timeout"), min(timeout, ji))
        if jt > ji:
            raise ScrapeConfigError(path, f"{where}.scrape_timeout", "is longer than the job's scrape interval",
                                    "make scrape_timeout at most scrape_interval")
        for k, sc in enumerate(job.get("static_configs") or []):
            targets = sc.get("targets") if isinstance(sc, dict) else None
            if not isinstance(targets, list) or not all(
                    isinstance(t, str) and re.fullmatch(r"[\w.-]+:\d+", t) for t in targets):
                raise ScrapeConfigError(path, f"{where}.static_configs[{k}].targets",
                                        f"{targets!r} is not a list of host:port",
                                        'write targets: ["sensor-service:8000"]')
        names.append(job["job_name"])
    return ScrapeSettings(interval, timeout, tuple(names))
