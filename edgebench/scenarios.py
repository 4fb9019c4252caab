"""The scenarios a bench can run: which service variant, scraped by which collector."""
from __future__ import annotations

import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    variant: str          # service variant: baseline | optimized
    collector: str        # compose service name of the collector
    collector_kind: str   # victoriametrics | prometheus
    profiles: tuple = ()
    binary: str = ""

    @property
    def services(self) -> list[str]:
        return ["sensor-service", self.collector]

    def unavailable_reason(self) -> str | None:
        """Why this scenario cannot run on this machine, or None."""
        if self.binary and shutil.which(self.binary) is None:   # which() takes a full path too
            return f"{self.binary} is not installed (run: make os-packages)"
        return None


SCENARIOS = {
    s.name: s for s in (
        Scenario("baseline-vm", "baseline", "victoriametrics", "victoriametrics",
                 binary="/usr/bin/victoria-metrics"),
        Scenario("optimized-vm", "optimized", "victoriametrics", "victoriametrics",
                 binary="/usr/bin/victoria-metrics"),
        Scenario("optimized-prom", "optimized", "prometheus", "prometheus",
                 profiles=("prometheus",), binary="/usr/bin/prometheus"),
    )
}
DEFAULT_SCENARIOS = list(SCENARIOS)


from plumbing.errors import EdgebenchError  # noqa: E402 - the one refusal base


class ParameterError(EdgebenchError, ValueError):
    """A bad command-line parameter; the message is the one line the user sees."""


def parse_scenarios(text: str | None) -> list[Scenario]:
    names = [n.strip() for n in (text or "").replace(",", " ").split() if n.strip()]
    if not names:
        names = DEFAULT_SCENARIOS
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ParameterError(
            f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)} "
            f"(e.g. SCENARIOS='baseline-vm optimized-vm')")
    return [SCENARIOS[n] for n in names]


def interleave(scenarios: list[Scenario], repeats: int) -> list[tuple[Scenario, int]]:
    """A B A B ordering, so that repeated scenarios are compared side by side in time."""
    return [(s, r) for r in range(1, repeats + 1) for s in scenarios]
