"""A tiny progress bar for the operator's commands, on stderr; no dependency.

On a terminal it redraws one line (``\\r``), at most ten times a second::

    keys rotate [############............]  50%  500/1000

Elsewhere (cron, CI, a pipe) it prints a plain line about every 10% instead, so a log shows
how far a long run got without carriage returns in it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Call it with ``(done, total)`` as work completes; :meth:`close` ends the line.

    ``total`` may grow while the work runs (new records appear); the bar never shows more
    than 100%. Nothing is printed for ``total == 0`` or when ``enabled`` is false.
    """

    WIDTH = 24
    REDRAW = 0.1

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        self._drawn: tuple[int, int] | None = None  # what the line shows now
        self._last_draw = 0.0
        self._last_step = 0  # no line for 0%
        self._done = 0
        self._total = 0

    def __call__(self, done: int, total: int) -> None:
        self._done, self._total = done, max(total, done)
        if not self.enabled or self._total == 0:
            return
        if self.tty:
            now = time.monotonic()
            if done >= self._total or now - self._last_draw >= self.REDRAW:
                self._last_draw = now
                self._draw()
            return
        step = self._percent() // 10
        if step > self._last_step:
            self._last_step = step
            self.stream.write(f"{self.label}: {self._percent()}% ({done}/{self._total})\n")
            self.stream.flush()

    def _percent(self) -> int:
        return min(100, self._done * 100 // self._total) if self._total else 100

    def _draw(self) -> None:
        filled = self.WIDTH * min(self._done, self._total) // self._total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {self._percent():3d}%  {self._done}/{self._total}"
        )
        self.stream.flush()
        self._drawn = (self._done, self._total)

    def close(self) -> None:
        """Finish the bar's line (terminal), so what follows starts on a new one."""
        if self.enabled and self.tty and self._drawn is not None:
            if self._drawn != (self._done, self._total):
                self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = None
