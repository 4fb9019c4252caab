"""profiling/recorder.py: the thread a recorder works in starts with it, ends with the
`with` block, and each distinct warning is kept once (threads only: no process starts)."""
import logging

from plumbing.wait import wait_until
from profiling.recorder import BackgroundRecorder


class Counting(BackgroundRecorder):
    thread_name = "edgebench-test-recorder"

    def __init__(self):
        super().__init__()
        self.ticks = 0

    def start(self):
        self._start_thread()
        return self

    def stop(self):
        self._stop_thread(join_timeout=5)
        return self.ticks

    def _run(self):
        while not self._stop.wait(0.01):
            self.ticks += 1
            self._note("the same warning every tick")


def test_thread_runs_inside_the_block_and_ends_with_it(caplog):
    with caplog.at_level(logging.WARNING, logger=__name__):
        with Counting() as rec:
            assert rec._thread.name == "edgebench-test-recorder" and rec._thread.is_alive()
            wait_until(lambda: rec.ticks >= 3, 10, "three ticks", interval=0.01)
        assert not rec._thread.is_alive()
    ticks = rec.ticks
    assert ticks >= 3 and rec.stop() == ticks          # stopped: it counts no more
    assert rec.errors == ["the same warning every tick"]
    assert [r.message for r in caplog.records if r.name == __name__] == ["the same warning every tick"]
