"""What every video with annotations offers: DAVIS and YouTube-VOS sequences, synthetic videos."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VideoSequence(Protocol):
    """A video whose frames and label maps are read on demand (nothing is held in memory).

    ``labels(i)`` is an H×W uint8 map of object ids (0 = background) for an index in
    ``annotated_indices``; other frames have no annotation (YouTube-VOS annotates every 5th).
    """

    name: str

    @property
    def num_frames(self) -> int: ...

    @property
    def frame_names(self) -> list[str]: ...

    @property
    def object_ids(self) -> list[int]: ...

    @property
    def annotated_indices(self) -> list[int]: ...

    def image(self, index: int) -> np.ndarray: ...

    def labels(self, index: int) -> np.ndarray: ...
