"""`edgebench collectors` (make collectors): the collector comparison.

1. The robot's operating point: repeated rounds of the default bench load (the sensor
   service, a few dozen series) with VictoriaMetrics and Prometheus, shipped and tuned,
   all four side by side in each round (edgebench.bench.measure_scenario per side).
2. The sweep: per workload shape, series ladders with all variants side by side in each
   step (edgebench.capacity.comparison_step) until each has settled, then more runs at
   each variant's boundary (the last count it held, the first it did not) until each
   has ``repeats`` runs there.

comparison.json is rewritten after every round and step, so Ctrl-C keeps what was measured.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import yaml

from edgebench.capacity.comparison_compose import CONFIGS, DEPLOYMENT_COMPOSE, SHAPES, tune, variant_name
from edgebench.results import Lifecycle, RunDir
from edgebench.scenarios import SCENARIOS, ParameterError
from plumbing.checks import number
from plumbing.files import write_atomic, write_json_atomic
from reports import collector_stats as cs
from stack.compose import load_compose

VERSION = 1
COLLECTORS = ("victoriametrics", "prometheus")
LADDERS = {"one-target": (10_000, 20_000, 30_000, 50_000, 70_000, 100_000),
           "many-targets": (10_000, 20_000, 30_000, 50_000, 70_000, 100_000, 150_000)}
OP_SCENARIO = {"victoriametrics": "optimized-vm", "prometheus": "optimized-prom"}
# seconds, for the estimate: stack start and teardown around a step or a round
STEP_OVERHEAD_S = 12.0
ROUND_OVERHEAD_S = 15.0


@dataclass
class ComparisonParams:
    shapes: tuple = SHAPES
    configs: tuple = CONFIGS
    ladders: dict = field(default_factory=lambda: dict(LADDERS))
    repeats: int = 3                 # runs at each boundary count
    rounds: int = 5                  # operating-point rounds
    op_duration_s: float = 60.0      # the default bench load, long enough for the settle window
    op_warmup_s: float = 8.0
    cap_s: float = 150.0
    settle_scrapes: int = cs.SETTLE_SCRAPES
    engine: str = "auto"
    results_root: Path = Path("results")

    @property
    def variants(self) -> list[str]:
        return [variant_name(c, k) for c in COLLECTORS for k in self.configs]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["results_root"] = str(self.results_root)
        d["ladders"] = {k: list(v) for k, v in self.ladders.items()}
        return d

    def estimate_s(self) -> dict:
        """Typical and longest wall time: every ladder step once, ``repeats - 1`` more runs
        at two counts per variant, every round. Typical: a step settles after its window."""
        from edgebench.bench import SCRAPE_CONFIG
        from stack.scrape_config import scrape_settings
        interval = scrape_settings(SCRAPE_CONFIG).interval_s
        steps = sum(len(self.ladders[s]) for s in self.shapes)
        extra = (self.repeats - 1) * 2 * len(self.variants) * len(self.shapes)
        rounds = self.rounds * (self.op_duration_s + self.op_warmup_s + ROUND_OVERHEAD_S)
        typical = (steps + extra / 2) * (STEP_OVERHEAD_S + (self.settle_scrapes + 2) * interval) + rounds
        longest = (steps + extra) * (STEP_OVERHEAD_S + interval + self.cap_s) + rounds
        return {"typical_s": typical, "longest_s": longest, "steps_at_most": steps + extra}


def _ints(text: str, name: str) -> tuple[int, ...]:
    fix = f"pass positive series counts, e.g. {name}=10000,30000"
    out = tuple(sorted({number(x, name, whole=True, at_least=1, fix=fix, error=ParameterError)
                        for x in str(text).replace(",", " ").split()}))
    if not out:
        raise ParameterError(f"{name}={text!r} is an empty list: {fix}")
    return out


def build_comparison_params(shapes=None, configs=None, series=None, repeats=None, rounds=None, cap=None,
                            engine="auto", results_root="results") -> ComparisonParams:
    """Parse and check everything before anything starts; refuse with one line."""
    p = ComparisonParams(engine=engine, results_root=Path(results_root))
    if shapes:
        p.shapes = tuple(x for x in str(shapes).replace(",", " ").split())
        if not p.shapes or any(s not in SHAPES for s in p.shapes):
            raise ParameterError(f"SHAPES={shapes!r}: choose from {', '.join(SHAPES)}")
    if configs:
        p.configs = tuple(x for x in str(configs).replace(",", " ").split())
        if not p.configs or any(c not in CONFIGS for c in p.configs):
            raise ParameterError(f"CONFIGS={configs!r}: choose from {', '.join(CONFIGS)}")
    if series:
        ladder = _ints(series, "SERIES")
        p.ladders = {s: ladder for s in SHAPES}
    for name, value, low in (("REPEATS", repeats, 1), ("ROUNDS", rounds, 0)):
        if value is None:
            continue
        setattr(p, name.lower(), number(value, name, whole=True, at_least=low, error=ParameterError,
                                        fix=f"pass at least {low}, e.g. {name}=3"))
    if cap is not None:
        p.cap_s = number(cap, "CAP", above=0, unit="s", error=ParameterError, fix="pass e.g. CAP=150")
        from edgebench.bench import SCRAPE_CONFIG
        from stack.scrape_config import scrape_settings
        need = (p.settle_scrapes + 1) * scrape_settings(SCRAPE_CONFIG).interval_s
        if p.cap_s < need:
            raise ParameterError(f"CAP={cap}: the settle window needs at least {need:g} s; pass CAP={need:g} or more")
    return p


def tuned_compose(out: Path, compose_path: Path = DEPLOYMENT_COMPOSE) -> Path:
    """docker-compose.yml with both collectors tuned, written to ``out`` (relative paths
    made absolute, so it runs from any folder)."""
    raw = load_compose(compose_path).document()
    base = Path(compose_path).resolve().parent
    for name, spec in raw["services"].items():
        if name in COLLECTORS:
            raw["services"][name] = tune(name, spec)
        build = spec.get("build")
        if isinstance(build, dict) and str(build.get("context", ".")).startswith("."):
            build["context"] = str((base / build.get("context", ".")).resolve())
        vols = raw["services"][name].get("volumes") or []
        raw["services"][name]["volumes"] = [str(base / v.split(":", 1)[0]) + ":" + v.split(":", 1)[1]
                                            if isinstance(v, str) and v.startswith("./") else v for v in vols]
    write_atomic(out, "# Generated by edgebench collectors: docker-compose.yml with the tuned collectors\n"
                 + yaml.safe_dump(raw, sort_keys=False))
    return out


def _collector_memory(sdir: Path, collector: str, interval_s: float, settle_scrapes: int) -> dict:
    """A side's collector memory: kernel peak and steady (the figure catalogue), and the
    settle rule on its anonymous memory over the steady window (resources.csv)."""
    import pandas as pd

    from edgebench.capacity.step_figures import step_summary
    s = step_summary(sdir)
    out = {"peak_mb": s.get("collector_mem_peak_kernel_mb"), "steady_mb": s.get("collector_mem_steady_mb"),
           "anon_mb": None, "page_cache_mb": None, "settled": None, "slope_mb_per_min": None}
    try:
        df = pd.read_csv(sdir / "resources.csv")
    except (OSError, ValueError):
        return out
    w = (s.get("window") or {})
    g = df[df["component"] == collector]
    if w.get("steady_start") is not None:
        g = g[(g["t"] >= w["steady_start"]) & (g["t"] <= w["steady_end"])]
    g = g.dropna(subset=["rss_bytes"])
    if g.empty:
        return out
    limit = float(g["mem_limit_bytes"].dropna().iloc[-1]) if g["mem_limit_bytes"].notna().any() else 150 * 2**20
    v = cs.settled(list(zip(g["t"], g["rss_bytes"])), limit, interval_s, settle_scrapes)
    end = float(g["t"].iloc[-1])
    last = g[g["t"] >= end - v["window_s"]]
    out.update(anon_mb=round(float(last["rss_bytes"].mean()) / 2**20, 3), settled=v["settled"],
               slope_mb_per_min=None if v["slope_bytes_per_min"] is None else round(v["slope_bytes_per_min"] / 2**20, 3))
    if "mem_bytes" in last and last["mem_bytes"].notna().any():
        # mem_bytes is usage - inactive_file; page cache here is what is left above the anonymous memory
        out["page_cache_mb"] = round(max(0.0, float((last["mem_bytes"] - last["rss_bytes"]).mean())) / 2**20, 3)
    return out


def operating_point_round(out_dir: Path, params: ComparisonParams, index: int, tuned_file: Path) -> list[dict]:
    """Every (collector, configuration) at the default bench load, side by side; one
    record per side."""
    from edgebench.bench import SCRAPE_CONFIG, measure_scenario
    from edgebench.params import RunParams
    from stack.scrape_config import scrape_settings
    interval = scrape_settings(SCRAPE_CONFIG).interval_s
    sides = [(c, k) for c in COLLECTORS for k in params.configs]
    rp = RunParams(duration_s=params.op_duration_s, warmup_s=params.op_warmup_s, engine=params.engine,
                   scenarios=[SCENARIOS[OP_SCENARIO[c]] for c in COLLECTORS], results_root=out_dir)
    errors: dict = {}
    dirs = {(c, k): out_dir / f"{variant_name(c, k)}.r{index}" for c, k in sides}

    def measure(side):
        c, k = side
        try:
            measure_scenario(dirs[side], rp, SCENARIOS[OP_SCENARIO[c]], repeat=index, query=False,
                             compose_file=tuned_file if k == "tuned" else None)
        except Exception as e:  # noqa: BLE001 - the round's failure, in its record
            errors[side] = f"{type(e).__name__}: {e}"

    helpers = [threading.Thread(target=measure, args=(s,), name=f"op-{s}") for s in sides[:-1]]
    for t in helpers:
        t.start()
    try:
        measure(sides[-1])
    finally:
        for t in helpers:
            t.join()
    return [{"round": index, "variant": variant_name(c, k), "collector": c, "config": k,
             "error": errors.get((c, k)), "dir": str(dirs[(c, k)]),
             **_collector_memory(dirs[(c, k)], c, interval, params.settle_scrapes)} for c, k in sides]


def boundary_plan(steps: list[dict], repeats: int) -> list[tuple[int, list[str]]]:
    """The extra runs still needed: (series, variants) for every count that is a
    variant's boundary (the largest it held in every run, the first it did not) with
    fewer than ``repeats`` runs of that variant there."""
    need: dict[int, set] = {}
    for v in sorted({s["variant"] for s in steps}):
        b = cs.boundary([s for s in steps if s["variant"] == v])
        for level in b["levels"]:
            if level["series"] in (b["held_all"], (b["next"] or {}).get("series")) and level["runs"] < repeats:
                need.setdefault(level["series"], set()).add(v)
    return [(n, sorted(vs)) for n, vs in sorted(need.items())]


def run_comparison(params: ComparisonParams, command: str) -> tuple[RunDir, int]:
    """The operating-point rounds, then every shape's ladder, then the boundary runs;
    returns the run and an exit code (0 complete, 130 interrupted)."""
    limits = _preflight(params)
    est = params.estimate_s()
    run = RunDir.create(params.results_root, "collectors", command, params.to_dict())
    print(f"edgebench collectors: {params.rounds} operating-point rounds, then {', '.join(params.shapes)} "
          f"ladders with {', '.join(params.variants)} side by side and up to {params.repeats} runs at each "
          f"boundary: about {est['typical_s'] / 60:.0f} min, at most {est['longest_s'] / 60:.0f} min; "
          f"results in {run.path}", file=sys.stderr, flush=True)
    comparison = _Comparison(run, params, limits, est)
    comparison.save()
    with Lifecycle(run, save=comparison.save, render=lambda: _render(run), say=partial(print, file=sys.stderr),
                   interrupted="edgebench collectors: interrupted; keeping every step measured") as life:
        comparison.operating_point()
        for shape in params.shapes:   # every shape's ladder first, then the repeats
            comparison.ladder(shape)
        for shape in params.shapes:
            comparison.boundary_runs(shape)
    return run, life.exit_code


def _preflight(params: ComparisonParams) -> dict:
    """What can be refused before anything starts; returns each component's memory limit
    in MB, from the compose file."""
    from edgebench.bench import check_results_root
    from loadtests.synthetic_target import check_series_fits
    from stack.compose import load_compose
    check_results_root(params.results_root)
    for s in params.shapes:
        check_series_fits(max(params.ladders[s]))
    compose = load_compose(DEPLOYMENT_COMPOSE, profiles=("prometheus",))
    return {n: (s.mem_limit / 2**20 if s.mem_limit else None) for n, s in compose.all_services.items()}


class _Comparison:
    """One comparison run's measurements: comparison.json, rewritten after every round and
    step, so a run cut short keeps what it measured."""

    def __init__(self, run: RunDir, params: ComparisonParams, limits: dict, estimate: dict):
        self.run, self.params = run, params
        self.doc = {"version": VERSION, "run_id": run.path.name, "limits_mb": limits, "params": params.to_dict(),
                    "estimate": estimate, "operating_point": {"rounds": []}, "sweep": {"steps": []}}
        self.t0 = time.monotonic()

    def save(self, status: str | None = None) -> None:
        if status:
            self.doc["status"] = status
        self.doc["analysis"] = cs.analyse(self.doc)
        self.doc["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        write_json_atomic(self.run.path / "comparison.json", self.doc)

    def tell(self, text: str) -> None:
        print(f"[collectors {(time.monotonic() - self.t0) / 60:.1f} min] {text}", file=sys.stderr, flush=True)

    def operating_point(self) -> None:
        tuned_file = tuned_compose(self.run.path / "docker-compose.tuned.yml")
        for i in range(1, self.params.rounds + 1):
            self.tell(f"operating point: round {i} of {self.params.rounds}")
            self.doc["operating_point"]["rounds"] += operating_point_round(
                self.run.path / "operating-point", self.params, i, tuned_file)
            self.save()

    def ladder(self, shape: str) -> None:
        """Up the shape's series ladder while any variant still holds."""
        alive = list(self.params.variants)
        for n in self.params.ladders[shape]:
            if not alive:
                break
            self.tell(f"{shape}: {n:,} series: {', '.join(alive)}")
            recs = self._step(shape, n, 1, alive)
            self.tell("; ".join(f"{r['variant']} {r['status']} (anon {r['anon_mb']} MB, peak {r['peak_mb']} MB)"
                                for r in recs))
            alive = [r["variant"] for r in recs if cs.held(r)]

    def boundary_runs(self, shape: str) -> None:
        """More runs at each variant's boundary counts until each has ``repeats`` there."""
        while True:
            shape_steps = [s for s in self.doc["sweep"]["steps"] if s["shape"] == shape]
            plan = boundary_plan(shape_steps, self.params.repeats)
            if not plan:
                return
            n, variants = plan[0]
            k = 1 + max(s.get("run", 1) for s in shape_steps if s["series"] == n)
            self.tell(f"{shape}: {n:,} series, run {k} (boundary of {', '.join(variants)})")
            recs = self._step(shape, n, k, variants)
            self.tell("; ".join(f"{r['variant']} {r['status']}" for r in recs))

    def _step(self, shape: str, n: int, k: int, variants: list[str]) -> list[dict]:
        """``variants`` side by side on ``n`` series, run ``k`` (its seed); recorded and saved."""
        from edgebench.capacity.comparison_step import measure_comparison_step
        p = self.params
        recs = measure_comparison_step(self.run.path / "sweep" / f"{shape}-n{n}-r{k}", variants, n, shape,
                                       p.engine, seed=k, cap_s=p.cap_s, settle_scrapes=p.settle_scrapes)
        for r in recs:
            r["run"] = k
        self.doc["sweep"]["steps"] += recs
        self.save()
        return recs


def _render(run: RunDir) -> None:
    from reports.comparison import render_comparison
    try:
        written = render_comparison(run.path)
        print(f"edgebench collectors: report in {written[0].parent}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the measurements stay; the report can be re-rendered
        print(f"edgebench collectors: report not rendered ({type(e).__name__}: {e}); "
              f"re-render with `bin/edgebench report --run {run.path}`", file=sys.stderr)

