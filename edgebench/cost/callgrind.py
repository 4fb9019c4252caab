"""Read a callgrind.out file: total instructions, each C function's own instructions, and
the calls into CPython's object allocator (one call = one Python block allocated)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# CPython 3.11's object allocator entry points behind PyObject_Malloc/PyMem_Malloc
ALLOCATORS = ("_PyObject_Malloc", "_PyObject_Calloc", "_PyObject_Realloc")
_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")


@dataclass
class Profile:
    total: int = 0
    self_cost: dict = field(default_factory=dict)    # function -> own Ir
    calls: dict = field(default_factory=dict)        # callee -> calls from other functions

    def allocator_calls(self) -> int:
        return sum(self.calls.get(name, 0) for name in ALLOCATORS)


def _name(value: str, names: dict) -> str:
    """Resolve callgrind's name compression: "(12) foo" defines 12, "(12)" refers to it."""
    m = _NAMED.match(value)
    if not m:
        return value
    if m.group(2) is not None:
        names[m.group(1)] = m.group(2)
        return m.group(2)
    return names.get(m.group(1), value)


def parse_callgrind(path: Path) -> Profile:
    profile = Profile()
    fn_names: dict = {}
    fn = callee = None
    pending_call = 0          # the next cost line is a call's inclusive cost, not own cost
    with open(path, errors="replace") as f:
        for line in f:
            if line[:1].isdigit() or line[:1] in "+-*":
                if pending_call:
                    if callee != fn:
                        profile.calls[callee] = profile.calls.get(callee, 0) + pending_call
                    pending_call = 0
                    continue
                parts = line.split()
                if len(parts) >= 2 and fn is not None:
                    profile.self_cost[fn] = profile.self_cost.get(fn, 0) + int(parts[1])
            elif line.startswith("fn="):
                fn = _name(line[3:].strip(), fn_names)
            elif line.startswith("cfn="):
                callee = _name(line[4:].strip(), fn_names)
            elif line.startswith("calls="):
                pending_call = int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                profile.total = max(profile.total, int(line.split()[1]))
    if not profile.total:
        profile.total = sum(profile.self_cost.values())
    return profile
