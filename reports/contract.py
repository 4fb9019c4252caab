"""The results contract: the one owner of manifest.json, scenario.json and summary.json,
and the one reader of a run's own documents (capacity.json, comparison.json, steps.json).

Every writer (edgebench's run directory, the scenario runner, the report) and every
reader (reports/, the gate, the example, the capacity sweeps) goes through this module, so
the three files have one typed definition each and one schema version each, checked on load:

* a file written by a newer edgebench (version above what this code knows) is refused
  with one line (:class:`ContractError`, exit 2);
* a file without a version (written before versions existed) is read as version 0:
  what it lacks is filled with the documented defaults and named by the reader.

The layout and every key are documented in docs/results.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing.errors import EdgebenchError
from plumbing.files import read_json, write_json_atomic
from reports.stats import finite_or_none

MANIFEST_VERSION = 1
SCENARIO_VERSION = 2      # 2: `components` (role of each component), `peak_reset_at`
SUMMARY_VERSION = 2       # 2: figures from reports/figures.py (see docs/figures.md)

ROLES = ("service", "collector", "loadgen", "other")
RUN_STATUSES = ("running", "complete", "interrupted", "failed")


class ContractError(EdgebenchError):
    """A results file this edgebench cannot read; str() is the one line to show."""


def _check_version(data: dict, key: str, known: int, path: Path, what: str) -> int:
    v = data.get(key, 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ContractError(f"{path}: {key} is {v!r}, not a version number: the {what} is corrupt; "
                            f"re-run the measurement")
    if v > known:
        raise ContractError(f"{path}: {what} version {v} is newer than this edgebench reads ({known}): "
                            f"update edgebench (git pull) to read it")
    return v


def _load_object(path: Path, what: str) -> dict:
    """The JSON object in ``path``; ContractError (one line) when it is not one."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise ContractError(f"{path}: not found: the {what} was never written (run interrupted "
                            f"before it started?)") from None
    except (OSError, ValueError) as e:
        raise ContractError(f"{path}: unreadable {what} ({type(e).__name__}): the file is corrupt; "
                            f"re-run the measurement") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: the {what} is not a JSON object: the file is corrupt; "
                            f"re-run the measurement")
    return data


def read_document(path) -> dict:
    """A run's own results document (capacity.json, comparison.json, steps.json): the JSON
    object in ``path``, or ContractError (one line) when it is missing or not one."""
    path = Path(path)
    return _load_object(path, path.name)


def _split(cls, data: dict) -> tuple[dict, dict]:
    """Known fields of dataclass ``cls`` and the rest (kept, never dropped)."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


# --------------------------------------------------------------------------- manifest.json

@dataclass
class Manifest:
    """manifest.json: what was run, where, from which commit, and whether it finished."""
    run_id: str
    command: str | None = None
    argv: list = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    git: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    status: str | None = None          # running | complete | interrupted | failed
    scenarios: dict = field(default_factory=dict)   # dir name -> {"status", "reason"?}
    owner: dict = field(default_factory=dict)        # {"pid", "starttime"} of the process writing the run
    manifest_version: int = MANIFEST_VERSION
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **d}

    def effective_status(self) -> str | None:
        """``running`` only while the process that writes the run is alive: a run whose
        writer was killed (SIGKILL, a closed terminal, a CI timeout) reads as interrupted."""
        from plumbing.process import pid_alive
        if self.status == "running" and self.owner.get("pid") and \
                not pid_alive(self.owner["pid"], self.owner.get("starttime")):
            return "interrupted"
        return self.status

    @property
    def planned_scenarios(self) -> list:
        return list(self.parameters.get("scenarios") or self.scenarios or [])


def manifest_from_dict(data: dict, path: Path, fallback_run_id: str) -> Manifest:
    _check_version(data, "manifest_version", MANIFEST_VERSION, path, "manifest")
    known, extra = _split(Manifest, data)
    known.setdefault("run_id", fallback_run_id)
    known["manifest_version"] = MANIFEST_VERSION
    for k in ("parameters", "git", "machine", "scenarios", "owner"):
        if not isinstance(known.get(k, {}), dict):
            known[k] = {}
    return Manifest(**known, extra=extra)


def read_manifest(run_dir) -> Manifest:
    path = Path(run_dir) / "manifest.json"
    return manifest_from_dict(_load_object(path, "manifest"), path, Path(run_dir).name)


def write_manifest(run_dir, manifest: Manifest) -> Path:
    return write_json_atomic(Path(run_dir) / "manifest.json", manifest.to_dict())


# --------------------------------------------------------------------------- scenario.json

@dataclass
class ScenarioInfo:
    """scenario.json: one measured scenario (one repeat, or one gate round)."""
    name: str                          # directory name (baseline-vm, baseline-vm.r2, B.r3)
    scenario: str | None = None        # the scenario repeats share (baseline-vm)
    repeat: int = 1
    variant: str | None = None         # baseline | optimized | external
    collector: str | None = None       # victoriametrics | prometheus | None
    engine: str | None = None          # native | docker | external
    status: str | None = None          # running | complete | interrupted | failed
    error: str | None = None
    components: dict = field(default_factory=dict)   # component -> role (service, collector, …)
    limits_enforced: bool | None = None
    cgroup_version: int | None = None  # 1 | 2 | None (no readable cgroup)
    cgroup_view: str | None = None     # own: the services read their own limits at /sys/fs/cgroup; host
    limits: dict = field(default_factory=dict)       # component -> {mem_limit_bytes, cpus}
    steady_start: float | None = None  # epoch s: the window every steady figure uses
    steady_end: float | None = None
    warmup_s: float | None = None
    duration_s: float | None = None
    users: int | None = None
    scrape_timeout_s: float | None = None   # the collector's, from stack/scrape.yml
    loadgen_cpu_seconds: float | None = None
    peak_reset_at: float | None = None      # epoch s the kernel memory peak was reset; None: never
    scenario_version: int = SCENARIO_VERSION
    extra: dict = field(default_factory=dict)   # everything else the runners record

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **d}

    def get(self, key: str, default=None):
        """Dict-style access for the keys the runners add (e.g. ``load_counts``)."""
        if key in self.extra:
            return self.extra[key]
        v = getattr(self, key, None) if key in {f.name for f in dataclasses.fields(self)} else None
        return default if v is None else v


def scenario_from_dict(data: dict, path: Path, fallback_name: str) -> tuple[ScenarioInfo, int]:
    """(ScenarioInfo, the version the file was written with)."""
    version = _check_version(data, "scenario_version", SCENARIO_VERSION, path, "scenario.json")
    known, extra = _split(ScenarioInfo, data)
    known.setdefault("name", fallback_name)
    known["scenario_version"] = SCENARIO_VERSION
    for k in ("steady_start", "steady_end", "warmup_s", "duration_s", "scrape_timeout_s",
              "loadgen_cpu_seconds", "peak_reset_at"):
        known[k] = finite_or_none(known.get(k))
    for k in ("components", "limits"):
        if not isinstance(known.get(k) or {}, dict):
            raise ContractError(f"{path}: '{k}' is not an object: the file is corrupt; re-run the measurement")
        known[k] = known.get(k) or {}
    bad = {c: r for c, r in known["components"].items() if r not in ROLES}
    if bad:
        raise ContractError(f"{path}: unknown component role(s) {bad}: roles are {', '.join(ROLES)}")
    try:
        known["repeat"] = int(known.get("repeat") or 1)
    except (TypeError, ValueError):
        raise ContractError(f"{path}: repeat is {known.get('repeat')!r}, not a number: "
                            f"the file is corrupt") from None
    return ScenarioInfo(**known, extra=extra), version


def read_scenario(scenario_dir) -> tuple[ScenarioInfo, int]:
    path = Path(scenario_dir) / "scenario.json"
    return scenario_from_dict(_load_object(path, "scenario.json"), path, Path(scenario_dir).name)


def write_scenario(scenario_dir, info: ScenarioInfo | dict) -> Path:
    """Write scenario.json (a dict is validated through ScenarioInfo first)."""
    path = Path(scenario_dir) / "scenario.json"
    if isinstance(info, dict):
        info, _ = scenario_from_dict(dict(info), path, Path(scenario_dir).name)
    return write_json_atomic(path, info.to_dict())


# --------------------------------------------------------------------------- summary.json

def check_summary(data: Any, path) -> dict:
    """A summary.json's content, its version checked: an older summary is refused (its
    figures had other definitions: re-render it from the run with `make report`)."""
    path = Path(path)
    if not isinstance(data, dict):
        raise ContractError(f"{path}: not a JSON object: re-render it with `make report RUN=<run dir>`")
    v = data.get("summary_version", 0)
    if v != SUMMARY_VERSION:
        how = ("update edgebench to read it" if isinstance(v, int) and v > SUMMARY_VERSION
               else f"re-render it with `make report RUN={path.parent}`")
        raise ContractError(f"{path}: summary version {v!r}, this edgebench reads {SUMMARY_VERSION}: {how}")
    return data


def read_summary(path) -> dict:
    path = Path(path)
    return check_summary(_load_object(path, "summary"), path)


def write_summary(summary: dict, path) -> Path:
    """summary.json with its version; non-finite numbers must already be None."""
    import json
    return _write_text(path, json.dumps({"summary_version": SUMMARY_VERSION, **summary},
                                        indent=2, allow_nan=False) + "\n")


def _write_text(path, text: str) -> Path:
    from plumbing.files import write_atomic
    return write_atomic(path, text)
