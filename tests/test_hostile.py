"""The hostile-client suite (loadtests/hostile.py) against the optimized service: a real
stack under the compose limits (service 50 MB / 0.5 CPU) with VictoriaMetrics scraping,
every attack on loopback for a bounded window. One stack serves every case; a case that
restarted the service would show in its own record (restarts, OOM kills).

Needs root and a cgroup file system (the native engine's limits); skipped otherwise."""
import os

import pytest

from loadtests import hostile
from stack import cgroup_limits

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile"),  # one run for the module (make test)
              pytest.mark.skipif(os.geteuid() != 0 or cgroup_limits.detect_version() is None,
                                                   reason="needs root and a cgroup file system")]


@pytest.fixture(scope="module")
def records():
    return {r["case"]: r for r in hostile.run_suite("optimized", progress=lambda m: None)}


@pytest.mark.parametrize("case", [c.name for c in hostile.CASES])
def test_the_optimized_service_survives(records, case):
    rec = records[case]
    assert hostile.verdict(rec) == [], hostile.table([rec])
    assert rec["peak_mb"] is not None and rec["peak_mb"] < rec["limit_mb"]
    assert rec["probe_answered"] >= 8    # the probe scraped through the whole window


def test_the_verdict_catches_failed_scrapes_and_restarts(records):
    """The rule itself: a record with 2 failed collector or probe scrapes, a restart or a
    client answer outside the expected ones fails."""
    rec = dict(records["malformed, negative and huge Content-Length"])
    assert hostile.verdict(rec) == []
    assert hostile.verdict({**rec, "collector_failed": 2})
    assert hostile.verdict({**rec, "probe_failed": 2})
    assert hostile.verdict({**rec, "restarts": 1})
    assert hostile.verdict({**rec, "got": {**rec["got"], "Content-Length abc: 200": 1}})
