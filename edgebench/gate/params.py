"""The gate's parameters, typed and checked before anything starts."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgebench.results import ROOT


@dataclass(frozen=True)
class GateParams:
    against: str | None = None            # git ref for A; None: merge base with main
    engine: str = "auto"
    results_root: Path = ROOT / "results"
    budgets_file: Path = ROOT / "budgets.yml"
    inject: dict = field(default_factory=dict)   # fault knobs for the B side
    budgets_only: bool = False
    baseline: Path | None = None          # a stored gate run as A
    allow_other_machine: bool = False
    min_rounds: int | None = None         # None: budgets.yml
    max_rounds: int | None = None
    time_budget_s: float | None = None
    b_source: Path | None = None          # None: the working tree; calibration: A's checkout
    explain: bool = True                  # py-spy round on a CPU regression
    label: str = "gate"
