"""The capacity sweeps' parameters, checked before anything starts, and the time estimate."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebench.scenarios import ParameterError
from plumbing.checks import number

SWEEPS = ("load", "series")
VARIANTS = ("baseline", "optimized")

# Offered scrapes/s per variant, doubling; each ladder stops at its first step that misses
# the scrape SLO. The baseline burns ~0.12 s of CPU per scrape (at most ~4/s in 0.5 CPU).
SCRAPE_LADDERS = {"baseline": (1.0, 2.0, 4.0), "optimized": (50.0, 100.0, 200.0, 400.0, 800.0)}
# The second axis: /sensor requests/s beside 1 scrape/s, a rate both variants sustain
# (the baseline misses scrapes at 4/s beside the default sensor load).
SENSOR_LADDERS = {"baseline": (4.0, 16.0, 64.0, 256.0, 1024.0), "optimized": (4.0, 16.0, 64.0, 256.0, 1024.0)}
SENSOR_AXIS_SCRAPE_RATE = 1.0
DEFAULT_SENSOR_RATE = 4.0     # beside the scrape axis: the default bench's sensor load
SERIES_LADDER = (10, 100, 1_000, 3_000, 10_000, 20_000, 30_000, 100_000, 200_000, 1_000_000)
# The service was OOM-killed at 20,000 series in 50 MB: 200,000 bounds the default
# run's worst case (every ladder to its end).
DEFAULT_MAX_SERIES = 200_000
# One Locust process spends 0.37-0.45 ms of CPU per request here (loadgen_cpu_s_per_request
# at 400-800 scrapes/s): a core offers ~2,200 requests/s; a third of it is left to the
# service and the collector on a 2-core machine. A step above this measures Locust.
LOADGEN_MAX_RPS = 1500.0

# Seconds per step for the estimate, beyond the warm-up and window (measured here: stack
# start and teardown, cool-down, the figures; the series step also queries its collector).
STEP_OVERHEAD_S = 4.0
SERIES_QUERY_S = 3.0


def _rates(text: str, name: str) -> tuple[float, ...]:
    parts = [p for p in str(text).replace(",", " ").split() if p]
    if not parts:
        raise ParameterError(f"{name}={text!r} is an empty step list: pass rates, e.g. {name}='50,100,200'")
    out = [number(p, name, above=0, unit="requests/s", what="a rate", error=ParameterError,
                  fix=f"pass rates above 0, e.g. {name}='50,100,200'") for p in parts]
    return tuple(sorted(set(out)))


def _choose(text: str, name: str, allowed: tuple, example: str = "") -> tuple:
    chosen = tuple(x for x in str(text).replace(",", " ").split() if x)
    if not chosen or any(x not in allowed for x in chosen):
        raise ParameterError(f"{name}={text!r}: choose from {', '.join(allowed)}{example}")
    return chosen


def _check_offerable(rates: tuple, beside: float, name: str, unit: str) -> None:
    """A step the load generator cannot offer would measure Locust, not the service."""
    for rate in rates:
        if rate + beside > LOADGEN_MAX_RPS:
            raise ParameterError(f"{name}: {rate:g} {unit} is more than the load generator can offer here "
                                 f"(about {LOADGEN_MAX_RPS:g} requests/s); pass lower rates")


@dataclass
class CapacityParams:
    sweeps: tuple = SWEEPS
    variants: tuple = VARIANTS
    scrape_steps: dict = field(default_factory=lambda: dict(SCRAPE_LADDERS))
    sensor_steps: dict = field(default_factory=lambda: dict(SENSOR_LADDERS))
    max_series: int = DEFAULT_MAX_SERIES
    duration_s: float = 8.0       # steady window of a load or series step
    warmup_s: float = 2.0
    series_scrape_rate: float = 1.0   # the series sweep's scrape-only load
    engine: str = "auto"
    results_root: Path = Path("results")

    @property
    def series_steps(self) -> tuple:
        return tuple(n for n in SERIES_LADDER if n < self.max_series) + (self.max_series,)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["results_root"] = str(self.results_root)
        d["series_steps"] = list(self.series_steps)
        return d

    def planned_steps(self) -> dict:
        """Steps per sweep if no ladder stops early (each stops at its first failing step)."""
        n = {"load": 0, "series": 0}
        if "load" in self.sweeps:
            n["load"] = sum(len(self.scrape_steps[v]) + len(self.sensor_steps[v]) for v in self.variants)
        if "series" in self.sweeps:
            n["series"] = len(self.series_steps)
        return n

    def step_seconds(self, sweep: str) -> float:
        extra = SERIES_QUERY_S if sweep == "series" else 0.0
        return STEP_OVERHEAD_S + extra + self.warmup_s + self.duration_s

    def estimate_s(self) -> float:
        """The longest the run can take: every step of every ladder."""
        return sum(k * self.step_seconds(s) for s, k in self.planned_steps().items())


def build_capacity_params(sweeps=None, steps=None, sensor_steps=None, max_series=None,
                          variants=None, duration=None, engine="auto",
                          results_root="results") -> CapacityParams:
    """Parse and check everything a capacity run needs; refuse with one line."""
    p = CapacityParams(engine=engine, results_root=Path(results_root))
    if sweeps:
        p.sweeps = _choose(sweeps, "SWEEPS", SWEEPS, ", e.g. SWEEPS=load,series")
    if variants:
        p.variants = _choose(variants, "VARIANTS", VARIANTS)
    if steps is not None:
        rates = _rates(steps, "STEPS")
        p.scrape_steps = {v: rates for v in VARIANTS}
    if sensor_steps is not None:
        rates = _rates(sensor_steps, "SENSOR_STEPS")
        p.sensor_steps = {v: rates for v in VARIANTS}
    for v in p.variants:
        _check_offerable(p.scrape_steps[v], DEFAULT_SENSOR_RATE, "STEPS", "scrapes/s")
        _check_offerable(p.sensor_steps[v], SENSOR_AXIS_SCRAPE_RATE, "SENSOR_STEPS", "requests/s")
    if duration is not None:
        p.duration_s = number(duration, "DURATION", at_least=2, unit="s", error=ParameterError,
                              fix="a step needs at least 2 s of steady load, e.g. DURATION=8")
    if max_series is not None:
        p.max_series = number(max_series, "MAX_SERIES", whole=True, at_least=10, error=ParameterError,
                              fix="pass at least 10 series, e.g. MAX_SERIES=100000")
    return p
