"""The background thread every profiling recorder runs in: started by ``start()``, ended by
``stop()`` or the ``with`` block, its warnings kept once each. py-spy and memory-profiler
recorders differ only in what the thread does, so the start/stop lives here once."""
from __future__ import annotations

import logging
import threading


class BackgroundRecorder:
    """Subclasses implement ``_run()`` (loop until ``self._stop`` is set), ``start()``
    (prepare, then ``self._start_thread()``) and ``stop()`` (``self._stop_thread()``,
    then finish). ``errors`` lists each distinct warning once, also logged under the
    subclass's module."""

    thread_name = "edgebench-recorder"

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = logging.getLogger(type(self).__module__)

    def _run(self) -> None:
        raise NotImplementedError

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _stop_thread(self, join_timeout: float) -> None:
        """Ask the thread to end and wait for it, at most ``join_timeout`` s (a daemon
        thread stuck in a read must not hold up the run's end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout)

    def _note(self, msg: str) -> None:
        if msg not in self.errors:
            self.errors.append(msg)
            self._log.warning(msg)

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
