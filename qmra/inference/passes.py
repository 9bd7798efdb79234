"""A run over a video: its direction, where it began, and how far it got."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pass:
    """One run over the video, forwards or backwards, from frame ``first``, through every ``step``-th
    frame. Memory schedules count time in frames done since the pass began, so a backward pass keeps
    the paper's schedule, and so does a run through every other frame."""

    first: int
    reverse: bool = False
    cursor: int | None = None  # the last frame done in this pass
    step: int = 1

    def time(self, index: int) -> int:
        return (self.first - index if self.reverse else index - self.first) // self.step

    def frame(self, time: int) -> int:
        return self.first - time * self.step if self.reverse else self.first + time * self.step

    def done(self, index: int) -> bool:
        """Whether ``index`` was already passed (frames are done in pass order)."""
        if self.cursor is None:
            return False
        return index >= self.cursor if self.reverse else index <= self.cursor

    @property
    def next(self) -> int:
        if self.cursor is None:
            return self.first
        return self.cursor - self.step if self.reverse else self.cursor + self.step
