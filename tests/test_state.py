"""state.json, typed (stack/state.py): the supervisor's own writer is accepted, drift is
refused in one line. Pure: no process is started (the supervisor object writes its state
without running anything)."""
import json
import time

import pytest

from edgebench.steps import side_facts
from plumbing.files import write_json_atomic
from profiling.sampler import service_pid
from stack.compose import load_compose
from stack.images import plan_service
from stack.state import StackState, StateError, checked, parse_state, read_state
from stack.supervisor import Supervisor


def _native_state_dir(repo_root, tmp_path):
    """A state dir whose plan.json is the repository's stack, planned as `up` plans it."""
    compose = load_compose(repo_root / "docker-compose.yml", env={})
    ports = {"sensor-service": 18000, "victoriametrics": 18428}
    plans = [plan_service(compose, s, tmp_path, ports, check_binary=False) for s in compose.services.values()]
    write_json_atomic(tmp_path / "plan.json", {
        "stack_id": "0123abcd", "compose_file": str(compose.path), "profiles": [], "timeout": 30,
        "stop_grace": 10, "services": [p.to_json() for p in plans], "owner_pid": None, "owner_starttime": None})
    return tmp_path


def test_the_native_supervisors_state_is_typed(repo_root, tmp_path):
    sup = Supervisor(_native_state_dir(repo_root, tmp_path))
    try:
        hc = sup.runners[0].check
        hc.runs, hc.cpu_ms_total = 2, 3.0
        hc.last = {"t": time.time(), "exit_code": 0, "timed_out": False, "ok": True, "duration_s": 0.01,
                   "cpu_ms": 1.5, "output": ""}
        sup.status, sup.healthy_at = "running", time.time()
        sup.write_state()
    finally:
        sup.events.close()
    state = read_state(tmp_path)
    assert isinstance(state, StackState)
    assert (state.engine, state.stack_id, state.status) == ("native", "0123abcd", "running")
    svc = state.services["sensor-service"]
    assert (svc.mem_limit_bytes, svc.memswap_limit_bytes, svc.cpus, svc.host_port) == (50 << 20, 50 << 20, 0.5, 18000)
    assert svc.healthcheck.argv[1:] == ["-q", "-O", "/dev/null", "http://127.0.0.1:18000/healthz"]
    assert (svc.healthcheck.runs, svc.healthcheck.cpu_ms_mean, svc.healthcheck.last.ok) == (2, 1.5, True)
    assert svc.pid is None and service_pid(tmp_path / "state.json", "sensor-service") is None
    # what the steps report reads of a side: the healthcheck it ran, typed
    (tmp_path / "side" / "stack").mkdir(parents=True)
    (tmp_path / "side" / "stack" / "state.json").write_text((tmp_path / "state.json").read_text())
    facts = side_facts(tmp_path / "side")
    assert facts["healthcheck"] == "wget -q -O /dev/null http://127.0.0.1:18000/healthz"
    assert facts["healthcheck_cpu_ms"] == 1.5


def test_a_docker_state_is_accepted():
    """The keys the docker engine's up() and watcher write (docs/internals.md)."""
    state = {"engine": "docker", "stack_id": "ab12cd34", "project": "edgebench-ab12cd34",
             "compose_file": "/r/docker-compose.yml", "resolved_compose_file": "/s/compose.yml",
             "profiles": [], "compose_cmd": ["docker", "compose"], "supervisor_pid": 77,
             "supervisor_starttime": 123, "status": "running", "cgroup_version": 2, "limits_enforced": True,
             "cgroup_view": "own", "started_at": 1.0, "healthy_at": 2.0, "updated_at": 3.0, "state_dir": "/s",
             "owner_pid": None, "owner_starttime": None, "counters_source": "docker stats",
             "counters_note": "no container cgroup is readable here",
             "stop_reason": None,
             "services": {"sensor-service": {
                 "container_id": "abc", "pid": 42, "pid_starttime": 99, "status": "running", "health": "healthy",
                 "url": "http://127.0.0.1:18000", "health_url": "http://127.0.0.1:18000/healthz",
                 "host_port": 18000, "container_port": 8000, "mem_limit_bytes": 52428800, "cpus": 0.5,
                 "cgroups": {}, "restarts": 0, "oom_kills": 0, "log": None, "exit_code": 0,
                 "healthcheck_argv": ["wget", "-q"], "health_checked_pid": 42, "volumes": {"/storage": "/v"}}}}
    assert checked(state) is state
    assert parse_state(state).services["sensor-service"].container_port == 8000


@pytest.mark.parametrize("doc, words", [
    ({"services": {"s": {"pidd": 3}}}, "services.s: unknown key 'pidd' (known: pid, pid_starttime, status,"),
    ({"enginee": "native"}, "unknown key 'enginee' (known: engine, stack_id,"),
    ({"services": {"s": {"pid": "3"}}}, "services.s.pid: '3' is not valid: input should be a valid integer"),
    ({"engine": "podman"}, "engine: 'podman' is not valid: input should be 'native' or 'docker'"),
    ({"services": {"s": {"healthcheck": {"argv": ["x"]}}}}, "services.s.healthcheck: 'interval_s' is missing"),
])
def test_drift_is_refused_in_one_line(tmp_path, doc, words):
    p = tmp_path / "state.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(StateError) as e:
        read_state(tmp_path)
    assert words in str(e.value) and str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    with pytest.raises(StateError):
        checked(doc)
    with pytest.raises(StateError):       # the sampler's pid lookup reads it the same way
        service_pid(p, "s")


def test_missing_or_half_written_state_is_none(tmp_path):
    assert read_state(tmp_path / "nope") is None
    (tmp_path / "state.json").write_text('{"engine": "nat')
    assert read_state(tmp_path) is None
