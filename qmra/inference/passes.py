"""A run over a video: its direction, where it began, and how far it got."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pass:
    """One run over the video, forwards or backwards, from frame ``first``. Memory schedules count
    time in frames since the pass began, so a backward pass keeps the paper's schedule."""

    first: int
    reverse: bool = False
    cursor: int | None = None  # the last frame done in this pass

    def time(self, index: int) -> int:
        return self.first - index if self.reverse else index - self.first

    def frame(self, time: int) -> int:
        return self.first - time if self.reverse else self.first + time

    def done(self, index: int) -> bool:
        """Whether ``index`` was already passed (frames are done in pass order)."""
        if self.cursor is None:
            return False
        return index >= self.cursor if self.reverse else index <= self.cursor

    @property
    def next(self) -> int:
        if self.cursor is None:
            return self.first
        return self.cursor - 1 if self.reverse else self.cursor + 1
