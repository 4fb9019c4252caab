"""Start-up settings: CLI flags over SENSOR_* environment variables.

Kept free of Flask imports so bad input fails fast, with one line that names
the setting and the fix (edgebench's rule for bad input).
"""

import argparse
import os
from dataclasses import dataclass

from plumbing.checks import number
from plumbing.errors import EdgebenchError
from service import VARIANTS


class ConfigError(EdgebenchError):
    """A bad setting; str(error) is the one line printed on stderr."""


@dataclass(frozen=True)
class Config:
    variant: str = "optimized"
    host: str = "127.0.0.1"
    port: int = 8000
    extra_cpu_iterations: int = 0
    extra_cpu_ms: float = 0.0
    leak_bytes_per_scrape: int = 0
    extra_sensor_cpu_ms: float = 0.0   # fault knob: thread CPU spun per /sensor request
    tracemalloc: bool = False
    extra_series: int = 0     # SENSOR_EXTRA_SERIES: labelled sensor series added to /metrics
    seed: int | None = None   # SENSOR_SEED: the same sequence of simulated outcomes every run
    limits: tuple = ()        # SENSOR_MAX_* / SENSOR_*_TIMEOUT_S overrides: (field, value) pairs

    @property
    def server(self) -> str:
        """The HTTP server each variant runs under (see docs/service.md)."""
        return "werkzeug" if self.variant == "baseline" else "lean"

    @property
    def server_limits(self):
        """The lean server's limits: defaults with the SENSOR_* overrides applied."""
        from service.lean_server import Limits
        return Limits(**dict(self.limits))

    def describe(self) -> str:
        return (f"variant={self.variant} server={self.server} listen={self.host}:{self.port} "
                f"extra_cpu_iterations={self.extra_cpu_iterations} "
                f"extra_cpu_ms={self.extra_cpu_ms:g} "
                f"leak_bytes_per_scrape={self.leak_bytes_per_scrape} "
                f"extra_sensor_cpu_ms={self.extra_sensor_cpu_ms:g} "
                f"tracemalloc={'on' if self.tracemalloc else 'off'} "
                f"extra_series={self.extra_series} "
                f"seed={self.seed if self.seed is not None else 'random'}"
                + "".join(f" {name}={value:g}" for name, value in self.limits))


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; we want a single line."""

    def error(self, message):
        raise ConfigError(f"bad command line: {message}; see `python -m service --help`")


def _parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="python -m service", description="edgebench sensor service")
    p.add_argument("--variant", help="baseline | optimized (env SENSOR_VARIANT, default optimized)")
    p.add_argument("--host", help="listen address (env SENSOR_HOST, default 127.0.0.1)")
    p.add_argument("--port", help="listen port (env SENSOR_PORT, default 8000)")
    p.add_argument("--extra-cpu-iterations",
                   help="fault knob: extra loop iterations per /metrics scrape "
                        "(env SENSOR_EXTRA_CPU_ITERATIONS, default 0)")
    p.add_argument("--extra-cpu-ms",
                   help="fault knob: milliseconds of thread CPU time spun per /metrics scrape "
                        "(env SENSOR_EXTRA_CPU_MS, default 0)")
    p.add_argument("--leak-bytes-per-scrape",
                   help="fault knob: bytes kept forever per /metrics scrape "
                        "(env SENSOR_LEAK_BYTES_PER_SCRAPE, default 0)")
    p.add_argument("--extra-sensor-cpu-ms",
                   help="fault knob: milliseconds of thread CPU time spun per /sensor request "
                        "(env SENSOR_EXTRA_SENSOR_CPU_MS, default 0)")
    p.add_argument("--extra-series",
                   help="capacity knob: N more labelled sensor series in /metrics "
                        "(env SENSOR_EXTRA_SERIES, default 0)")
    p.add_argument("--tracemalloc", action="store_true", default=None,
                   help="profile mode: POST /debug/tracemalloc/scrape arms tracemalloc for "
                        "the next /metrics scrape only (env SENSOR_TRACEMALLOC=1)")
    return p


def _pick(cli_value, flag, environ, env_name, default):
    """Return (raw value, name of the setting it came from)."""
    if cli_value is not None:
        return cli_value, flag
    if environ.get(env_name, "") != "":
        return environ[env_name], env_name
    return default, env_name


OFF = "(0 turns it off)"


def _non_negative_int(raw, name) -> int:
    return number(raw, name, whole=True, at_least=0, fix=f"set it to an integer >= 0 {OFF}", error=ConfigError)


def _non_negative_float(raw, name) -> float:
    return number(raw, name, at_least=0, fix=f"set it to a number >= 0, e.g. 0.5 {OFF}", error=ConfigError)


# server limits: setting -> (Limits field, whole number?); defaults in service/lean_server.Limits
LIMIT_SETTINGS = {"SENSOR_MAX_HEADER_BYTES": ("max_header_bytes", True),
                  "SENSOR_MAX_BODY_BYTES": ("max_body_bytes", True),
                  "SENSOR_IDLE_TIMEOUT_S": ("idle_timeout_s", False),
                  "SENSOR_REQUEST_TIMEOUT_S": ("request_timeout_s", False),
                  "SENSOR_SEND_TIMEOUT_S": ("send_timeout_s", False),
                  "SENSOR_MAX_CONNECTIONS": ("max_connections", True)}


def _limits(environ) -> tuple:
    found = []
    for env_name, (field, whole) in LIMIT_SETTINGS.items():
        raw = environ.get(env_name, "").strip()
        if not raw:
            continue
        value = number(raw, env_name, whole=whole, above=0, error=ConfigError,
                       fix="set it to a positive number or leave it unset for the default (docs/service.md)")
        found.append((field, value))
    return tuple(found)


def parse_config(argv=None, environ=None) -> Config:
    """Build a Config from argv and environ; raise ConfigError on any bad setting."""
    environ = os.environ if environ is None else environ
    args = _parser().parse_args(argv)

    variant, name = _pick(args.variant, "--variant", environ, "SENSOR_VARIANT", "optimized")
    variant = variant.strip().lower()
    if variant not in VARIANTS:
        raise ConfigError(f"{name}={variant!r} is not a known variant; use one of: "
                          f"{', '.join(VARIANTS)}")

    host, _ = _pick(args.host, "--host", environ, "SENSOR_HOST", "127.0.0.1")

    raw_port, name = _pick(args.port, "--port", environ, "SENSOR_PORT", "8000")
    port = number(raw_port, name, whole=True, at_least=1, at_most=65535, error=ConfigError,
                  fix="use a port number from 1 to 65535, e.g. 8000")

    raw, name = _pick(args.extra_cpu_iterations, "--extra-cpu-iterations", environ,
                      "SENSOR_EXTRA_CPU_ITERATIONS", "0")
    extra = _non_negative_int(raw, name)
    raw, name = _pick(args.extra_cpu_ms, "--extra-cpu-ms", environ, "SENSOR_EXTRA_CPU_MS", "0")
    extra_ms = _non_negative_float(raw, name)
    raw, name = _pick(args.leak_bytes_per_scrape, "--leak-bytes-per-scrape", environ,
                      "SENSOR_LEAK_BYTES_PER_SCRAPE", "0")
    leak = _non_negative_int(raw, name)
    raw, name = _pick(args.extra_sensor_cpu_ms, "--extra-sensor-cpu-ms", environ,
                      "SENSOR_EXTRA_SENSOR_CPU_MS", "0")
    extra_sensor_ms = _non_negative_float(raw, name)
    raw, name = _pick(args.extra_series, "--extra-series", environ, "SENSOR_EXTRA_SERIES", "0")
    extra_series = _non_negative_int(raw, name)

    if args.tracemalloc:
        tm = True
    else:
        raw = environ.get("SENSOR_TRACEMALLOC", "").strip().lower()
        if raw not in ("", "0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ConfigError(f"SENSOR_TRACEMALLOC={raw!r} is not a switch; set it to 1 (on) or 0 (off)")
        tm = raw in ("1", "true", "yes", "on")

    raw = environ.get("SENSOR_SEED", "").strip()
    seed = number(raw, "SENSOR_SEED", whole=True, at_least=0, error=ConfigError,
                  fix="set it to an integer >= 0 or leave it unset for fresh randomness") if raw else None

    return Config(variant=variant, host=host, port=port, extra_cpu_iterations=extra,
                  extra_cpu_ms=extra_ms, leak_bytes_per_scrape=leak,
                  extra_sensor_cpu_ms=extra_sensor_ms, tracemalloc=tm,
                  extra_series=extra_series, seed=seed,
                  limits=_limits(environ))
