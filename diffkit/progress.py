"""The one progress bar: a line on stderr, no extra dependency.

Used by sampling (``progress=True``), training and ``diffkit bench``. On a
terminal it redraws in place; otherwise (logs, CI, a pipe) it writes a new line
each time another tenth of the work is done: at most 11 lines, however long the
run.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

PIPED_LINES = 10  # off a terminal: one line per tenth of the work (plus the start)


class ProgressBar:
    """``bar.update(done, note)`` or ``bar.advance(amount, note)``; ``close()`` (or ``with``) ends the line."""

    def __init__(
        self,
        total: float,  # the amount of work at 100%
        unit: str | None = "steps",  # shown as "done/total unit" and "unit/s"; None shows a percentage (weighted work)
        *,
        start: float = 0.0,  # work already done when the bar starts (a resumed run): rates count from here
        enabled: bool = True,  # False draws nothing
        stream: TextIO | None = None,  # default: sys.stderr
        width: int = 30,  # characters of the bar itself
    ) -> None:
        self.total, self.unit, self.enabled, self.width = max(float(total), 1e-9), unit, enabled, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done = self.start = float(start)
        self.t0 = time.perf_counter()
        self._tenth_shown = -1

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, amount: float, note: str = "") -> None:
        """Mark ``amount`` more of the work done and redraw."""
        self.update(self.done + amount, note)

    def update(self, done: float, note: str = "") -> None:
        """Redraw with ``done`` of ``total`` finished and ``note`` (e.g. the running loss, the current task)."""
        self.done = done
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        tenth = math.floor(PIPED_LINES * frac)
        if not self.tty and tenth == self._tenth_shown:
            return
        self._tenth_shown = tenth
        elapsed = time.perf_counter() - self.t0
        rate = (done - self.start) / max(elapsed, 1e-9)
        eta = f"eta {(self.total - done) / rate:.0f}s" if rate > 0 else "eta ?"
        if self.unit is None:
            count = f"{100 * frac:5.1f}% {elapsed:6.0f}s"
        else:
            count = f"{done:g}/{self.total:g} {self.unit}  {rate:.2f} {self.unit}/s"
        line = f"[{'#' * int(self.width * frac):<{self.width}}] {count}  {eta}" + (f"  {note}" if note else "")
        self.stream.write(f"\r{line}" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line on a terminal."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
