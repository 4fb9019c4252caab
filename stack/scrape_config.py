"""The collectors' scrape config (stack/scrape.yml): checked before a collector starts.

VictoriaMetrics and Prometheus would refuse a broken file only after they started, in their
own logs; here a malformed file, a missing field, an unknown key or a duration without its
unit is one line naming the file, the field and the fix (:class:`ScrapeFile` is the subset
of the Prometheus config edgebench runs with). :func:`load_scrape` is the one reader, and its
model writes back as the file would (``model_dump(by_alias=True, exclude_unset=True)``);
``scrape_settings`` gives the scrape interval and timeout to whoever needs them, so no
figure copies them by hand.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StringConstraints

from plumbing.durations import parse_duration
from plumbing.errors import EdgebenchError
from plumbing.schema import Model, load_model


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


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ValueError(f"{e}: write a duration with its unit, e.g. 5s or 1m") from None


def _target(value: str) -> str:
    if not re.fullmatch(r"[\w.-]+:\d+", value):
        raise ValueError(f"{value!r} is not host:port: write e.g. sensor-service:8000")
    return value


def _written(seconds: float) -> str:
    """Seconds as Prometheus writes a duration (whole units only): 5 -> '5s', 1.5 -> '1500ms'."""
    return f"{seconds:.0f}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(_duration), PlainSerializer(_written)]
Target = Annotated[str, AfterValidator(_target)]


class _Global(Model):
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    evaluation_interval: Duration | None = None     # Prometheus' own; VictoriaMetrics skips it


class _StaticConfig(Model):
    targets: list[Target]
    labels: dict[str, str] = {}


class _Job(Model):
    job_name: Annotated[str, StringConstraints(min_length=1)]
    metrics_path: str = "/metrics"
    scheme: Literal["http", "https"] = "http"
    params: dict[str, list[str]] = {}
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    honor_labels: bool = False
    static_configs: list[_StaticConfig] = []


class ScrapeFile(Model):
    """The part of the Prometheus scrape config both collectors run with; other keys are refused."""
    global_: _Global = Field(_Global(), alias="global")
    scrape_configs: Annotated[list[_Job], Field(min_length=1)]


def load_scrape(path: str | os.PathLike) -> ScrapeFile:
    """``path`` as the model: the one reader of a scrape config."""
    return load_model(path, ScrapeFile, lambda r: ScrapeConfigError(path, r.where or None, r.problem, r.fix),
                      needs="scrape_configs", shape_fix="add 'scrape_configs:' with at least one job",
                      missing_fix="pass the path of an existing scrape config")


def scrape_settings(path: str | os.PathLike) -> ScrapeSettings:
    """Parse and check ``path``; the global interval/timeout and the job names."""
    cfg = load_scrape(path)
    glob = cfg.global_
    interval = glob.scrape_interval if glob.scrape_interval is not None else 60.0
    timeout = glob.scrape_timeout if glob.scrape_timeout is not None else min(10.0, interval)
    if timeout > interval:
        raise ScrapeConfigError(path, "global.scrape_timeout", f"{timeout:g} s is longer than "
                                f"the scrape interval {interval:g} s",
                                "make scrape_timeout at most scrape_interval")
    for i, job in enumerate(cfg.scrape_configs):
        ji = job.scrape_interval if job.scrape_interval is not None else interval
        jt = job.scrape_timeout if job.scrape_timeout is not None else min(timeout, ji)
        if jt > ji:
            raise ScrapeConfigError(path, f"scrape_configs[{i}].scrape_timeout",
                                    "is longer than the job's scrape interval",
                                    "make scrape_timeout at most scrape_interval")
    return ScrapeSettings(interval, timeout, tuple(job.job_name for job in cfg.scrape_configs))
