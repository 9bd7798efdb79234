"""Inference settings."""

from __future__ import annotations

from dataclasses import dataclass

from qmra.errors import ConfigError


@dataclass(frozen=True)
class InferenceSettings:
    """How a video is propagated.

    - ``mem_every``: besides the object's first frame and the previous frame, every N-th frame since
      the first joins the memory (the paper: 10 on DAVIS, 5 on YouTube-VOS). 0 = no extra frames
      (the paper's ``w/o EF``).
    - ``max_memory_frames``: the cap on stored frames per object, first and previous included. The
      first frame always stays; the oldest extra frame goes first. 16 leaves DAVIS-length videos
      (≤ 104 frames at N = 10: at most 13 frames) untouched and keeps memory flat on long videos.
    """

    mem_every: int = 10
    max_memory_frames: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.mem_every, int) or self.mem_every < 0:
            raise ConfigError(f"mem_every must be an integer >= 0, got {self.mem_every!r}")
        if not isinstance(self.max_memory_frames, int) or self.max_memory_frames < 2:
            raise ConfigError(f"max_memory_frames must be an integer >= 2 (first + previous frame), got {self.max_memory_frames!r}")
