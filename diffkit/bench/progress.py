"""A one-line progress bar on stderr for a planned list of weighted tasks (no extra dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total_weight) as bar: bar.advance(weight, label)``; draws only when enabled."""

    def __init__(self, total: float, enabled: bool = True, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.enabled, self.width = max(float(total), 1e-9), enabled, width
        self.stream = stream or sys.stderr
        self.done, self.start = 0.0, time.perf_counter()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def show(self, label: str) -> None:
        """Redraw with ``label`` naming the task now running."""
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        elapsed = time.perf_counter() - self.start
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        bar = "#" * int(self.width * frac)
        eta_text = f"eta {eta:5.0f}s" if eta == eta else "eta     ?"
        self.stream.write(f"\r[{bar:<{self.width}}] {100 * frac:5.1f}% {elapsed:6.0f}s {eta_text}  {label[:60]:<60}")
        self.stream.flush()

    def advance(self, weight: float, label: str = "") -> None:
        """Mark ``weight`` more of the work done."""
        self.done += weight
        self.show(label)
