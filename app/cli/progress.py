"""Progress of long operations (dlq replay --all, dlq purge, recompute of many clients) on a
terminal: `replayed 1200/5000  310/s  ETA 12s`, redrawn in place on stderr at most a few times a
second, and nothing at all when stderr is not a terminal or the command prints --json (scripts
read stdout; a log file must not fill with carriage returns)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

REDRAW_S = 0.2  # redraws at most this often


def line(label: str, done: int, total: int | None, elapsed: float) -> str:
    """`label done/total  rate/s  ETA …` (no total: count and rate only)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    count = f"{done}/{total}" if total is not None else str(done)
    parts = [f"{label} {count}", f"{rate:.0f}/s" if rate >= 10 else f"{rate:.1f}/s"]
    if total is not None and done < total:
        parts.append(f"ETA {eta(total - done, rate)}")
    return "  ".join(parts)


def eta(left: int, rate: float) -> str:
    if rate <= 0:
        return "?"
    seconds = round(left / rate)
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class Progress:
    """Counts done items and shows the count, rate and ETA while `shown`."""

    def __init__(self, err: IO[str], label: str, total: int | None, *, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.err, self.label, self.total, self.clock = err, label, total, clock
        self.shown = not quiet and err.isatty()
        self.done = 0
        self.started = clock()
        self._drawn_at: float | None = None
        self._width = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.shown and (self._drawn_at is None or now - self._drawn_at >= REDRAW_S):
            self._draw(now)

    def close(self) -> None:
        """The final count, and the line ended (only if anything was shown)."""
        if self.shown and self._drawn_at is not None:
            self._draw(self.clock())
            self.err.write("\n")
            self.err.flush()

    def _draw(self, now: float) -> None:
        text = line(self.label, self.done, self.total, now - self.started)
        self.err.write("\r" + text.ljust(self._width))
        self.err.flush()
        self._width, self._drawn_at = len(text), now
