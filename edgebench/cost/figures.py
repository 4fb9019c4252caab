"""One side's figures per request per endpoint, from its runs' batches (batch(2N) - batch(N)) / N."""
from __future__ import annotations

from edgebench.cost.measure import ENDPOINTS, SCHEDULING, Plan


def _per_request(b1, b2, n: int) -> float:
    return (b2 - b1) / n


def _per_key(d1: dict, d2: dict, n: int) -> dict:
    keys = set(d1) | set(d2)
    out = {k: (d2.get(k, 0) - d1.get(k, 0)) / n for k in keys}
    return {k: v for k, v in out.items() if v}


def side_figures(runs: dict, plan: Plan) -> dict:
    """{endpoint: {figure: value, ...}} from {instrument: {endpoint: (batch N, batch 2N)}}.

    Figures: instructions, alloc_blocks (CPython allocator calls), syscalls (those whose
    number does not depend on scheduling), sched_syscalls (shown, not decided),
    held_bytes and held_blocks (still held after the requests, tracemalloc and
    sys.getallocatedblocks), gc_per_1000 (collections with GC on); and for attribution
    c_functions (own Ir), py_calls and py_lines (per Python function), syscalls_by_name."""
    out = {}
    for endpoint in ENDPOINTS:
        f = {}
        if "callgrind" in runs:
            b1, b2 = runs["callgrind"][endpoint]
            n = plan.batch("callgrind", endpoint)
            f["instructions"] = _per_request(b1["instructions"], b2["instructions"], n)
            f["alloc_blocks"] = _per_request(b1["alloc_blocks"], b2["alloc_blocks"], n)
            f["c_functions"] = _per_key(b1["functions"], b2["functions"], n)
        if "strace" in runs:
            b1, b2 = runs["strace"][endpoint]
            names = _per_key(b1["syscalls"], b2["syscalls"], plan.n_native)
            f["syscalls_by_name"] = names
            f["syscalls"] = sum(v for k, v in names.items() if k not in SCHEDULING)
            f["sched_syscalls"] = sum(v for k, v in names.items() if k in SCHEDULING)
        if "py" in runs:
            b1, b2 = runs["py"][endpoint]
            n = plan.n_native
            f["held_bytes"] = _per_request(b1["traced_bytes"], b2["traced_bytes"], n)
            f["held_blocks"] = _per_request(b1["allocated_blocks"], b2["allocated_blocks"], n)
            f["gc_per_1000"] = 1000 * _per_request(sum(b1["gc"]), sum(b2["gc"]), n)
        if "lines" in runs:
            b1, b2 = runs["lines"][endpoint]
            f["py_calls"] = _per_key(b1["calls"], b2["calls"], plan.n_native)
            f["py_lines"] = _per_key(b1["lines"], b2["lines"], plan.n_native)
        out[endpoint] = f
    return out
