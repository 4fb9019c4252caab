"""budgets.yml, typed: what B must stay within, and how the A/B is judged.

``BudgetsFile`` is the file as written (an unknown key or a wrong type is one line, see
plumbing/schema.py); ``load_budgets`` turns it into the ``GateConfig`` the gate runs on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, field_validator

from edgebench.gate.figures import FIGURES
from plumbing.errors import EdgebenchError
from plumbing.schema import Model, ValidationError, refusal

AB_METRICS = ("cpu_ms_per_request", "scrape_latency_ms", "service_mem_steady_mb")
RULES = ("any", "paired", "median")
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class BudgetError(EdgebenchError):
    """A malformed budgets file; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Budget:
    metric: str
    max: float
    why: str = ""
    over: str = "any"      # any: one round over the bound fails; median: the median round


@dataclass(frozen=True)
class ABMetric:
    metric: str
    min_effect: float      # delta: the change the gate must catch (relative 0.10 = +10%, or MB)
    relative: bool = True
    unit: str = ""         # shown after an absolute change, e.g. MB
    spread: float = 0.0    # floor of one round's SD, on the test scale (log ratio, or MB)
    margin: float = 0.0    # a regression needs the lower bound above this (same scale as delta)
    weight: float = 1.0    # share of alpha (Bonferroni with weights)


@dataclass(frozen=True)
class GateConfig:
    budgets: tuple[Budget, ...]
    ab_metrics: tuple[ABMetric, ...]
    alpha: float = 0.01       # the gate's false-regression rate, over all A/B metrics
    min_rounds: int = 3
    max_rounds: int = 7
    time_budget_s: float = 180.0
    warmup_s: float = 3.0
    duration_s: float = 10.0
    sensor_rate: float = 0.0     # /sensor requests per second in the rounds (one client); 0: scrapes only


def _one_of(name: str, known) -> str:
    """``name`` if it is one of ``known``; else the refusal that lists them."""
    if name not in known:
        raise ValueError(f"{name!r} is unknown: use one of {', '.join(known)}")
    return name


class _Entry(Model):
    """One ``budgets:`` entry as the file spells it."""
    metric: str
    max: float
    why: str = ""
    over: Literal["any", "paired", "median"] = "any"

    _known_figure = field_validator("metric")(lambda v: _one_of(v, FIGURES))


class _ABMetricEntry(Model):
    metric: str
    min_effect: Positive
    relative: bool = True
    unit: str = ""
    spread: NonNegative = 0.0
    margin: NonNegative = 0.0
    weight: Positive = 1.0

    _known_metric = field_validator("metric")(lambda v: _one_of(v, AB_METRICS))


_D = GateConfig((), ())


class _AB(Model):
    alpha: Positive = _D.alpha
    min_rounds: Annotated[int, Field(gt=0)] = _D.min_rounds
    max_rounds: Annotated[int, Field(gt=0)] = _D.max_rounds
    time_budget_s: Positive = _D.time_budget_s
    warmup_s: Positive = _D.warmup_s
    duration_s: Positive = _D.duration_s
    sensor_rate: NonNegative = _D.sensor_rate
    metrics: list[_ABMetricEntry] = []


class BudgetsFile(Model):
    """budgets.yml: every key it may hold; anything else is refused (a typo is not a default)."""
    budgets: list[_Entry]
    ab: _AB = _AB()
    cost: dict = {}       # the cost tier's section, checked by edgebench/cost/config.py


def load_budgets(path: Path) -> GateConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BudgetError(f"{path}: budgets file not found (restore it from git: git checkout -- {path})") from None
    except yaml.YAMLError as e:
        raise BudgetError(f"{path}: not valid YAML ({str(e).splitlines()[0]}): fix the syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("budgets"), list):
        raise BudgetError(f"{path}: needs a 'budgets:' list of {{metric, max, why}} entries")
    if data.get("ab") is None:
        data.pop("ab", None)
    try:
        doc = BudgetsFile.model_validate(data)
    except ValidationError as e:
        raise BudgetError(refusal(path, e, BudgetsFile)) from None
    ab = doc.ab
    cfg = GateConfig(
        budgets=tuple(Budget(b.metric, b.max, b.why, b.over) for b in doc.budgets),
        ab_metrics=tuple(ABMetric(**m.model_dump()) for m in ab.metrics),
        alpha=ab.alpha, min_rounds=ab.min_rounds, max_rounds=ab.max_rounds, time_budget_s=ab.time_budget_s,
        warmup_s=ab.warmup_s, duration_s=ab.duration_s, sensor_rate=ab.sensor_rate)
    if not 0 < cfg.alpha < 0.5:
        raise BudgetError(f"{path}: ab.alpha={cfg.alpha} must be between 0 and 0.5 (e.g. 0.01)")
    if cfg.min_rounds < 2 or cfg.max_rounds < cfg.min_rounds:
        raise BudgetError(f"{path}: ab.min_rounds must be at least 2 and at most ab.max_rounds")
    return cfg
