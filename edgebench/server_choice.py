"""The optimized service's server candidates side by side (issue 18's choice).

``python -m edgebench.server_choice [--rounds 3] [--servers lean,waitress,...]`` runs
each round through the gate's round machinery (edgebench.rounds): every candidate at
once, each its own service (SENSOR_SERVER=<candidate>), collector, load and cgroups under
the compose limits, so whatever the shared machine does hits all of them alike. Two
loads per round: the gate's scrape-only load (CPU per scrape) and the default sensor
load with 20 scrapes/s (the /metrics p99 target's condition). Prints per candidate the
median over rounds and the median of the per-round ratio to the first candidate."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from edgebench.capacity.step_figures import service_figures, step_summary
from edgebench.params import RunParams
from edgebench.rounds import ROUND_SCENARIO, Side, round_params, run_round

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("lean", "waitress", "cheroot", "gunicorn", "granian", "prometheus")
FIGURES = ("cpu_ms_per_scrape", "mem_rest_mb", "mem_peak_mb", "scrape_p99_ms", "failed_scrapes")


def loads(engine: str, root: Path) -> dict[str, RunParams]:
    scrape_only = round_params(3, 20, engine, root)
    default_20 = RunParams(duration_s=20, warmup_s=3, users=2, sensor_rate=2.0, scrapers=2,
                           scrape_rate=10.0, engine=engine, scenarios=[ROUND_SCENARIO], results_root=root)
    return {"scrape-only": scrape_only, "default+20/s": default_20}


def measure(out: Path, rounds: int, servers: list[str], engine: str = "native",
            before: Path | None = None) -> dict:
    """{load: {server: [figures of each round]}}; sides rotate their start order per round.
    ``before``: one more side, "before", running that checkout's service tree as it is."""
    results: dict = {}
    every = [Side(name, ROOT, {"SENSOR_SERVER": name}) for name in servers]
    if before is not None:
        every.insert(0, Side("before", before))
        servers = ["before", *servers]
    for i in range(1, rounds + 1):
        for load, params in loads(engine, out).items():
            sides = every[i % len(every):] + every[:i % len(every)]
            run = run_round(out / load, params, i, sides)
            for err in run.errors:
                print(f"server_choice: {err}", file=sys.stderr)
            for name in servers:
                figures = service_figures(step_summary(run.dirs[name]))
                results.setdefault(load, {}).setdefault(name, []).append(
                    {k: figures.get(k) for k in FIGURES})
            print(f"server_choice: round {i} {load} done in {run.elapsed_s:.0f} s", file=sys.stderr, flush=True)
    return results


def summary(results: dict, servers: list[str]) -> str:
    rows = ["| load | server | CPU per scrape (ms) | ratio to " + servers[0] + " (paired) | memory at rest / peak (MB) "
            "| /metrics p99 (ms, from the intended start) | failed scrapes |",
            "| --- | --- | --- | --- | --- | --- | --- |"]   # ratio: median (min–max) over rounds
    for load, by_server in results.items():
        base = by_server[servers[0]]
        for name in servers:
            runs = by_server[name]
            ratios = [r["cpu_ms_per_scrape"] / b["cpu_ms_per_scrape"] for r, b in zip(runs, base)
                      if r["cpu_ms_per_scrape"] and b["cpu_ms_per_scrape"]]
            ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else "—"
            failed = sum(r["failed_scrapes"] or 0 for r in runs)
            rows.append(f"| {load} | {name} | {_med(runs, 'cpu_ms_per_scrape', 3)} | {ratio} | "
                        f"{_med(runs, 'mem_rest_mb', 1)} / {_med(runs, 'mem_peak_mb', 1)} | "
                        f"{_med(runs, 'scrape_p99_ms', 1)} | {failed} |")
    return "\n".join(rows)


def _med(runs, key, digits):
    values = [r[key] for r in runs if r.get(key) is not None]
    return f"{statistics.median(values):.{digits}f}" if values else "—"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgebench.server_choice", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--engine", default="native")
    parser.add_argument("--out", default="results/server-choice")
    parser.add_argument("--before", help="also run this checkout's service tree as side 'before' "
                                         "(e.g. a git archive of the previous optimized service)")
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown or args.rounds < 1:
        print(f"server_choice: unknown server(s) {unknown} or --rounds < 1; use servers from "
              f"{', '.join(SERVERS)} and --rounds >= 1", file=sys.stderr)
        return 2
    from plumbing.process import sigterm_as_ctrl_c
    undo = sigterm_as_ctrl_c()
    out = Path(args.out) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        before = Path(args.before).resolve() if args.before else None
        results = measure(out, args.rounds, servers, args.engine, before)
        if before is not None:
            servers = ["before", *servers]
    except KeyboardInterrupt:
        return 130
    finally:
        undo()
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(results, indent=1))
    print(summary(results, servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
