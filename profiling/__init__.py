"""edgebench profiling: samplers and profilers attached to a running stack.

Everything here runs in the orchestrator's process (or its children), outside the
services' cgroups, and only measures: deciding what is good or bad is reports/.

Public surface:

- ``ResourceSampler(state_file, out_csv, interval_s=0.25)`` -> resources.csv
- ``read_cgroups(cgroups)`` / ``read_v1`` / ``read_v2`` -> ``Counters``
- ``query_collector(base_url, out_dir, start, end, step, job, kind)`` -> collector/*.json
- ``PySpyRecorder(get_pid, out_dir, rate=100)`` -> flamegraph.svg, speedscope.json,
  collapsed.txt, top_functions.csv, pyspy_meta.json
- ``top_functions`` / ``diff_top_functions`` (pure, collapsed stacks -> DataFrames)
- ``MprofRecorder(get_pid, out_path)`` -> mprof-compatible .dat
- ``capture_scrape_allocations(service_url, out_dir)``, ``scrape_allocation_sites(peak, after)``,
  ``top_allocations(snapshot)``, ``memory_per_request(timeline, requests)``
- ``pid_getter(state_file, service)`` -> a ``get_pid`` callable following restarts
"""


from plumbing.cgroup_counters import Counters, detect_version, read_cgroups, read_v1, read_v2

from .collector_queries import CollectorError, query_collector
from .errors import ProfilerError
from .memory import (
    MprofRecorder,
    capture_scrape_allocations,
    memory_per_request,
    scrape_allocation_sites,
    top_allocations,
)
from .pyspy import PySpyRecorder
from .sampler import COLUMNS, ResourceSampler, pid_getter, read_process, service_pid
from .top_functions import diff_top_functions, parse_collapsed, top_functions

__all__ = [
    "ProfilerError", "Counters", "detect_version", "read_cgroups", "read_process",
    "read_v1", "read_v2", "CollectorError", "query_collector", "MprofRecorder",
    "capture_scrape_allocations", "memory_per_request", "scrape_allocation_sites", "top_allocations",
    "PySpyRecorder", "COLUMNS", "ResourceSampler", "pid_getter", "service_pid",
    "diff_top_functions", "parse_collapsed", "top_functions",
]
