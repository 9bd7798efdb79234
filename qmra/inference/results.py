"""What a session returns for each frame: labels, boxes, per-object confidence and lost flags, and
probabilities that reach the host only when asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from qmra.data.boxes import Box


class ProbabilityMaps:
    """One frame's probabilities at the network's working size, on its device; scaled to the
    frame's size and copied to the host only when asked for (most callers need labels only)."""

    def __init__(self, object_ids: list[int], merged: torch.Tensor, own: torch.Tensor, frame_size: tuple[int, int]) -> None:
        self.object_ids = object_ids
        self._merged = merged  # (K+1)×h×w, background first
        self._own = own  # K×h×w
        self.frame_size = frame_size

    def _at_frame_size(self, maps: torch.Tensor) -> np.ndarray:
        if tuple(maps.shape[-2:]) != self.frame_size:
            maps = F.interpolate(maps[None], size=self.frame_size, mode="bilinear", align_corners=False)[0]
        return maps.cpu().numpy()

    def merged(self) -> dict[int, np.ndarray]:
        maps = self._at_frame_size(self._merged[1:])
        return {object_id: maps[slot] for slot, object_id in enumerate(self.object_ids)}

    def own(self) -> dict[int, np.ndarray]:
        maps = self._at_frame_size(self._own)
        return {object_id: maps[slot] for slot, object_id in enumerate(self.object_ids)}


@dataclass
class FrameResult:
    """What :meth:`InferenceSession.propagate` yields for one frame.

    - ``labels``: H×W uint8 map of object ids (0 = background), after merging all objects;
    - ``boxes``: object id → the box the object was tracked to (its given box on its first frame;
      None where it was lost). Only objects started on or before this frame appear.
    - ``image``: the H×W×3 uint8 frame itself (no copy), for overlays;
    - ``confidence``: object id → its mean own probability over the pixels where it exceeds 0.5
      (0.0 where there are none): near 1 for a crisp mask, low for a doubtful one;
    - ``lost``: object id → True where its mask on this frame is empty (lost, or out of view);
    - ``doubts``: object id → the signs that its (non-empty) mask went wrong on this frame
      (:mod:`qmra.inference.quality`: ``flood``, ``spill``, ``fading``, ``jump``); objects without
      any are left out.

    Computed when first used:

    - ``masks``: object id → H×W bool (``labels == id``);
    - ``probabilities``: object id → H×W float32, the merged (softmax) probability of each object;
    - ``object_probabilities``: object id → H×W float32, each object's own probability before merging.
    """

    index: int
    name: str
    labels: np.ndarray
    boxes: dict[int, Box | None]
    image: np.ndarray
    maps: ProbabilityMaps | None = field(default=None, repr=False)
    confidence: dict[int, float] = field(default_factory=dict)
    lost: dict[int, bool] = field(default_factory=dict)
    doubts: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.boxes)

    @cached_property
    def masks(self) -> dict[int, np.ndarray]:
        return {object_id: self.labels == object_id for object_id in self.object_ids}

    @cached_property
    def probabilities(self) -> dict[int, np.ndarray]:
        return {} if self.maps is None else self.maps.merged()

    @cached_property
    def object_probabilities(self) -> dict[int, np.ndarray]:
        return {} if self.maps is None else self.maps.own()
