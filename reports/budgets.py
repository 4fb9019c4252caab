"""budgets.yml, typed: what B must stay within, and how the A/B is judged.

:class:`GateConfig` is the file as written and the config the gate and the report read
(an unknown key or a wrong type is one line, see plumbing/schema.py); it lives beside the
figures its metrics name, below the gate. A new section is one more field on it, with its
own model."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from plumbing.errors import EdgebenchError
from plumbing.schema import Model, load_model
from reports.figures import BUDGET_FIGURES, GATE_FIGURES

AB_METRICS = tuple(GATE_FIGURES)
RULES = ("any", "paired", "median")
BUDGETS_FILE = Path(__file__).resolve().parent.parent / "budgets.yml"
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class BudgetError(EdgebenchError):
    """A malformed budgets file; the message names the file, the entry and the fix."""


def _one_of(name: str, known) -> str:
    """``name`` if it is one of ``known``; else the refusal that lists them."""
    if name not in known:
        raise ValueError(f"{name!r} is unknown: use one of {', '.join(known)}")
    return name


class Budget(Model):
    """One ``budgets:`` entry: a figure B must stay within."""
    metric: str
    max: float
    why: str = ""
    over: Literal["any", "paired", "median"] = "any"   # any: one round over the bound fails; median: the median round

    _known_figure = field_validator("metric")(lambda v: _one_of(v, BUDGET_FIGURES))


class ABMetric(Model):
    """One A/B metric the gate compares per round."""
    metric: str
    min_effect: Positive       # delta: the change the gate must catch (relative 0.10 = +10%, or MB)
    relative: bool = True
    unit: str = ""             # shown after an absolute change, e.g. MB
    spread: NonNegative = 0.0  # floor of one round's SD, on the test scale (log ratio, or MB)
    margin: NonNegative = 0.0  # a regression needs the lower bound above this (same scale as delta)
    weight: Positive = 1.0     # share of alpha (Bonferroni with weights)

    _known_metric = field_validator("metric")(lambda v: _one_of(v, AB_METRICS))


class AB(Model):
    """``ab:``: how the A/B rounds run and are judged."""
    alpha: Positive = 0.01        # the gate's false-regression rate, over all A/B metrics
    min_rounds: Annotated[int, Field(gt=0)] = 3
    max_rounds: Annotated[int, Field(gt=0)] = 7
    time_budget_s: Positive = 180.0
    warmup_s: Positive = 3.0
    duration_s: Positive = 10.0
    sensor_rate: NonNegative = 0.0    # /sensor requests per second in the rounds (one client); 0: scrapes only
    metrics: list[ABMetric] = []

    @model_validator(mode="after")
    def _design(self) -> AB:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha={self.alpha} must be between 0 and 0.5: use e.g. 0.01")
        if self.min_rounds < 2 or self.max_rounds < self.min_rounds:
            raise ValueError("min_rounds must be at least 2 and at most max_rounds: correct them")
        return self


class GateConfig(Model):
    """budgets.yml: every key it may hold; anything else is refused (a typo is not a default).
    The ``ab:`` settings read as the config's own (``config.min_rounds``)."""
    budgets: list[Budget]
    ab: AB = AB()
    cost: dict = {}    # the cost tier's section, checked by edgebench/cost/config.py

    @property
    def ab_metrics(self) -> list[ABMetric]:
        return self.ab.metrics

    alpha = property(lambda self: self.ab.alpha)
    min_rounds = property(lambda self: self.ab.min_rounds)
    max_rounds = property(lambda self: self.ab.max_rounds)
    time_budget_s = property(lambda self: self.ab.time_budget_s)
    warmup_s = property(lambda self: self.ab.warmup_s)
    duration_s = property(lambda self: self.ab.duration_s)
    sensor_rate = property(lambda self: self.ab.sensor_rate)

    def budget(self, metric: str) -> Budget | None:
        """The budget on ``metric``, None when there is none."""
        return next((b for b in self.budgets if b.metric == metric), None)

    def with_rounds(self, min_rounds: int, max_rounds: int) -> GateConfig:
        """This config with the round bounds a command line chose."""
        return self.model_copy(update={"ab": self.ab.model_copy(
            update={"min_rounds": min_rounds, "max_rounds": max_rounds})})


def load_budgets(path: str | Path = BUDGETS_FILE) -> GateConfig:
    """``path`` as the gate's config; BudgetError (one line) on a missing or malformed file."""
    return load_model(path, GateConfig, lambda r: BudgetError(r.line(path)), needs="budgets",
                      shape_fix="write a 'budgets:' list of {metric, max, why} entries",
                      missing_fix=f"restore it from git (git checkout -- {path}) or pass --budgets FILE")


def stack_budget_mb(path: str | Path = BUDGETS_FILE) -> float | None:
    """The stack memory budget the report draws; None when the file sets none. A malformed
    file fails the report as it fails the gate (BudgetError, one line)."""
    budget = load_budgets(path).budget("stack_mem_peak_mb")
    return None if budget is None else budget.max
