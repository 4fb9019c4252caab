"""The cost tier's verdict: one row per endpoint and figure (A, B, change, threshold),
a regression when a deciding figure rises past its threshold on any endpoint; the
movers that explain it; the modelled CPU; disagreements with the wall-clock tier."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgebench.cost.config import DECIDING, CostConfig
from edgebench.cost.measure import ENDPOINTS
from edgebench.gate.outputs import text_table

PASS, REGRESSION, SHOWN = "pass", "regression", "shown"
# shown beside the deciding figures, never decided on
SHOWN_FIGURES = ("sched_syscalls", "held_blocks", "gc_per_1000", "modelled_cpu_us")
UNITS = {"instructions": "Ir", "alloc_blocks": "blocks", "syscalls": "calls", "held_bytes": "B",
         "sched_syscalls": "calls", "held_blocks": "blocks", "gc_per_1000": "per 1000",
         "modelled_cpu_us": "us"}


@dataclass
class Row:
    endpoint: str
    figure: str
    a: float | None
    b: float | None
    change: float | None     # relative (0.01 = +1 %) when `relative`, else B - A
    threshold: float | None
    relative: bool
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CostResult:
    rows: list = field(default_factory=list)
    movers: dict = field(default_factory=dict)     # endpoint -> lines naming what moved
    notes: list = field(default_factory=list)
    elapsed_s: float = 0.0
    error: str = ""

    @property
    def verdict(self) -> str:
        return REGRESSION if any(r.verdict == REGRESSION for r in self.rows) else PASS

    def regressions(self) -> list:
        return [r for r in self.rows if r.verdict == REGRESSION]


def modelled_cpu_us(f: dict, config: CostConfig) -> float | None:
    """CPU per request from the counts: instructions and each system call, each weighted
    by its cost measured on this machine (budgets.yml cost.model)."""
    if not config.ns_per_instruction or "instructions" not in f or "syscalls_by_name" not in f:
        return None
    default = config.ns_per_syscall.get("default", 0.0)
    ns = f["instructions"] * config.ns_per_instruction + sum(
        calls * config.ns_per_syscall.get(name, default) for name, calls in f["syscalls_by_name"].items())
    return ns / 1000


def _change(a, b, relative: bool):
    if a is None or b is None:
        return None
    if relative:
        return (b - a) / a if a else (0.0 if b == a else float("inf"))
    return b - a


def compare(a: dict, b: dict, config: CostConfig) -> CostResult:
    """Rows and movers for two sides' figures ({endpoint: {figure: value}})."""
    result = CostResult()
    for endpoint in ENDPOINTS:
        fa, fb = dict(a.get(endpoint, {})), dict(b.get(endpoint, {}))
        fa["modelled_cpu_us"], fb["modelled_cpu_us"] = modelled_cpu_us(fa, config), modelled_cpu_us(fb, config)
        for figure, (relative, _) in DECIDING.items():
            va, vb = fa.get(figure), fb.get(figure)
            change = _change(va, vb, relative)
            threshold = config.threshold(figure, endpoint)
            verdict = REGRESSION if change is not None and change > threshold else PASS
            result.rows.append(Row(endpoint, figure, va, vb, change, threshold, relative, verdict))
        for figure in SHOWN_FIGURES:
            va, vb = fa.get(figure), fb.get(figure)
            if va is None and vb is None:
                continue
            result.rows.append(Row(endpoint, figure, va, vb, _change(va, vb, figure == "modelled_cpu_us"),
                                   None, figure == "modelled_cpu_us", SHOWN))
        result.movers[endpoint] = movers(fa, fb)
    return result


def _same_name(d: dict) -> dict:
    """Python function keys named alike on both sides: file:qualname without the first
    line (an edit above a function moves it), installed packages from site-packages/ on
    (their absolute path differs when a side's tree holds the venv)."""
    out: dict = {}
    for key, value in d.items():
        cut = key.find("site-packages/")
        key = key[cut:] if cut >= 0 else key
        path, _, rest = key.partition(":")
        key = f"{path}:{rest.partition(':')[2] or rest}"
        out[key] = out.get(key, 0.0) + value
    return out


def _top(da: dict, db: dict, k: int, python: bool = False) -> list[tuple[str, float, float]]:
    if python:
        da, db = _same_name(da), _same_name(db)
    keys = set(da) | set(db)
    moved = [(key, da.get(key, 0.0), db.get(key, 0.0)) for key in keys]
    moved = [m for m in moved if m[2] - m[1] >= 0.5]         # rises: what a regression is made of
    return sorted(moved, key=lambda m: m[1] - m[2])[:k]


def movers(fa: dict, fb: dict, k: int = 3) -> list[str]:
    """What rose per request, A against B: Python functions by own executed lines and by
    calls, C functions by own instructions, system calls by name. A new function shows as
    calls 0 -> n; a loop inside an existing function as that function's own lines."""
    out = []
    for key, va, vb in _top(fa.get("py_lines", {}), fb.get("py_lines", {}), k, python=True):
        out.append(f"Python {key}: own lines {va:.4g} -> {vb:.4g} ({vb - va:+.4g})")
    for key, va, vb in _top(fa.get("py_calls", {}), fb.get("py_calls", {}), k, python=True):
        out.append(f"Python {key}: calls {va:.4g} -> {vb:.4g} ({vb - va:+.4g})")
    c_a, c_b = fa.get("c_functions", {}), fb.get("c_functions", {})
    for key, va, vb in _top(c_a, c_b, k):
        if abs(vb - va) >= 100:
            out.append(f"C {key}: own Ir {va:.4g} -> {vb:.4g} ({vb - va:+.4g})")
    for key, va, vb in _top(fa.get("syscalls_by_name", {}), fb.get("syscalls_by_name", {}), k):
        out.append(f"syscall {key}: {va:.3g} -> {vb:.3g} ({vb - va:+.3g})")
    return out


def _fmt(v, figure: str) -> str:
    if v is None:
        return "-"
    if figure == "instructions":
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _fmt_change(r: Row) -> str:
    if r.change is None:
        return "-"
    return f"{r.change:+.3%}" if r.relative else f"{r.change:+.3g}"


def _fmt_threshold(r: Row) -> str:
    if r.threshold is None:
        return "(shown)"
    return f"{r.threshold:.3g}" if not r.relative else f"+{r.threshold:.2%}"


HEAD = ("endpoint", "figure", "A", "B", "change", "threshold", "verdict")


def table_rows(result: CostResult) -> list[tuple]:
    return [(r.endpoint, f"{r.figure} ({UNITS[r.figure]}/req)" if r.figure != "gc_per_1000" else r.figure,
             _fmt(r.a, r.figure), _fmt(r.b, r.figure), _fmt_change(r), _fmt_threshold(r), r.verdict)
            for r in result.rows]


def table(result: CostResult) -> str:
    return "\n".join(text_table(HEAD, table_rows(result)) + explanation(result))


def explanation(result: CostResult) -> list[str]:
    """One line per regression naming the endpoint, and the movers of that endpoint."""
    lines = []
    for r in result.regressions():
        lines.append(f"regression: {r.endpoint} {r.figure} {_fmt_change(r)} (threshold {_fmt_threshold(r)})")
    for endpoint in sorted({r.endpoint for r in result.regressions()}, key=ENDPOINTS.index):
        lines += [f"  moved on {endpoint}: {m}" for m in result.movers.get(endpoint, [])]
    return lines + [f"note: {n}" for n in result.notes]


def markdown(result: CostResult) -> str:
    out = ["## Cost tier (counted per request: callgrind, strace, tracemalloc)", "",
           f"**Verdict: {result.verdict}** in {result.elapsed_s:.0f} s", "",
           "| " + " | ".join(HEAD) + " |", "|" + " --- |" * len(HEAD)]
    out += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    extra = explanation(result)
    return "\n".join(out + ([""] + [f"- {x.strip()}" for x in extra] if extra else [])) + "\n"


def disagreement(result: CostResult, cpu_change: float | None, cpu_verdict: str | None,
                 min_effect: float) -> str | None:
    """One line when the counts and the wall-clock CPU disagree, naming the blind spot."""
    if cpu_change is None:
        return None
    moved = [r for r in result.rows if r.figure in ("instructions", "syscalls") and r.verdict == REGRESSION]
    model = [r.change for r in result.rows if r.figure == "modelled_cpu_us" and r.change is not None]
    if moved and cpu_verdict != REGRESSION:
        r = moved[0]
        return (f"disagreement: {r.endpoint} {r.figure} rose {_fmt_change(r)} but CPU per request did not "
                f"move past the wall-clock tier's {min_effect:.0%} ({cpu_change:+.1%}): a change smaller "
                f"than its round-to-round noise, which the counts resolve")
    if not moved and cpu_verdict == REGRESSION:
        biggest = max(model, default=0.0)
        return (f"disagreement: CPU per request rose {cpu_change:+.1%} while instructions and system calls "
                f"did not (modelled CPU {biggest:+.1%} at most): kernel time per call, cache or branch "
                f"effects, I/O, or a process outside the service, none of which the counts see")
    return None
