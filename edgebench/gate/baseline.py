"""A stored gate run as the reference: accepted only from the same kind of machine
under the same limits, where its figures compare with today's."""
from __future__ import annotations

from pathlib import Path

from edgebench.bench import COMPOSE_FILE
from edgebench.fingerprint import comparable_key, machine_fingerprint
from edgebench.scenarios import ParameterError
from reports.contract import read_manifest, read_scenario


def check_stored_baseline(path: Path, allow_other_machine: bool = False) -> list[Path]:
    """The stored run's measured B rounds (they become A). Refused with one line when it
    was measured on another kind of machine or under other limits."""
    from stack.compose import load_compose

    path = Path(path)
    if not (path / "manifest.json").exists():
        raise ParameterError(f"BASELINE={path}: not a results directory of a gate run "
                             f"(no manifest.json): pass results/<id>-gate")
    dirs = sorted((d for d in path.glob("B.r*") if (d / "scenario.json").exists()),
                  key=lambda d: int(d.name.rsplit(".r", 1)[-1]) if d.name.rsplit(".r", 1)[-1].isdigit() else 0)
    if not dirs:
        raise ParameterError(f"BASELINE={path}: has no measured rounds (B.r*/scenario.json): "
                             f"pass a complete gate run")
    theirs = comparable_key(read_manifest(path).machine)
    ours = comparable_key(machine_fingerprint())
    differ = [f"{k}: {theirs.get(k)!r} vs {ours.get(k)!r}" for k in ours if theirs.get(k) != ours.get(k)]
    limits = read_scenario(dirs[0])[0].limits
    compose = load_compose(COMPOSE_FILE)
    for name, lim in limits.items():
        svc = compose.all_services.get(name)
        if svc and (lim.get("mem_limit_bytes") != svc.mem_limit or lim.get("cpus") != svc.cpus):
            differ.append(f"{name} limits: {lim} vs mem {svc.mem_limit} cpus {svc.cpus}")
    if differ and not allow_other_machine:
        raise ParameterError(f"BASELINE={path} was measured elsewhere ({'; '.join(differ)}): "
                             f"compare against a git ref instead, or pass --allow-other-machine")
    return dirs
