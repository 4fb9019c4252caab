"""The deliberate costs, each in its own named function so py-spy and
tracemalloc point straight at it.

``burn_cpu`` and ``copy_data_blob`` are the original service's bugs (baseline
only); ``injected_cpu_work``, ``injected_cpu_time`` and ``injected_leak`` are
fault-injection knobs (both variants, off by default) used to prove the gate
catches regressions.
"""

import functools
import time

DATA_BLOB_CHAR = "X"
DATA_BLOB_SIZE = 5_000_000   # the original 5 MB module-level payload: "X" * 5_000_000

BASELINE_CPU_ITERATIONS = 2_000_000

_leaked = []  # grows forever when SENSOR_LEAK_BYTES_PER_SCRAPE > 0


def burn_cpu(iterations=BASELINE_CPU_ITERATIONS):
    """Original bug: a pure-Python loop on every /metrics scrape."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


@functools.cache
def data_blob_text() -> str:
    """The payload as the original held it, a 5 MB str (baseline only: built on first use,
    so the optimized variant never carries it)."""
    return DATA_BLOB_CHAR * DATA_BLOB_SIZE


@functools.cache
def data_blob_bytes() -> bytes:
    """The payload encoded once, for answers served without re-encoding it (optimized)."""
    return DATA_BLOB_CHAR.encode("ascii") * DATA_BLOB_SIZE


def copy_data_blob():
    """Original bug: a real 5 MB copy of data_blob (str slicing would not copy)."""
    data_blob = data_blob_text()
    return "".join((data_blob, ""))


def copy_data_blob_per_scrape(times):
    """Holds `times` copies at once, as the original temporary list did."""
    return [copy_data_blob() for _ in range(times)]


def injected_cpu_work(iterations):
    """Fault knob SENSOR_EXTRA_CPU_ITERATIONS: extra loop work per scrape."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def injected_cpu_time(milliseconds):
    """Fault knobs SENSOR_EXTRA_CPU_MS (per scrape) and SENSOR_EXTRA_SENSOR_CPU_MS (per
    /sensor request): spin until this thread has used that much CPU.

    Measured on the thread's own CPU clock, so the cost per scrape is the same on a
    fast or a slow machine and under any CPU limit (throttling stretches wall time,
    not thread time); the gate calibrates against it.
    """
    deadline = time.thread_time() + milliseconds / 1000.0
    spins = 0
    while time.thread_time() < deadline:
        spins += 1
    return spins


def injected_leak(nbytes):
    """Fault knob SENSOR_LEAK_BYTES_PER_SCRAPE: bytes kept forever per scrape.

    b"L" * n writes every page, so the leak shows up in RSS (bytes(n) would
    get untouched zero pages from calloc and stay invisible).
    """
    _leaked.append(b"L" * nbytes)
    return len(_leaked)
