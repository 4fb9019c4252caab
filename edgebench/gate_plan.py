"""`make gate`: short measured rounds of the change (B) and a git ref (A), alternated
on the same machine in the same run; then budgets, A/B and the A/A noise floor."""
from __future__ import annotations

import os
from contextlib import nullcontext
import time
from pathlib import Path

from edgebench.bench import COMPOSE_FILE, measure_scenario
from edgebench.fileio import write_json_atomic, write_text_atomic
from edgebench.gitref import resolve_ref, worktree
from edgebench.params import RunParams
from edgebench.results import ROOT, RunDir
from edgebench.scenarios import SCENARIOS, ParameterError

GATE_SCENARIO = SCENARIOS["optimized-vm"]
# Same hash seed on both sides: dict and set layouts, and so their costs, match.
DETERMINISM = {"PYTHONHASHSEED": "0"}


def check_stored_baseline(path: Path, allow_other_machine: bool = False) -> list[Path]:
    """A previous gate run to compare against: its B rounds become A. Refused when it was
    measured on another kind of machine or under other limits (figures would not compare)."""
    from edgebench.fileio import read_json
    from edgebench.fingerprint import comparable_key, machine_fingerprint
    from stack.compose import load_compose

    if not (path / "manifest.json").exists():
        raise ParameterError(f"BASELINE={path}: not a results directory of a gate run "
                             f"(no manifest.json): pass results/<id>-gate")
    dirs = sorted(d for d in path.glob("B.r*") if (d / "scenario.json").exists())
    if not dirs:
        raise ParameterError(f"BASELINE={path}: has no measured rounds (B.r*/scenario.json): "
                             f"pass a complete gate run")
    theirs = comparable_key(read_json(path / "manifest.json").get("machine", {}))
    ours = comparable_key(machine_fingerprint())
    differ = [f"{k}: {theirs.get(k)!r} vs {ours.get(k)!r}" for k in ours if theirs.get(k) != ours.get(k)]
    limits = read_json(dirs[0] / "scenario.json").get("limits", {})
    compose = load_compose(COMPOSE_FILE)
    for name, lim in limits.items():
        svc = compose.all_services.get(name)
        if svc and (lim.get("mem_limit_bytes") != svc.mem_limit or lim.get("cpus") != svc.cpus):
            differ.append(f"{name} limits: {lim} vs mem {svc.mem_limit} cpus {svc.cpus}")
    if differ and not allow_other_machine:
        raise ParameterError(f"BASELINE={path} was measured elsewhere ({'; '.join(differ)}): "
                             f"compare against a git ref instead, or pass --allow-other-machine")
    return dirs


def parse_inject(items: list[str] | None) -> dict:
    """--inject KEY=VALUE (fault-injection knobs for the B side, used to prove the gate)."""
    env = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--inject {item!r}: expected KEY=VALUE, "
                                 f"e.g. --inject SENSOR_EXTRA_CPU_ITERATIONS=20000")
        env[key] = value
    return env


def gate_params(ab: dict, engine: str, results_root: Path) -> RunParams:
    # Scrapes only: CPU per request is then CPU per scrape, deterministic work; the
    # /sensor answers' random 5 MB blobs would add more noise than a 10% effect.
    return RunParams(duration_s=float(ab.get("duration_s", 15)), warmup_s=float(ab.get("warmup_s", 3)),
                     users=0, sensor_rate=1.0, scrapers=2, scrape_rate=5.0, engine=engine,
                     scenarios=[GATE_SCENARIO], results_root=results_root)


def run_gate(args, command: str) -> int:
    from reports.gate import evaluate, junit, load_budgets, markdown, table
    from reports.load import load_scenario

    config = load_budgets(Path(args.budgets))
    ab = config.get("ab", {})
    rounds = int(getattr(args, "rounds", None) or ab.get("rounds", 3))
    inject = parse_inject(getattr(args, "inject", None))
    budgets_only = getattr(args, "budgets_only", False)
    stored = getattr(args, "baseline", None)
    stored_dirs = check_stored_baseline(Path(stored), getattr(args, "allow_other_machine", False)) \
        if stored else None
    if stored_dirs is not None:
        commit, how = None, f"stored baseline {stored}"
    else:
        commit, how = (None, "budgets only") if budgets_only else resolve_ref(args.against)
    params = gate_params(ab, args.engine, Path(args.results))
    run = RunDir.create(params.results_root, "gate", command,
                        {**params.to_dict(), "rounds": rounds, "against": commit,
                         "against_how": how, "inject": inject})
    print(f"edgebench gate: B = working tree{' + ' + str(inject) if inject else ''}; "
          f"A = {commit[:12] + ' (' + how + ')' if commit else 'none (budgets only)'}; "
          f"{rounds} rounds each; results in {run.path}")
    t0 = time.monotonic()
    a_dirs, b_dirs, errors = [], [], []
    status = "failed"
    try:
        with (worktree(commit) if commit else nullcontext()) as ref_dir:
            _measure_rounds(run.path, params, rounds, ref_dir, inject, a_dirs, b_dirs, errors)
            result = evaluate([load_scenario(d) for d in b_dirs if (d / "scenario.json").exists()],
                              [load_scenario(d) for d in (stored_dirs or a_dirs)
                               if (d / "scenario.json").exists()] or None,
                              config, side_by_side=stored_dirs is None)
            if stored_dirs is not None:
                result.notes.append(f"A is a stored run ({stored}), measured at another time: CPU "
                                    f"is compared unpaired, so machine drift counts as noise")
            result.errors.extend(errors)
            elapsed = time.monotonic() - t0
            result.notes.append(f"gate run time {elapsed:.0f} s, {rounds} round(s) per side")
            if ref_dir and any(c.verdict == "regression" and c.metric.startswith("cpu")
                               for c in result.checks):
                _explain_cpu(run.path, params, ref_dir, inject, result)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        print("edgebench gate: interrupted")
        return 130
    finally:
        if status != "complete":
            run.finish(status, update_latest=False)
    header = (f"B: working tree of `{_head()}`{' with ' + str(inject) if inject else ''}; "
              f"A: `{commit[:12] if commit else 'none'}` ({how}). Run `{run.path.name}`.")
    write_text_atomic(run.path / "gate.md", markdown(result, header))
    write_text_atomic(run.path / "junit.xml", junit(result))
    write_json_atomic(run.path / "gate.json", {
        "verdict": result.verdict, "exit_code": result.exit_code, "elapsed_s": elapsed,
        "checks": [c.__dict__ for c in result.checks], "notes": result.notes,
        "errors": result.errors, "against": commit, "inject": inject})
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(markdown(result, header))
    print(table(result))
    print(f"edgebench gate: gate.md and junit.xml in {run.path}")
    run.finish("complete", update_latest=False)  # results/latest stays the newest bench
    return result.exit_code


def _head() -> str:
    from edgebench.results import git_info
    info = git_info()
    return (info["commit"] or "unknown")[:12] + (" (dirty)" if info["dirty"] else "")


def _measure_rounds(out_dir: Path, params, rounds, ref_dir, inject, a_dirs, b_dirs, errors) -> None:
    """Each round runs A and B at the same time, on their own ports and cgroups, so that
    whatever the machine does meanwhile (other tenants, frequency, cache) hits both
    alike; fresh processes every round. B runs in this thread, A in a helper thread."""
    import threading

    def measure(side, context, env, sdir, failures):
        try:
            measure_scenario(sdir, params, GATE_SCENARIO, repeat=r, service_context=context,
                             extra_env=env, query=False)
        except Exception as e:  # noqa: BLE001 - reported as the gate's error
            failures.append(f"{side} round {r}: {type(e).__name__}: {e}")

    for r in range(1, rounds + 1):
        failures: list[str] = []
        thread = None
        if ref_dir:
            a_dir = out_dir / f"A.r{r}"
            a_dirs.append(a_dir)
            thread = threading.Thread(target=measure, name=f"gate-A-r{r}",
                                      args=("A", ref_dir, dict(DETERMINISM), a_dir, failures))
            thread.start()
        b_dir = out_dir / f"B.r{r}"
        b_dirs.append(b_dir)
        try:
            measure("B", ROOT, {**DETERMINISM, **inject}, b_dir, failures)
        finally:
            if thread:
                thread.join()
        if failures:
            errors.extend(failures)
            return


def _explain_cpu(run_path: Path, params, ref_dir: Path, inject, result) -> None:
    """On a CPU regression, a short py-spy capture of both sides: where the time went."""
    from edgebench.profile_plan import profile_diff
    try:
        note = profile_diff(run_path, params, ref_dir, inject)
        result.notes.append(note)
    except Exception as e:  # the verdict stands without the explanation
        result.notes.append(f"top-function diff not captured: {type(e).__name__}: {e}")
