"""One progress line while a scenario runs: phase, time, live rate, p95, memory vs limit."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, scenario: str, stream=sys.stderr, every_s: float = 5.0):
        self.scenario = scenario
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = 0.0 if self.tty else every_s
        self._last = 0.0
        self.memory: dict[str, tuple[float, float]] = {}   # component -> (MB, limit MB)

    def phase(self, text: str) -> None:
        self._emit(f"[{self.scenario}] {text}", force=True)

    def load(self, info: dict) -> None:
        parts = [f"[{self.scenario}] {info.get('phase', 'load')}",
                 f"{info.get('elapsed', 0):.0f}s elapsed, {info.get('remaining', 0):.0f}s left"]
        if info.get("rps") is not None:
            parts.append(f"{info['rps']:.1f} req/s")
        if info.get("p95_ms") is not None:
            parts.append(f"p95 {info['p95_ms']:.1f} ms")
        for comp, (mb, limit) in self.memory.items():
            parts.append(f"{comp} {mb:.0f}/{limit:.0f} MB" if limit else f"{comp} {mb:.0f} MB")
        self._emit("  ".join(parts))

    def _emit(self, line: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if force else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
