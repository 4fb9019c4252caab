"""The cost tier's evidence, reproducible by command (`edgebench cost-calibrate`):
unchanged-code sides (A/A), sides with a cost injected through the source, and the
kept optimisation steps reverted. Each measured side is one JSON line in a file; the
comparisons (A/A pairs, injected gates) are built from those lines afterwards, so the
thresholds can be set from the A/A lines before the injected gates are judged.

Injections (each a copy of the service tree with one patch):
- ``metrics-<pct>``: a new function `_injected_cost` (a loop of `s += i`) called once
  per render of /metrics, sized for +pct % instructions per scrape;
- ``metrics-inline``: the same loop inside CachedExposition.render itself;
- ``sensor-2``: the loop inside core.draw_sensor_answer (an existing function), +2 %;
- ``syscall``: one os.stat() per scrape in CachedExposition.render.
"""
from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgebench.cost.config import CostConfig
from edgebench.cost.tier import measure_sides

IR_PER_ITERATION = 381          # one `s += i` iteration of a for loop, CPython 3.11 (callgrind)
BASE_IR = {"/metrics": 1_716_000, "/sensor": 151_000}   # per request, the optimized service
RENDER = "    def render(self) -> bytes:\n"
DRAW = "def draw_sensor_answer():\n"
# what each injection must be named by under its endpoint: the function, or the system call
NAMED = {"metrics-0.5": "_injected_cost", "metrics-1": "_injected_cost", "metrics-2": "_injected_cost",
         "metrics-5": "_injected_cost", "metrics-inline": "CachedExposition.render",
         "sensor-2": "draw_sensor_answer", "syscall": "syscall newfstatat"}


def iterations(endpoint: str, pct: float) -> int:
    return max(1, round(BASE_IR[endpoint] * pct / 100 / IR_PER_ITERATION))


def patch(tree: Path, kind: str) -> Path:
    """A copy of the service (and plumbing, which it imports) with one injection."""
    out = Path(tempfile.mkdtemp(prefix=f"edgebench-cost-{kind}-"))
    for name in ("service", "plumbing"):
        shutil.copytree(tree / name, out / name, ignore=shutil.ignore_patterns("__pycache__"))
    expo, core = out / "service" / "exposition.py", out / "service" / "core.py"
    if kind.startswith("metrics-") and kind != "metrics-inline":
        n = iterations("/metrics", float(kind.split("-", 1)[1]))
        text = expo.read_text().replace(RENDER, RENDER + f"        _injected_cost({n})\n")
        expo.write_text(text + "\n\ndef _injected_cost(n):\n    s = 0\n    for i in range(n):\n"
                               "        s += i\n    return s\n")
    elif kind == "metrics-inline":
        n = iterations("/metrics", 2)
        expo.write_text(expo.read_text().replace(
            RENDER, RENDER + f"        s = 0\n        for i in range({n}):\n            s += i\n"))
    elif kind == "sensor-2":
        n = iterations("/sensor", 2)
        core.write_text(core.read_text().replace(
            DRAW, DRAW + f"    s = 0\n    for i in range({n}):\n        s += i\n"))
    elif kind == "syscall":
        expo.write_text("import os\n" + expo.read_text().replace(
            RENDER, RENDER + "        os.stat(__file__)\n"))
    else:
        raise ValueError(f"unknown injection {kind!r}")
    return out


def measure_many(trees: list[tuple[str, Path]], config: CostConfig, out: Path, parallel: int = 2) -> None:
    """Measure each (label, tree) as one fresh side; append a JSON line per side to ``out``."""
    def one(item):
        label, tree = item
        t0 = time.monotonic()
        figures = measure_sides({"S": tree}, config)["S"]
        line = json.dumps({"label": label, "elapsed_s": time.monotonic() - t0, "figures": figures})
        with open(out, "a") as f:
            f.write(line + "\n")
        return label
    with ThreadPoolExecutor(parallel) as pool:
        for label in pool.map(one, trees):
            print(f"edgebench cost-calibrate: measured {label}", flush=True)


def load(path: Path) -> dict:
    """{label: [figures, ...]} in file order."""
    sides: dict = {}
    for line in Path(path).read_text().splitlines():
        d = json.loads(line)
        sides.setdefault(d["label"], []).append(d["figures"])
    return sides


def q3_3iqr(changes: list[float]) -> float:
    """rustc-perf's significance threshold on measured A/A changes: Q3 + 3 x IQR of |change|."""
    q1, _, q3 = statistics.quantiles([abs(c) for c in changes], n=4, method="inclusive")
    return q3 + 3 * (q3 - q1)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate k/n, from the beta quantiles."""
    from scipy.stats import beta
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high
