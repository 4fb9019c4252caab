"""budgets.yml, typed: what B must stay within, and how the A/B is judged."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from edgebench.gate.figures import FIGURES
from plumbing.errors import EdgebenchError

AB_METRICS = ("cpu_ms_per_request", "scrape_latency_ms", "service_mem_steady_mb")
RULES = ("any", "paired", "median")


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
    _known_keys(path, "the file", data, TOP_KEYS)
    budgets = []
    for i, b in enumerate(data["budgets"]):
        if not isinstance(b, dict) or "metric" not in b or "max" not in b:
            raise BudgetError(f"{path}: budgets[{i}] needs 'metric' and 'max' (and 'why')")
        _known_keys(path, f"budgets[{i}]", b, BUDGET_KEYS)
        if b["metric"] not in FIGURES:
            raise BudgetError(f"{path}: budgets[{i}] metric {b['metric']!r} is unknown: "
                              f"use one of {', '.join(FIGURES)}")
        if not isinstance(b["max"], (int, float)) or isinstance(b["max"], bool):
            raise BudgetError(f"{path}: budgets[{i}] ({b['metric']}) max must be a number")
        if b.get("over", "any") not in RULES:
            raise BudgetError(f"{path}: budgets[{i}] ({b['metric']}) over must be one of {', '.join(RULES)}")
        budgets.append(Budget(b["metric"], float(b["max"]), str(b.get("why", "")), b.get("over", "any")))
    ab = data.get("ab") or {}
    if not isinstance(ab, dict):
        raise BudgetError(f"{path}: 'ab:' must be a mapping (alpha, min_rounds, metrics, ...)")
    _known_keys(path, "ab", ab, AB_KEYS)
    metrics = []
    for i, m in enumerate(ab.get("metrics") or []):
        if not isinstance(m, dict) or m.get("metric") not in AB_METRICS:
            raise BudgetError(f"{path}: ab.metrics[{i}] metric {(m or {}).get('metric')!r} is unknown: "
                              f"use one of {', '.join(AB_METRICS)}")
        _known_keys(path, f"ab.metrics[{i}]", m, AB_METRIC_KEYS)
        where = f"ab.metrics[{i}]"
        metrics.append(ABMetric(m["metric"], _positive(path, f"{where}.min_effect", m.get("min_effect")),
                                bool(m.get("relative", True)), str(m.get("unit", "")),
                                _non_negative(path, f"{where}.spread", m.get("spread", 0.0)),
                                _non_negative(path, f"{where}.margin", m.get("margin", 0.0)),
                                _positive(path, f"{where}.weight", m.get("weight", 1.0))))
    defaults = GateConfig((), ())
    cfg = GateConfig(
        budgets=tuple(budgets), ab_metrics=tuple(metrics),
        alpha=_positive(path, "ab.alpha", ab.get("alpha", defaults.alpha)),
        min_rounds=int(_positive(path, "ab.min_rounds", ab.get("min_rounds", defaults.min_rounds))),
        max_rounds=int(_positive(path, "ab.max_rounds", ab.get("max_rounds", defaults.max_rounds))),
        time_budget_s=_positive(path, "ab.time_budget_s", ab.get("time_budget_s", defaults.time_budget_s)),
        warmup_s=_positive(path, "ab.warmup_s", ab.get("warmup_s", defaults.warmup_s)),
        duration_s=_positive(path, "ab.duration_s", ab.get("duration_s", defaults.duration_s)),
        sensor_rate=_non_negative(path, "ab.sensor_rate", ab.get("sensor_rate", defaults.sensor_rate)))
    if not 0 < cfg.alpha < 0.5:
        raise BudgetError(f"{path}: ab.alpha={cfg.alpha} must be between 0 and 0.5 (e.g. 0.01)")
    if cfg.min_rounds < 2 or cfg.max_rounds < cfg.min_rounds:
        raise BudgetError(f"{path}: ab.min_rounds must be at least 2 and at most ab.max_rounds")
    return cfg


TOP_KEYS = ("budgets", "ab")
BUDGET_KEYS = ("metric", "max", "why", "over")
AB_KEYS = ("alpha", "min_rounds", "max_rounds", "time_budget_s", "warmup_s", "duration_s", "sensor_rate", "metrics")
AB_METRIC_KEYS = ("metric", "min_effect", "relative", "unit", "spread", "margin", "weight")


def _known_keys(path: Path, where: str, mapping: dict, known: tuple) -> None:
    """A typo ('min_efect') is one line naming it and the keys that exist, never a silent default."""
    for key in mapping:
        if key not in known:
            raise BudgetError(f"{path}: {where}: unknown key {key!r}; the keys are {', '.join(known)}")


def _non_negative(path: Path, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BudgetError(f"{path}: {name}={value!r} must be a number >= 0")
    return float(value)


def _positive(path: Path, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise BudgetError(f"{path}: {name}={value!r} must be a positive number")
    return float(value)
