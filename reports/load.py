"""Reading a results directory: tolerant of missing pieces, explicit about them.

``load_run(path)`` returns a :class:`Run` whose ``missing`` (and each scenario's
``missing``) lists, in plain words, what was expected and not found. Only a
directory that is not a run at all (no manifest.json and no scenario directory)
raises :class:`ReportError`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reports import contract

REQUEST_COLUMNS = ("intended", "start", "name", "latency_ms", "ok", "bytes", "status_code", "sent")
RESOURCE_COLUMNS = ("t", "component", "mem_bytes", "rss_bytes", "cpu_seconds",
                    "throttled_periods", "throttled_seconds", "oom_kills", "restarts",
                    "mem_limit_bytes", "cpus", "disk_write_bytes", "disk_used_bytes",
                    "nr_periods", "mem_peak_bytes")
COLLECTOR_FILES = ("scrape_duration_buckets.json", "up.json",
                   "collector_scrape_duration.json", "process_resident_memory.json")
SCENARIO_MARKERS = ("scenario.json", "requests.csv.gz", "requests.csv", "resources.csv")
_REPEAT_RE = re.compile(r"^(?P<name>.+?)\.r(?P<repeat>\d+)$")


from plumbing.errors import EdgebenchError  # noqa: E402 - the one refusal base


class ReportError(EdgebenchError):
    """A results directory that cannot be reported on; str() is the one line to show."""


@dataclass
class Scenario:
    dir: Path
    name: str                      # scenario name, repeats share it (baseline-vm)
    repeat: int                    # 1-based
    meta: dict                     # scenario.json (possibly empty)
    requests: pd.DataFrame | None
    resources: pd.DataFrame | None
    collector: dict = field(default_factory=dict)        # file stem -> parsed JSON
    top_functions: pd.DataFrame | None = None
    profile_files: list = field(default_factory=list)     # flamegraph.svg etc.
    profile_dir: bool = False                             # profile/ exists
    top_functions_diff: pd.DataFrame | None = None        # profile/top_functions_diff.csv
    allocation_peak: pd.DataFrame | None = None           # profile/allocation_peak.csv
    allocation_retained: pd.DataFrame | None = None       # profile/allocation_retained.csv
    profile_meta: dict | None = None                      # profile/profile_meta.json
    missing: list = field(default_factory=list)
    version: int = contract.SCENARIO_VERSION              # scenario.json's schema version

    @property
    def dir_name(self) -> str:
        return self.dir.name

    def role(self, component: str) -> str:
        """service | collector | loadgen | other: from scenario.json's ``components``;
        scenario.json files older than version 2 have none, then it is guessed from the name."""
        return (self.meta.get("components") or {}).get(component) or component_role(component)

    @property
    def variant(self) -> str | None:
        return self.meta.get("variant") or guess_variant(self.name)

    @property
    def collector_name(self) -> str | None:
        return self.meta.get("collector") or guess_collector(self.name)


@dataclass
class Run:
    dir: Path
    manifest: dict
    scenarios: list
    missing: list = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.manifest.get("run_id") or self.dir.name

    @property
    def status(self) -> str | None:
        return self.manifest.get("status")

    @property
    def measured(self) -> bool:
        """Whether any scenario holds a sample (a request or a resource sample)."""
        return any((s.requests is not None and len(s.requests)) or
                   (s.resources is not None and len(s.resources)) for s in self.scenarios)


def guess_variant(name: str) -> str | None:
    n = name.lower()
    for v in ("baseline", "optimized"):
        if v in n:
            return v
    return None


def guess_collector(name: str) -> str | None:
    n = name.lower()
    if "prom" in n:
        return "prometheus"
    if "vm" in n or "victoria" in n:
        return "victoriametrics"
    return None


def collector_kind(name: str | None) -> str | None:
    """'vm' or 'prom' for a collector's name ('victoriametrics', 'prometheus', 'vm' …)."""
    if not name:
        return None
    n = str(name).lower()
    if "prom" in n:
        return "prom"
    if "victoria" in n or n == "vm" or n.startswith("vm"):
        return "vm"
    return None


def component_role(component: str) -> str:
    """service | collector | loadgen | other, guessed from a compose service name: only for
    scenario.json files older than version 2 (which record ``components``)."""
    c = str(component).lower()
    if "sensor" in c or c in ("service", "app"):
        return "service"
    if collector_kind(c) or "collector" in c:
        return "collector"
    if "locust" in c or "loadgen" in c or "load" in c:
        return "loadgen"
    return "other"


def _read_json(path: Path, missing: list, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        missing.append(f"{what}: {path.name} not found")
    except (OSError, ValueError) as e:
        missing.append(f"{what}: {path.name} is unreadable ({type(e).__name__}: {e})")
    return None


def _read_csv(path: Path, required: tuple, optional: tuple, missing: list, what: str):
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        missing.append(f"{what}: {path.name} not found")
        return None
    except (OSError, ValueError, EOFError) as e:
        missing.append(f"{what}: {path.name} is unreadable ({type(e).__name__}: {e})")
        return None
    absent = [c for c in required if c not in df.columns]
    if absent:
        missing.append(f"{what}: {path.name} lacks column(s) {', '.join(absent)}")
        return None
    for c in optional:
        if c not in df.columns:
            df[c] = np.nan
            missing.append(f"{what}: {path.name} has no '{c}' column")
    return df


def load_requests(path: Path, missing: list, what: str) -> pd.DataFrame | None:
    from loadtests.samples import SampleFormatError, read_samples
    try:
        df = read_samples(path)
    except SampleFormatError as e:
        missing.append(f"{what}: {e}")
        return None
    return df  # every intended request, sent or not, sorted by intended time


def load_resources(path: Path, missing: list, what: str) -> pd.DataFrame | None:
    df = _read_csv(path, ("t", "component"), (), missing, what)
    if df is None:
        return None
    for c in RESOURCE_COLUMNS[2:]:
        if c not in df:
            df[c] = np.nan
        df[c] = pd.to_numeric(df[c], errors="coerce")
    absent = [c for c in ("mem_bytes", "cpu_seconds") if df[c].isna().all()]
    if absent:
        missing.append(f"{what}: resources.csv has no values for {', '.join(absent)}")
    df["t"] = pd.to_numeric(df["t"], errors="coerce")
    df["component"] = df["component"].astype(str)
    return df.sort_values(["component", "t"], kind="stable").reset_index(drop=True)


def load_scenario(d: Path) -> Scenario:
    missing: list[str] = []
    m = _REPEAT_RE.match(d.name)
    what = d.name
    meta, version = _scenario_meta(d, missing, what)
    name = meta.get("scenario") or (m.group("name") if m else None) or meta.get("name") or d.name
    if m and meta.get("name") == d.name:
        name = m.group("name")
    repeat = meta.get("repeat") or (int(m.group("repeat")) if m else 1)
    requests = load_requests(d / "requests.csv.gz", missing, what)
    resources = load_resources(d / "resources.csv", missing, what)
    collector = _load_collector(d / "collector", missing, what)
    pdir = d / "profile"
    profile = _load_profile(pdir, missing, what) if pdir.is_dir() else {}
    allocs = profile.get("allocs", {})
    return Scenario(dir=d, name=str(name), repeat=int(repeat), meta=meta, requests=requests,
                    resources=resources, collector=collector, top_functions=profile.get("top"),
                    profile_files=profile.get("files", []), profile_dir=pdir.is_dir(),
                    top_functions_diff=profile.get("diff"),
                    allocation_peak=allocs.get("allocation_peak"),
                    allocation_retained=allocs.get("allocation_retained"),
                    profile_meta=profile.get("meta"), missing=missing, version=version)


def _scenario_meta(d: Path, missing: list[str], what: str) -> tuple[dict, int]:
    """scenario.json as a dict with its version; a newer version than this reader knows is refused."""
    meta, version = {}, contract.SCENARIO_VERSION
    if (d / "scenario.json").exists():
        try:
            info, version = contract.read_scenario(d)
            meta = info.to_dict()
        except contract.ContractError as e:
            if "newer than" in str(e):
                raise ReportError(str(e)) from None
            missing.append(f"{what}: {e}")
    else:
        missing.append(f"{what}: scenario.json not found")
    if meta and version < 2:
        missing.append(f"{what}: scenario.json version {version} records no component roles: "
                       f"service and collector guessed from the component names")
    return meta, version


def _load_collector(cdir: Path, missing: list[str], what: str) -> dict:
    """The server-side series the run saved under collector/, by file stem."""
    collector = {}
    if cdir.is_dir():
        for p in sorted(cdir.glob("*.json")):
            data = _read_json(p, missing, f"{what}/collector")
            if data is not None:
                collector[p.stem] = data
    else:
        missing.append(f"{what}: collector/ not found (no server-side series)")
    return collector


def _load_profile(pdir: Path, missing: list[str], what: str) -> dict:
    """The profile/ directory: top functions, their diff, allocations, metadata and files."""
    top = diff = profile_meta = None
    allocs: dict = {}
    tf = pdir / "top_functions.csv"
    if tf.exists():
        top = _read_csv(tf, ("function", "self_pct"), ("file", "line", "total_pct",
                                                       "self_samples", "total_samples"),
                        missing, f"{what}/profile")
    profile_files = sorted(p for p in pdir.iterdir() if p.suffix in (".svg", ".json", ".dat"))
    df = pdir / "top_functions_diff.csv"
    if df.exists():
        diff = _read_csv(df, ("function", "status", "delta_self_pct"),
                         ("file", "before_self_pct", "after_self_pct"), missing, f"{what}/profile")
    for stem in ("allocation_peak", "allocation_retained"):
        f = pdir / f"{stem}.csv"
        if f.exists():
            a = _read_csv(f, ("file", "line", "size_bytes"), ("count",), missing, f"{what}/profile")
            if a is not None:
                for c in ("line", "size_bytes", "count"):
                    a[c] = pd.to_numeric(a[c], errors="coerce")
                allocs[stem] = a.dropna(subset=["size_bytes"])
    if (pdir / "profile_meta.json").exists():
        pm = _read_json(pdir / "profile_meta.json", missing, f"{what}/profile")
        profile_meta = pm if isinstance(pm, dict) else None
    return {"top": top, "diff": diff, "allocs": allocs, "meta": profile_meta, "files": profile_files}


def _is_scenario_dir(d: Path) -> bool:
    return d.is_dir() and d.name not in ("report", "locust", "logs") \
        and any((d / m).exists() for m in SCENARIO_MARKERS)


def load_run(run_dir) -> Run:
    """Read a run directory. Raises ReportError when it is not a run at all."""
    d = Path(run_dir)
    if not d.exists():
        raise ReportError(f"{d}: no such directory (pass a results/<run-id> directory, e.g. results/latest)")
    if not d.is_dir():
        raise ReportError(f"{d}: not a directory (pass a results/<run-id> directory)")
    d = d.resolve()
    missing: list[str] = []
    scen_dirs = sorted(p for p in d.iterdir() if _is_scenario_dir(p))
    has_manifest = (d / "manifest.json").exists()
    # without a manifest, only directories that look like a scenario's count (scenario.json,
    # or both raw files): a folder of loose load-test output is not a run
    if not has_manifest and not any((p / "scenario.json").exists() or (
            ((p / "requests.csv.gz").exists() or (p / "requests.csv").exists())
            and (p / "resources.csv").exists()) for p in scen_dirs):
        raise ReportError(f"{d}: not an edgebench run (no manifest.json and no scenario "
                          f"directories with scenario.json/requests.csv.gz/resources.csv)")
    manifest = {}
    if not has_manifest:
        missing.append("run: manifest.json not found")
    else:
        try:
            m = contract.read_manifest(d)
            manifest = m.to_dict()
            if m.effective_status() != m.status:
                manifest["status"] = m.effective_status()
                missing.append("run: manifest.json says 'running' but the process that wrote it is gone "
                               "(killed): read as interrupted")
        except contract.ContractError as e:
            if "newer than" in str(e):
                raise ReportError(str(e)) from None
            missing.append(f"run: {e}")
    status = manifest.get("status")
    if status and status != "complete":
        missing.append(f"run status is '{status}': figures cover only what was measured before it stopped")
    scenarios = [load_scenario(p) for p in scen_dirs]
    expected = manifest.get("parameters", {}).get("scenarios") or list(manifest.get("scenarios") or [])
    present = {s.name for s in scenarios} | {s.dir_name for s in scenarios}
    for name in expected:
        if name not in present:
            missing.append(f"scenario {name}: planned but no results directory")
    scenarios.sort(key=lambda s: (s.name, s.repeat))
    run = Run(dir=d, manifest=manifest, scenarios=scenarios, missing=missing)
    if not run.measured:
        why = (f"{len(scenarios)} scenario director{'y' if len(scenarios) == 1 else 'ies'} without a "
               f"request or resource sample" if scenarios else "no scenario directories")
        if (d / "summary.json").exists() and not scenarios:
            raise ReportError(f"{d}: holds a rendered report but no raw samples (like docs/example): "
                              f"re-render the run it came from (`make report RUN=results/<id>`, or "
                              f"`make example` for the committed example)")
        raise ReportError(f"{d}: nothing was measured ({why}): run `make bench` (or pass the directory "
                          f"of a run that measured something)")
    return run
