"""A results file that grows with a run and is rewritten whole, atomically, from time to time: the
file on disk is always complete for the frames added before its last save."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qmra.data.atomic import write_text_atomic


@dataclass
class GrowingFile:
    """Subclasses collect frames and say how many (:meth:`count`) and what the file holds
    (:meth:`text`). :meth:`save` may be called after any frame; :meth:`save_if_due` does so during a
    run, every ``every`` frames at most, and never sooner than ``gap`` times the last save's duration
    after it: each save rewrites the whole file, which grows with the video, and on a long one (hours
    of a live stream) saving would otherwise take over."""

    path: Path
    every: int = field(default=25, kw_only=True)
    gap: float = field(default=20.0, kw_only=True)
    clock: Callable[[], float] = field(default=time.monotonic, kw_only=True)
    _saved_frames: int = field(default=0, init=False)
    _next_due: float = field(default=float("-inf"), init=False)

    def count(self) -> int:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def save(self) -> None:
        write_text_atomic(self.path, self.text())

    def save_if_due(self) -> bool:
        """:meth:`save` where ``every`` frames came since the last save and its ``gap`` has passed;
        whether it saved."""
        if self.count() - self._saved_frames < self.every or self.clock() < self._next_due:
            return False
        started = self.clock()
        self.save()
        ended = self.clock()
        self._saved_frames, self._next_due = self.count(), ended + self.gap * (ended - started)
        return True
