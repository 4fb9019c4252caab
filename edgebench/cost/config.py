"""The cost tier's settings: budgets.yml's ``cost:`` section (thresholds from the measured
A/A spread, batch sizes, the CPU model's constants)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgebench.cost.measure import ENDPOINTS, Plan
from plumbing.errors import EdgebenchError
from reports.budgets import load_budgets

# figure -> (relative threshold?, default threshold): a rise past it on any endpoint fails
DECIDING = {"instructions": (True, 0.01), "alloc_blocks": (True, 0.02), "syscalls": (False, 0.5),
            "held_bytes": (False, 256.0)}


class CostConfigError(EdgebenchError):
    """A bad cost: section in budgets.yml."""


@dataclass(frozen=True)
class CostConfig:
    plan: Plan = Plan()
    thresholds: dict = field(default_factory=dict)   # (figure, endpoint) -> threshold
    ns_per_instruction: float = 0.0                  # the CPU model (0: not calibrated)
    ns_per_syscall: dict = field(default_factory=dict)   # name -> ns; "default" for the others

    def threshold(self, figure: str, endpoint: str) -> float:
        return self.thresholds.get((figure, endpoint), DECIDING[figure][1])


def load_cost_config(path: Path) -> CostConfig:
    data = load_budgets(path).cost    # budgets.yml's one reader; the section is checked here
    unknown = set(data) - {"warmup", "n", "n_native", "seed", "thresholds", "model"}
    if unknown:
        raise CostConfigError(f"{path}: cost.{sorted(unknown)[0]} is not a setting; use warmup, n, "
                              f"n_native, seed, thresholds or model (docs/gate.md, 'Cost tier')")
    plan = Plan(**{k: int(data[k]) for k in ("warmup", "n_native", "seed") if k in data})
    n = dict(plan.n)
    for endpoint, value in (data.get("n") or {}).items():
        if endpoint not in n or not isinstance(value, int) or value < 2:
            raise CostConfigError(f"{path}: cost.n.{endpoint}: give each endpoint ({', '.join(ENDPOINTS)}) "
                                  f"a whole number of requests >= 2")
        n[endpoint] = value
    plan = Plan(warmup=plan.warmup, n=tuple(n.items()), n_native=plan.n_native, seed=plan.seed)
    if plan.n_native < 2 or plan.warmup < 1:
        raise CostConfigError(f"{path}: cost.n_native must be at least 2, cost.warmup at least 1")
    thresholds = {}
    for figure, value in (data.get("thresholds") or {}).items():
        if figure not in DECIDING:
            raise CostConfigError(f"{path}: cost.thresholds.{figure} is not a deciding figure; use one of "
                                  f"{', '.join(DECIDING)}")
        per = value if isinstance(value, dict) else {e: value for e in ENDPOINTS}
        for endpoint, v in per.items():
            if endpoint not in ENDPOINTS or not isinstance(v, (int, float)) or v <= 0:
                raise CostConfigError(f"{path}: cost.thresholds.{figure}: give a positive number, or one "
                                      f"per endpoint ({', '.join(ENDPOINTS)})")
            thresholds[(figure, endpoint)] = float(v)
    model = data.get("model") or {}
    return CostConfig(plan=plan, thresholds=thresholds,
                      ns_per_instruction=float(model.get("ns_per_instruction", 0.0)),
                      ns_per_syscall={k: float(v) for k, v in (model.get("ns_per_syscall") or {}).items()})
