"""What one load run offers, typed and checked once where the user set it.

The edges (``edgebench bench``'s make variables, ``edgebench load``'s flags) call
:func:`check_load` with the names their user types; :func:`loadtests.runner.run_load`
takes the resulting :class:`LoadSpec` and does not check it again.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import asdict, dataclass

from plumbing.checks import number
from plumbing.errors import EdgebenchError


class LoadError(EdgebenchError):
    """A load run could not be started or its parameters are wrong (one-line message)."""


@dataclass(frozen=True)
class LoadSpec:
    """The offered traffic: ``scrapers`` users GET /metrics at ``scrape_rate``/s each,
    ``sensor_users`` GET /sensor at ``sensor_rate``/s each, for ``warmup_s`` (excluded
    from every figure) then ``duration_s`` steady seconds. ``workers`` > 0 runs Locust's
    master with that many worker processes."""

    duration_s: float
    warmup_s: float = 0.0
    scrapers: int = 1
    scrape_rate: float = 1.0
    sensor_users: int = 1
    sensor_rate: float = 5.0
    workers: int = 0
    request_timeout: float = 10.0   # per request, seconds (like a collector's scrape_timeout)

    @property
    def users(self) -> int:
        return self.scrapers + self.sensor_users

    @property
    def run_time_s(self) -> float:
        """Warm-up and steady window: when the users' schedules end after the test start."""
        return self.warmup_s + self.duration_s

    def to_dict(self) -> dict:
        return asdict(self)


# How `edgebench load` names each setting (edgebench.params names the make variables).
FLAGS = {"target": "--target", "duration_s": "--duration", "warmup_s": "--warmup", "scrapers": "--scrapers",
         "scrape_rate": "--scrape-rate", "sensor_users": "--sensor-users", "sensor_rate": "--sensor-rate",
         "workers": "--workers", "request_timeout": "--request-timeout"}


def example(name: str, value) -> str:
    """How the user sets ``name`` to ``value``: ``SCRAPE_RATE=2`` or ``--scrape-rate 2``."""
    return f"{name} {value}" if name.startswith("-") else f"{name}={value}"


def check_url(raw, name: str) -> str:
    """An http(s) URL with a host, else one line naming the setting."""
    parsed = urllib.parse.urlparse(str(raw or ""))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise LoadError(f"{name}={raw!r} is not an http(s) URL: pass e.g. "
                        f"{example(name, 'http://robot.local:8000')}")
    return str(raw)


def check_load(names: dict, duration_s, warmup_s=0.0, scrapers=1, scrape_rate=1.0, sensor_users=1,
               sensor_rate=5.0, workers=0, request_timeout=10.0) -> LoadSpec:
    """The one check of a load's parameters: raw values (text from a command line, or
    numbers) to a typed LoadSpec, or one line naming the setting as the user set it
    (``names``: field -> make variable or flag; a field missing from it is named as is)."""
    def n(field, raw, **bounds):
        name = names.get(field) or field
        return number(raw, name, error=LoadError, **bounds)

    spec = LoadSpec(
        duration_s=n("duration_s", duration_s, above=0, unit="s",
                     fix=f"pass e.g. {example(names.get('duration_s') or 'duration_s', 30)}"),
        warmup_s=n("warmup_s", warmup_s, at_least=0, unit="s",
                   fix=f"pass e.g. {example(names.get('warmup_s') or 'warmup_s', 5)}"),
        scrapers=n("scrapers", scrapers, whole=True, at_least=0),
        scrape_rate=_unused_rate(scrape_rate) if not _rate_used(scrapers) else
        n("scrape_rate", scrape_rate, above=0, unit="scrapes/s per scraper",
          fix=f"pass e.g. {example(names.get('scrape_rate') or 'scrape_rate', 1)} (1 = a 1 s interval)"),
        sensor_users=n("sensor_users", sensor_users, whole=True, at_least=0),
        sensor_rate=_unused_rate(sensor_rate) if not _rate_used(sensor_users) else
        n("sensor_rate", sensor_rate, above=0, unit="requests/s per sensor client"),
        workers=n("workers", workers, whole=True, at_least=0),
        request_timeout=n("request_timeout", request_timeout, above=0, unit="s"),
    )
    if spec.users == 0:
        who = " and ".join(f"{names.get(f) or f}=0" for f in ("scrapers", "sensor_users") if f in names) or "no users"
        raise LoadError(f"{who}: at least one user is needed, e.g. "
                        f"{example(names.get('sensor_users') or 'sensor_users', 4)}")
    if spec.workers > spec.users:
        name = names.get("workers") or "workers"
        raise LoadError(f"{name}={spec.workers} exceeds the {spec.users} load users ({spec.scrapers} scrapers, "
                        f"{spec.sensor_users} sensor clients): use at most one worker per user, "
                        f"e.g. {example(name, spec.users)}")
    return spec


def _rate_used(count) -> bool:
    """A rate is checked only for users that exist (a scraper-free load needs no scrape rate)."""
    try:
        return float(str(count).strip()) != 0
    except ValueError:
        return True   # the count itself is refused first


def _unused_rate(raw) -> float:
    """The rate of a class with no users, kept for the record as given (1.0 if unreadable)."""
    try:
        return number(raw, "rate", above=0)
    except EdgebenchError:
        return 1.0
