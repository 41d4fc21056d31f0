"""A small progress bar for training loops, written by hand (no tqdm).

    step  340/1000 [######........] 34%  loss 0.0412  2381 steps/s  eta 0.3 s

It redraws one line on stderr with a carriage return, at most every `min_interval`
seconds, so that drawing never costs more than the training it reports. It stays silent
when stderr is not a terminal (logs, pipes, CI) or when asked to be quiet.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


class ProgressBar:
    """Running loss, step/total, rate and time left, on one line of `stream`.

    Use `update(step, loss)` after each finished step and `close()` at the end (or as
    a context manager). `enabled=None` means: draw only when `stream` is a terminal.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 24,
        min_interval: float = 0.1,
        label: str = "step",
        start_step: int = 0,
    ) -> None:
        self.total = int(total)
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.label = label
        self.start_step = int(start_step)  # a resumed run starts counting its rate here
        self.step = self.start_step
        self.loss = math.nan
        self._start = time.perf_counter()
        self._last_draw = -math.inf
        self._drawn = False
        self._drawn_step = -1  # the step the line on screen shows

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate(self) -> float:
        """Steps per second since this bar started."""
        elapsed = time.perf_counter() - self._start
        done = self.step - self.start_step
        return done / elapsed if elapsed > 0 and done > 0 else math.nan

    def line(self) -> str:
        """The text of the bar for the current state (also used by tests)."""
        frac = self.step / self.total if self.total > 0 else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        digits = len(str(self.total))
        rate = self.rate
        left = (self.total - self.step) / rate if rate and math.isfinite(rate) else math.nan
        rate_text = f"{rate:.0f} steps/s" if math.isfinite(rate) else "- steps/s"
        return (
            f"{self.label} {self.step:>{digits}}/{self.total} [{bar}] {100.0 * frac:3.0f}%  "
            f"loss {self.loss:.4g}  {rate_text}  eta {_format_seconds(left)}"
        )

    def update(self, step: int, loss: float) -> None:
        """Record that `step` steps are done with running loss `loss`; redraw if it is time."""
        self.step = int(step)
        self.loss = float(loss)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval or self.step >= self.total:
            self._last_draw = now
            self.stream.write("\r" + self.line() + "\x1b[K")  # \x1b[K clears what a longer line left
            self.stream.flush()
            self._drawn = True
            self._drawn_step = self.step

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self.enabled and self._drawn:
            if self._drawn_step != self.step:  # the screen is behind: show the final state
                self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
