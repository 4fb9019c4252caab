"""SENSOR_EXTRA_SERIES=N: N more labelled sensor series in the exposition.

The capacity sweep (edgebench/capacity/series.py) asks how the service's cost grows
with the number of series it exposes, so the series must cost what a real exporter's
do: one `sensor_reading` gauge family with a prometheus_client child per sensor (the
client's own per-series structures, lock included), rendered by the exposition path
each variant already uses. Label values follow from the index alone, so a given N
exposes the same label sets, in the same order, on every run; the values come from a
private random generator seeded with SENSOR_SEED (the /sensor draws keep their own
sequence). A /sensor request moves one series' value, round robin: never a loop over
all N outside the exposition itself.
"""

import itertools
import random

from prometheus_client import REGISTRY, Gauge

NAME = "sensor_reading"
DOCUMENTATION = "Latest reading of each extra simulated sensor (SENSOR_EXTRA_SERIES), in the unit its unit label names."
LABEL_NAMES = ("sensor", "kind", "zone", "unit")
# kind, unit, plausible range, decimals the sensor reports
KINDS = (("temperature", "C", 18.0, 30.0, 2),
         ("humidity", "percent", 20.0, 80.0, 1),
         ("pressure", "hPa", 980.0, 1040.0, 1),
         ("voltage", "V", 11.2, 12.9, 3),
         ("current", "A", 0.05, 4.5, 3),
         ("vibration", "mm/s", 0.0, 12.0, 2),
         ("illuminance", "lx", 0.0, 1200.0, 0),
         ("co2", "ppm", 400.0, 1600.0, 0))
ZONE_NAMES = tuple(f"zone-{z:02d}" for z in range(24))   # one string each, shared by its sensors


def _mix(index: int) -> int:
    """A fixed scramble of the index (Knuth's multiplicative hash): neighbouring sensors
    get different kinds and zones, identically on every run."""
    return (index * 2654435761) & 0xFFFFFFFF


def kind_of(index: int) -> tuple:
    return KINDS[(_mix(index) >> 8) % len(KINDS)]


def label_values(index: int) -> tuple:
    """(sensor, kind, zone, unit) of series `index`; distinct for every index."""
    kind, unit, _, _, _ = kind_of(index)
    return f"s{index:06d}", kind, ZONE_NAMES[(_mix(index) >> 16) % len(ZONE_NAMES)], unit


def draw(rng: random.Random, index: int) -> float:
    _, _, low, high, decimals = kind_of(index)
    return round(rng.uniform(low, high), decimals)


class ExtraSeries:
    """The registered family, its children in index order, and the value generator."""

    def __init__(self, count: int, seed: int | None, registry=REGISTRY):
        self.registry = registry
        self.rng = random.Random(seed)
        self.gauge = Gauge(NAME, DOCUMENTATION, LABEL_NAMES, registry=registry)
        self.children = []
        for index in range(count):
            child = self.gauge.labels(*label_values(index))
            child.set(draw(self.rng, index))
            self.children.append(child)
        self.cursor = itertools.count()   # next() is atomic under the GIL: threads share it

    def move_one(self):
        """A /sensor request: one series takes a new reading."""
        index = next(self.cursor) % len(self.children)
        self.children[index].set(draw(self.rng, index))

    def remove(self):
        self.registry.unregister(self.gauge)


_installed: ExtraSeries | None = None


def install(count: int, seed: int | None) -> ExtraSeries | None:
    """Register `count` extra series in the default registry (none for 0); replaces an
    earlier install, so an app built twice in one process exposes them once."""
    global _installed
    if _installed is not None:
        _installed.remove()
        _installed = None
    if count > 0:
        _installed = ExtraSeries(count, seed)
    return _installed


def move_one():
    """Called per /sensor request; nothing when the knob is off."""
    if _installed is not None:
        _installed.move_one()
