"""The verdict: budgets checked per round on B, the A/B judged over rounds.

Works on figures alone (dicts of numbers per round and side), never runs anything.
Exit codes: 0 pass, 1 regression, 2 error or nothing measured, 3 inconclusive (could
not measure: fewer rounds than the design's first look).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

from edgebench.gate import stats
from edgebench.gate.stats import INCONCLUSIVE, PASS, REGRESSION
from reports.budgets import Budget, GateConfig

ERROR = "error"
NOISIER = 1.3        # rounds' SD over the calibrated spread by this factor: said in the detail
EXIT = {PASS: 0, REGRESSION: 1, ERROR: 2, INCONCLUSIVE: 3}


@dataclass
class Round:
    """One round's figures: B (the change) and A (the reference, None when budgets only)."""
    index: int
    b: dict
    a: dict | None = None
    errors: list = field(default_factory=list)
    elapsed_s: float = 0.0
    order: tuple = ()          # labels in the order their sides were started


@dataclass
class Check:
    name: str                 # "budget: oom_kills" or "A/B: cpu_ms_per_request"
    metric: str
    before: float | None
    after: float | None
    change: float | None      # A/B: relative (0.1 = +10%) or absolute; budgets: None
    low: float | None         # A/B interval of the change
    high: float | None
    rounds: int
    p_value: float | None     # A/B: one-sided p at this look (nominal; the boundary decides)
    bound: str
    verdict: str
    relative: bool = True
    detail: str = ""
    unit: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GateResult:
    checks: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    rounds: int = 0

    @property
    def verdict(self) -> str:
        if self.errors or any(c.verdict == ERROR for c in self.checks) or not self.checks:
            return ERROR
        if any(c.verdict == REGRESSION for c in self.checks):
            return REGRESSION
        if any(c.verdict == INCONCLUSIVE for c in self.checks):
            return INCONCLUSIVE
        return PASS

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]


def _values(rounds: list, side: str, metric: str) -> list:
    out = []
    for r in rounds:
        figures = r.b if side == "b" else r.a
        v = (figures or {}).get(metric)
        out.append(v if v is not None and math.isfinite(v) else None)
    return out


def _combine(values: list, rule: str) -> float | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return float(statistics.median(vals)) if rule == "median" else float(max(vals))


PAIRED_ALPHA = 0.05


def sign_test(pairs: list, bound: float) -> tuple[float, int, int]:
    """A 'paired' budget's test, for counts of rare events the machine makes on both sides
    (a scrape due and never sent in a stall): over the rounds where exactly one side is over
    the bound (a round where both are over, by whatever amounts, is the machine's and not
    counted), how unlikely is B's share if the change did nothing (each such round B's or
    A's with probability 1/2)? Returns (p, B-alone rounds, A-alone rounds)."""
    from scipy.stats import binomtest
    both = [(b, a) for b, a in pairs if b is not None and a is not None]
    b_worse = sum(1 for b, a in both if b > bound >= a)
    a_worse = sum(1 for b, a in both if a > bound >= b)
    n = b_worse + a_worse
    p = binomtest(b_worse, n, 0.5, alternative="greater").pvalue if n else 1.0
    return float(p), b_worse, a_worse


def check_budget(budget: Budget, b_values: list, a_values: list | None) -> Check:
    """One budget on B's rounds: 'any' fails when one round is over the bound (an OOM kill,
    a peak, a failed scrape happened) and, when A ran beside it, B was worse than A in that
    same round (what hit both sides was the machine, not the change); 'median' when the
    median round is over (an estimate that one round's noise must not decide)."""
    after = _combine(b_values, budget.over)
    before = _combine(a_values, budget.over) if a_values else None
    measured = [v for v in b_values if v is not None]
    name = f"budget: {budget.metric}"
    bound = f"<= {budget.max:g} ({budget.over} round)"
    if after is None:
        return Check(name, budget.metric, before, None, None, None, None, 0, None, bound, ERROR,
                     detail="not measured in any round")
    pairs = list(zip(b_values, a_values or [None] * len(b_values)))
    over = [(b, a) for b, a in pairs if b is not None and b > budget.max]
    shared = [(b, a) for b, a in over if a is not None and a >= b]
    paired_p = None
    if budget.over == "paired" and a_values:
        paired_p, b_worse, a_worse = sign_test(pairs, budget.max)
        verdict = REGRESSION if paired_p < PAIRED_ALPHA else PASS
    elif budget.over in ("any", "paired"):
        verdict = REGRESSION if len(over) > len(shared) else PASS
    else:
        verdict = REGRESSION if after > budget.max else PASS
    detail = f"{len(over)} of {len(measured)} round(s) over"
    if paired_p is not None:
        detail += (f"; B alone over in {b_worse} round(s), A alone in {a_worse}: one-sided sign test "
                   f"p = {paired_p:.3g} (regression below {PAIRED_ALPHA:g})")
    if shared:
        detail += f" ({len(shared)} with A as bad in the same round: the machine, not the change)"
    detail = f"{detail}; {budget.why}".rstrip("; ")
    if budget.metric == "oom_kills" and verdict == REGRESSION:
        detail = f"the service was OOM-killed {sum(measured):.0f} time(s) at its memory limit; " + detail
    return Check(name, budget.metric, before, after, None, None, None, len(measured), None,
                 bound, verdict, detail=detail)


def ab_checks(rounds: list, config: GateConfig, stored_a: list | None = None,
              final: bool = False) -> list[Check]:
    """The A/B metrics over rounds, each at its share of alpha, decided by the sequential
    design at this look (``final``: the last look, where every metric ends in pass or
    regression). ``stored_a``: A's figures from a stored run (unpaired); otherwise each
    round pairs A and B measured side by side."""
    checks = []
    alphas = stats.split_alpha(config.alpha, [m.weight for m in config.ab_metrics])
    for m, alpha in zip(config.ab_metrics, alphas):
        b_vals = _values(rounds, "b", m.metric)
        a_src = ([(f or {}).get(m.metric) for f in stored_a] if stored_a is not None
                 else _values(rounds, "a", m.metric))
        try:
            make = stats.unpaired_effect if stored_a is not None else stats.paired_effect
            e = make(m.metric, a_src, b_vals, m.min_effect, m.relative, alpha, m.spread, m.margin)
        except ValueError as err:
            verdict = ERROR if final else INCONCLUSIVE
            checks.append(Check(f"A/B: {m.metric}", m.metric, None, None, None, None, None,
                                len(rounds), None, "", verdict, m.relative,
                                f"could not measure: {err}"))
            continue
        design = stats.Design(alpha, config.min_rounds, config.max_rounds)
        e = stats.decide(e, design, final)
        spread_note = ""
        if m.spread and e.sd > NOISIER * m.spread:
            spread_note = (f"; the rounds' SD {e.sd:.3g} is above the calibrated spread {m.spread:g}"
                           f"{' (used instead)' if e.df is not None else ''}: this machine is noisier "
                           f"than the calibration, so the stated error rates do not hold here")
        before = _combine(a_src, "median")
        after = _combine(b_vals, "median")
        low, high = e.interval
        bound = f"+{m.min_effect:.0%}" if m.relative else f"+{m.min_effect:g} {m.unit}".rstrip()
        unit = "" if m.relative or not m.unit else f" {m.unit}"
        if e.verdict == INCONCLUSIVE and e.rounds < design.min_rounds:
            detail = (f"could not measure: {e.rounds} round(s) with both sides measured; "
                      f"the design's first look needs {design.min_rounds}")
        else:
            margin = f" > {_change(e.shown(e.margin), m.relative)}{unit}" if m.margin else ""
            detail = (f"{_change(e.change, m.relative)} [{_change(low, m.relative)}, "
                      f"{_change(high, m.relative)}]{unit} (repeated interval, +-{e.bound:.2f} SE), "
                      f"{e.rounds} rounds{' (last look)' if final else ''}, "
                      f"alpha {alpha:.2g}{margin}, p={e.p_value:.2g} (this look){spread_note}")
        checks.append(Check(f"A/B: {m.metric}", m.metric, before, after, e.change, low, high,
                            e.rounds, e.p_value, bound, e.verdict, m.relative, detail, m.unit))
    return checks


def _change(x: float | None, relative: bool, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if relative and x > 9.99:          # an early look's bound on few, noisy rounds: no bound
        return ">+999%"
    return f"{x:+.1%}" if relative else f"{x:+.3g} {unit}".rstrip()


def evaluate(rounds: list, config: GateConfig, stored_a: list | None = None,
             compare: bool = True, final: bool = True) -> GateResult:
    """Budgets per round on B; the A/B of B against A over the rounds (when ``compare``),
    at an intermediate look or, with ``final``, the last one."""
    result = GateResult(rounds=len(rounds))
    for r in rounds:
        result.errors.extend(r.errors)
    requests = [v for v in _values(rounds, "b", "requests") if v]
    if not requests:
        result.errors.append("nothing was measured: no request reached the service in the steady "
                             "phase (see the scenario logs)")
        return result
    for b in config.budgets:
        a_vals = _values(rounds, "a", b.metric) if any(r.a for r in rounds) else None
        result.checks.append(check_budget(b, _values(rounds, "b", b.metric), a_vals))
    if compare and config.ab_metrics:
        ab = ab_checks(rounds, config, stored_a, final)
        result.checks.extend(ab)
        for c in ab:
            if c.low is not None:
                half = (c.high - c.low) / 2
                result.notes.append(
                    f"resolution of the A/B on {c.metric}: +-{_change(half, c.relative, c.unit).lstrip('+')} "
                    f"after {c.rounds} rounds, against a minimum effect of {c.bound}")
    return result


def decided(result: GateResult) -> bool:
    """Whether more rounds could change the verdict: only an inconclusive one waits."""
    return result.verdict != INCONCLUSIVE
