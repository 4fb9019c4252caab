"""Run parameters, checked before anything starts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebench.scenarios import ParameterError, Scenario, parse_scenarios

# Profile runs trace one warm-up scrape, seconds slower for the baseline at 0.5 CPU:
# the warm-up must hold it, so that no figure does.
PROFILE_WARMUP_S = 15.0


@dataclass
class RunParams:
    duration_s: float = 40.0      # steady load per scenario
    warmup_s: float = 8.0         # excluded from every figure
    # Scrape-heavy, like the robot's traffic: 4 scrapes/s and 4 sensor reads/s in all.
    users: int = 2                # sensor clients
    sensor_rate: float = 2.0      # requests/s per sensor client
    scrapers: int = 2             # /metrics scrapers (besides the collector's own scrapes)
    scrape_rate: float = 2.0      # scrapes/s per scraper
    repeats: int = 1
    workers: int = 0              # Locust worker processes (0: one local process)
    target: str | None = None     # benchmark an external service instead of the stack
    engine: str = "auto"
    scenarios: list[Scenario] = field(default_factory=list)
    results_root: Path = Path("results")
    profile: bool = False
    tracemalloc: bool = True       # with profile: one traced scrape's allocation sites
    pyspy_rate: int = 100          # with profile: py-spy samples per second

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scenarios"] = [s.name for s in self.scenarios]
        d["results_root"] = str(self.results_root)
        return d


def _number(name: str, value, kind=float, minimum=0.0, strict=False):
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={value!r} is not a number: pass e.g. {name}=30") from None
    if v < minimum or (strict and v == minimum):
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        raise ParameterError(f"{name}={value} must be {bound}")
    return v


def build_params(duration=None, warmup=None, users=None, scenarios=None, repeats=None,
                 workers=None, target=None, engine="auto", results_root="results",
                 profile=False, scrape_rate=None, sensor_rate=None) -> RunParams:
    p = RunParams(profile=profile, results_root=Path(results_root))
    if profile:
        p.warmup_s = PROFILE_WARMUP_S
    if duration is not None:
        p.duration_s = _number("DURATION", duration, minimum=0, strict=True)
    if warmup is not None:
        p.warmup_s = _number("WARMUP", warmup, minimum=0)
    if users is not None:
        p.users = _number("USERS", users, kind=int, minimum=0)
    if repeats is not None:
        p.repeats = _number("REPEATS", repeats, kind=int, minimum=1)
    if workers is not None:
        p.workers = _number("WORKERS", workers, kind=int, minimum=0)
    if scrape_rate is not None:
        p.scrape_rate = _number("SCRAPE_RATE", scrape_rate, minimum=0, strict=True)
    if sensor_rate is not None:
        p.sensor_rate = _number("SENSOR_RATE", sensor_rate, minimum=0, strict=True)
    if engine not in ("auto", "native", "docker"):
        raise ParameterError(f"ENGINE={engine!r} is unknown: use auto, native or docker")
    p.engine = engine
    p.target = target or None
    if p.target and not p.target.startswith(("http://", "https://")):
        raise ParameterError(f"TARGET={target!r} is not a URL: pass e.g. TARGET=http://robot.local:8000")
    p.scenarios = parse_scenarios(scenarios)
    return p
