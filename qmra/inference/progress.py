"""What a run shows while it works: adaptation as a step of its own, then frames with the time left.

The time left is computed from frames alone: adapting the network to the first frame takes as
long as dozens of frames, and counted as one frame it would make the estimate absurd. In a
terminal the run shows a bar; elsewhere (a log, a pipe) a line every :data:`LINE_SECONDS`.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO, Union

#: How a run shows its progress: False (not at all), True or "bar" (a bar, for terminals), "lines"
#: (a line now and then, for logs).
ProgressStyle = Union[bool, str]
STYLES = (False, True, "bar", "lines")
#: Seconds between two progress lines (the first and the last are always written).
LINE_SECONDS = 10.0


class RunProgress:
    """A run of ``total`` frames (None: unknown), shown in ``style`` on ``stream``."""

    def __init__(self, style: ProgressStyle, total: int | None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if style not in STYLES:
            raise ValueError(f"progress must be one of {STYLES}, got {style!r}")
        self.style = "bar" if style is True else style
        self.total = total
        self.stream = stream or sys.stderr
        self.clock = clock
        self.done = 0
        self._frame_seconds = 0.0  # spent on frames, adaptation excluded
        self._since = clock()
        self._last_line = -float("inf")
        self._bar = None
        if self.style == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=False, file=self.stream)

    def adapting(self, done: int, total: int, object_ids: list[int]) -> None:
        """``done`` of ``total`` adaptation steps for the objects ``object_ids``; the time they take
        is not frame time."""
        what = f"adapting to object{'s' if len(object_ids) > 1 else ''} {', '.join(map(str, object_ids))}: {done}/{total} steps"
        now = self.clock()
        if self._bar is not None:
            self._bar.set_description_str(what if done < total else "", refresh=True)
            if done == total:
                self._bar.unpause()  # the bar's rate and time left count from here: frames only
        elif self.style == "lines" and (done == total or now - self._last_line >= LINE_SECONDS):
            self._line(what, now)
        self._since = now

    def frame(self) -> None:
        """One more frame done."""
        now = self.clock()
        self._frame_seconds += now - self._since
        self._since = now
        self.done += 1
        if self.total is not None and self.done > self.total:
            # The count was estimated from the file's duration (webm, MPEG streams) and fell short:
            # count up from here rather than show "frame 16 of 14".
            self.total = None
            if self._bar is not None:
                self._bar.total = None
        if self._bar is not None:
            self._bar.update(1)
        elif self.style == "lines" and (self.done == 1 or self.done == self.total or now - self._last_line >= LINE_SECONDS):
            self._line(self.status(), now)

    def status(self) -> str:
        """``frame 20 of 60, 1.5 frames/s, about 27 s left``: the rate and time left over frames only."""
        of = f" of {self.total}" if self.total is not None else ""
        text = f"frame {self.done}{of}"
        if self.done and self._frame_seconds > 0:
            rate = self.done / self._frame_seconds
            text += f", {rate:.2f} frames/s"
            if self.total is not None and self.done < self.total:
                text += f", about {duration((self.total - self.done) / rate)} left"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _line(self, text: str, now: float) -> None:
        print(f"qmra: {text}", file=self.stream, flush=True)
        self._last_line = now


def duration(seconds: float) -> str:
    """'45 s', '12 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
