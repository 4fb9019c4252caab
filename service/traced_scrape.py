"""Profile mode: one /metrics scrape under tracemalloc.

tracemalloc is process-wide: in the multi-threaded optimized service a snapshot also
holds what requests served meanwhile on other threads allocated (a /sensor answer's
buffer, say). Filtering on the scrape's own frames would need deep tracebacks, which
make the baseline's traced scrape minutes long; so one frame, and the report says so.
"""
import sys
import tracemalloc

from prometheus_client import REGISTRY, generate_latest

from plumbing.files import write_atomic

TRACEBACK_FRAMES = 1   # the allocating line: the least overhead (a traced baseline
                       # scrape still takes seconds: every int of its burn loop is traced)


def _dump_snapshot(path):
    """Atomically: a reader never sees half a file."""
    snapshot = tracemalloc.take_snapshot()
    write_atomic(path, lambda tmp: snapshot.dump(str(tmp)))


def run(config, scrape_work, peak, after):
    """PEAK snapshot right after the deliberate work, its temporaries (the baseline's
    blob copies) still alive; AFTER snapshot once they are dropped: what the scrape
    left behind (a leak). The after file is written last, so its presence means both
    are done. Returns the exposition."""
    tracemalloc.start(TRACEBACK_FRAMES)
    try:
        held = scrape_work(config)
        _dump_snapshot(peak)
        body = generate_latest(REGISTRY)
        del held
        _dump_snapshot(after)
        return body
    except OSError as exc:   # the profiler times out waiting; the scrape still answers
        print(f"sensor-service: scrape capture failed: {exc}", file=sys.stderr, flush=True)
        return generate_latest(REGISTRY)
    finally:
        tracemalloc.stop()
