"""The default process metrics at a lower cost per scrape (optimized variant).

prometheus_client's ProcessCollector opens /proc/self/stat, /proc/self/limits and
lists /proc/self/fd on every scrape, and recomputes the start time each time. Here
the constant parts (start time, clock ticks, page size) are read once; a scrape reads
/proc/self/stat once, takes the fd limit from getrlimit (the soft limit, the value
/proc/self/limits shows) and still counts the open descriptors, so the six series keep
their names, help texts, types and values. docs/service.md has the measurement."""

import os
import resource

from prometheus_client import PROCESS_COLLECTOR, REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

STAT = "/proc/self/stat"
FD_DIR = "/proc/self/fd"


def boot_time() -> float:
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime line in /proc/stat")


class LeanProcessCollector(Collector):
    """process_* metrics as ProcessCollector gives them, constant parts read once."""

    def __init__(self):
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.pagesize = resource.getpagesize()
        fields = self._stat_fields()
        self.start_time = float(fields[19]) / self.ticks + boot_time()

    @staticmethod
    def _stat_fields():
        with open(STAT, "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()

    def collect(self):
        fields = self._stat_fields()
        soft_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return [
            GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              value=float(fields[20])),
            GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes.",
                              value=float(fields[21]) * self.pagesize),
            GaugeMetricFamily("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              value=self.start_time),
            CounterMetricFamily("process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds.",
                                value=(float(fields[11]) + float(fields[12])) / self.ticks),
            GaugeMetricFamily("process_open_fds", "Number of open file descriptors.",
                              value=len(os.listdir(FD_DIR))),
            GaugeMetricFamily("process_max_fds", "Maximum number of open file descriptors.",
                              value=float("inf") if soft_fds == resource.RLIM_INFINITY
                              else float(soft_fds)),
        ]


def install() -> bool:
    """Swap the default ProcessCollector for the lean one; False where /proc is missing
    (the default collector then stays, and exports nothing, as before)."""
    try:
        lean = LeanProcessCollector()
    except OSError:
        return False
    REGISTRY.unregister(PROCESS_COLLECTOR)
    REGISTRY.register(lean)
    return True
