"""Start `python -m service` under one cost instrument: run as a script by path, in the
measured source tree (its service/ package, not edgebench's), so a git ref that knows
nothing of the cost tier is measured the same way as the working tree.

EDGEBENCH_COST_MODE (what this process records):

- ``count``: GC disabled for the whole process, nothing else (the callgrind and strace
  runs: their counts are taken from outside);
- ``py``: GC on, each collection counted by generation; tracemalloc's traced bytes and
  sys.getallocatedblocks();
- ``lines``: GC disabled; a trace function on the serving threads counts each Python
  function's calls and executed lines (deterministic attribution, no sampling).

Each SIGUSR1 (a mark between batches of requests, sent while no request is in flight)
writes the figures so far to EDGEBENCH_COST_OUT.<n>, n = 0, 1, .... SIGUSR1 is blocked in
every thread and taken by one marker thread (sigwait): the kernel may hand a process
signal to any thread, and Python runs handlers on the main thread only, which sits in
accept(). SIGTERM keeps its default action (the process ends at once).
"""
import gc
import json
import os
import runpy
import signal
import sys
import threading

MODE = os.environ.get("EDGEBENCH_COST_MODE", "count")
OUT = os.environ.get("EDGEBENCH_COST_OUT", "")
TREE = os.getcwd() + os.sep
figures: dict = {}


def _collections(phase, info):
    if phase == "stop":
        figures["gc"][info["generation"]] += 1


def _key(code) -> str:
    """file:line:qualname, the file relative to the measured tree (the same name for A and B)."""
    name = code.co_filename
    if name.startswith(TREE):
        name = name[len(TREE):]
    return f"{name}:{code.co_firstlineno}:{code.co_qualname}"


def _counter():
    calls, lines = {}, {}

    def tracer(frame, event, arg):
        key = _key(frame.f_code)
        if event == "call":
            calls[key] = calls.get(key, 0) + 1
            return local
        return None

    def local(frame, event, arg):
        if event == "line":
            key = _key(frame.f_code)
            lines[key] = lines.get(key, 0) + 1
        return local

    figures["calls"], figures["lines"] = calls, lines
    return tracer


marks = [0]


def _marker():
    while True:
        signal.sigwait({signal.SIGUSR1})
        _mark()


def _mark():
    if MODE == "py":
        import tracemalloc
        figures["traced_bytes"] = tracemalloc.get_traced_memory()[0]
        figures["allocated_blocks"] = sys.getallocatedblocks()
    path = f"{OUT}.{marks[0]}"
    marks[0] += 1
    with open(path + ".tmp", "w") as f:
        json.dump(figures, f)
    os.rename(path + ".tmp", path)


def main():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})   # inherited by every thread
    threading.Thread(target=_marker, name="cost-marker", daemon=True).start()
    if MODE == "py":
        import tracemalloc
        tracemalloc.start()
        figures["gc"] = [0, 0, 0]
        gc.callbacks.append(_collections)
    else:
        gc.disable()
        if MODE == "lines":
            threading.settrace(_counter())
    sys.argv = ["service", *sys.argv[1:]]
    sys.path[0] = os.getcwd()   # the measured tree, not this script's folder
    runpy.run_module("service", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
