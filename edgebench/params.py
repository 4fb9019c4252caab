"""Run parameters, checked before anything starts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebench.scenarios import ParameterError, Scenario, parse_scenarios
from loadtests.spec import LoadSpec, check_load, check_url
from plumbing.checks import number

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

    def load(self) -> LoadSpec:
        """The load every scenario offers, typed (checked by build_params, not again)."""
        return LoadSpec(duration_s=self.duration_s, warmup_s=self.warmup_s, scrapers=self.scrapers,
                        scrape_rate=self.scrape_rate, sensor_users=self.users, sensor_rate=self.sensor_rate,
                        workers=self.workers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scenarios"] = [s.name for s in self.scenarios]
        d["results_root"] = str(self.results_root)
        return d


# The make variable (Makefile) each setting comes from: every refusal names the one the user sets.
MAKE_VARIABLES = {"duration_s": "DURATION", "warmup_s": "WARMUP", "sensor_users": "USERS",
                  "scrape_rate": "SCRAPE_RATE", "sensor_rate": "SENSOR_RATE", "workers": "WORKERS",
                  "repeats": "REPEATS", "target": "TARGET", "engine": "ENGINE", "scenarios": "SCENARIOS"}
ENGINES = ("auto", "native", "docker")


def build_params(duration=None, warmup=None, users=None, scenarios=None, repeats=None,
                 workers=None, target=None, engine="auto", results_root="results",
                 profile=False, scrape_rate=None, sensor_rate=None) -> RunParams:
    """The edge: every setting of a bench or profile run checked once, here, with one line
    naming its make variable; what returns is typed and is not checked again."""
    p = RunParams(profile=profile, results_root=Path(results_root))
    if profile:
        p.warmup_s = PROFILE_WARMUP_S

    def given(value, default):
        return default if value is None else value

    spec = check_load(MAKE_VARIABLES, duration_s=given(duration, p.duration_s), warmup_s=given(warmup, p.warmup_s),
                      scrapers=p.scrapers, scrape_rate=given(scrape_rate, p.scrape_rate),
                      sensor_users=given(users, p.users), sensor_rate=given(sensor_rate, p.sensor_rate),
                      workers=given(workers, p.workers))
    p.duration_s, p.warmup_s, p.users, p.workers = spec.duration_s, spec.warmup_s, spec.sensor_users, spec.workers
    p.scrape_rate, p.sensor_rate = spec.scrape_rate, spec.sensor_rate
    if repeats is not None:
        p.repeats = number(repeats, "REPEATS", whole=True, at_least=1, error=ParameterError,
                           fix="pass e.g. REPEATS=3")
    if engine not in ENGINES:
        raise ParameterError(f"ENGINE={engine!r} is unknown: use auto, native or docker")
    p.engine = engine
    p.target = check_url(target, "TARGET") if target else None
    p.scenarios = parse_scenarios(scenarios)
    return p
