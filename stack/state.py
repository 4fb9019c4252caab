"""state.json, typed: what a running stack's supervisor (native) or watcher (docker) records.

Both engines write it (``stack/supervisor.py``, ``stack/docker_engine.py``, ``stack/api.py``)
and the samplers, the bench and the reports read it, all through :func:`read_state`.
Writers pass their dict through :func:`checked` before writing, and readers get a
:class:`StackState`; both refuse a key the model does not name, so a writer cannot add a key its readers do not know (docs/internals.md
documents every key). Fields a partial state may lack (a stack still starting, a docker
service before ``docker inspect``) default to None.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from plumbing.errors import EdgebenchError
from plumbing.schema import Model, ValidationError, refusal

STATE_FILE = "state.json"     # in the stack's state directory


class StateError(EdgebenchError):
    """A state.json whose keys or types the model does not know: a writer and its readers drifted."""


class CheckResult(Model):
    """The last run of a service's compose healthcheck (native engine)."""
    t: float
    exit_code: int
    timed_out: bool
    ok: bool
    duration_s: float
    cpu_ms: float | None = None
    output: str = ""


class HealthcheckState(Model):
    """The compose healthcheck as the native supervisor runs it, with its counters."""
    argv: list[str]
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float
    runs: int = 0
    failures_in_a_row: int = 0
    last: CheckResult | None = None
    cpu_ms_mean: float | None = None


class ServiceState(Model):
    """One service. Native and docker keys side by side; a key one engine does not write is None."""
    pid: int | None = None
    pid_starttime: int | None = None
    status: str | None = None           # native: created | running | restarting | exited | stopped
    health: str | None = None           # starting | healthy | unhealthy | none
    url: str | None = None
    health_url: str | None = None
    host_port: int | None = None
    mem_limit_bytes: int | None = None
    memswap_limit_bytes: int | None = None
    cpus: float | None = None
    restart_policy: str | None = None
    cgroups: dict[str, str] = {}        # {"memory", "cpu", "cpuacct"} (v1) or {"unified"} (v2); {}: none
    restarts: int | None = None
    oom_kills: int | None = None
    exit_code: int | None = None
    started_at: float | None = None
    log: str | None = None
    argv: list[str] | None = None
    volumes: dict[str, str] = {}        # container path -> host directory
    healthcheck: HealthcheckState | None = None
    # docker engine
    container_id: str | None = None
    container_port: int | None = None
    healthcheck_argv: list[str] | None = None
    health_checked_pid: int | None = None


class StackState(Model):
    """The whole stack (docs/internals.md, "The supervisor rewrites its state atomically")."""
    engine: Literal["native", "docker"] | None = None
    stack_id: str | None = None
    supervisor_pid: int | None = None
    supervisor_starttime: int | None = None
    status: Literal["starting", "running", "stopping", "stopped", "failed"] | None = None
    error: str | None = None
    stop_reason: str | None = None
    owner_pid: int | None = None
    owner_starttime: int | None = None
    cgroup_version: int | None = None
    limits_enforced: bool | None = None
    cgroup_view: Literal["own", "host"] | None = None
    cgroup_view_error: str | None = None
    warnings: list[str] = []
    compose_file: str | None = None
    state_dir: str | None = None
    started_at: float | None = None
    healthy_at: float | None = None
    updated_at: float | None = None
    services: dict[str, ServiceState] = {}
    # docker engine
    project: str | None = None
    resolved_compose_file: str | None = None
    profiles: list[str] | None = None
    compose_cmd: list[str] | None = None
    counters_source: Literal["cgroup", "docker stats"] | None = None
    counters_note: str | None = None


def parse_state(data: dict, where: str | os.PathLike = "state.json") -> StackState:
    """``data`` (a state.json document) as a StackState; StateError names the first drift."""
    try:
        return StackState.model_validate(data)
    except ValidationError as e:
        raise StateError(refusal(where, e, StackState)) from None


def checked(data: dict, where: str | os.PathLike = "state.json") -> dict:
    """``data`` itself, once it validates: what a writer passes to write_json_atomic."""
    parse_state(data, where)
    return data


def read_state(state_dir: str | os.PathLike) -> StackState | None:
    """The state of the stack whose state directory is ``state_dir``: the one reader of
    state.json. None when the file is missing or not JSON yet (it is rewritten atomically,
    so that means 'not written yet'). A document the model refuses raises StateError."""
    path = Path(state_dir) / STATE_FILE
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return parse_state(data, path)
