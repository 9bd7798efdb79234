"""Objects followed back from their box to the run's first frame, for a run that goes forwards.

A video run follows each object forwards from the frame it was boxed on. An object already in view
before that frame (boxed where it was clearest, not where it appeared) has no mask on the frames
before its box. :class:`EarlierMasks` fills them: one backward run over frames ``k, k-1, ..., s``
(``k`` the last of those boxes, ``s`` the forward run's first frame, usually 0) with each such
object's first box, whose label maps are kept (compressed) and painted over the forward run's
frames as they are written. Where an object followed
backwards overlaps one followed forwards, the one boxed later wins, as in ``qmra ui``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from qmra.data.boxes import Box
from qmra.errors import QmraError
from qmra.inference.prompts import Prompt
from qmra.inference.results import FrameResult


def first_boxes(prompts: Sequence[Prompt], start: int = 0) -> list[Prompt]:
    """Each object's earliest prompt, for the objects whose earliest prompt is after frame ``start``
    (where the forward run begins)."""
    first: dict[int, Prompt] = {}
    for prompt in prompts:
        if prompt.object_id not in first or prompt.frame < first[prompt.object_id].frame:
            first[prompt.object_id] = prompt
    return sorted((p for p in first.values() if p.frame > start), key=lambda p: (p.frame, p.object_id))


@dataclass
class _Frame:
    """What a backward run found on one frame: its label map (zlib) and per object its box and
    confidence (only objects boxed after this frame)."""

    labels: bytes
    boxes: dict[int, Box | None]
    confidence: dict[int, float]


@dataclass
class EarlierMasks:
    """The masks of ``late`` objects (each object's first prompt, after frame :attr:`start`) on the
    frames before their boxes, from one backward run (:meth:`run`); :meth:`paint` adds them to a
    forward result."""

    late: list[Prompt]
    #: the frame the backward run ends on: where the forward run begins
    start: int = 0
    shape: tuple[int, int] = (0, 0)
    frames: dict[int, _Frame] = field(default_factory=dict)
    #: object id → the earliest frame before its box where it has a mask (absent: none found)
    reached: dict[int, int] = field(default_factory=dict)
    #: object id → the first frame, going back from its box, where its mask looked wrong, and the signs
    #: (:mod:`qmra.inference.quality`): where an object left the view, it is masked on what looks like it
    doubtful: dict[int, tuple[int, tuple[str, ...]]] = field(default_factory=dict)

    def run(self, segmenter, source, *, batcher=None, step: int = 1) -> None:
        """Follow the late objects back from their boxes to frame :attr:`start` (all of it, also for
        a resumed run: its kept frames are checked against what it computes), through every
        ``step``-th frame from :attr:`start`, as the forward run goes (every box on those frames)."""
        if not self.late:
            return
        if not source.seekable:
            raise QmraError(f"{source.description} is read once, front to back: objects cannot be followed backwards "
                            "in it (leave out --backwards)")
        session = segmenter.start(source, prompts=self.late, batcher=batcher)
        boxed_on = {p.object_id: p.frame for p in self.late}
        for index, result in session.propagate(start=max(boxed_on.values()), reverse=True, stop=self.start, step=step):
            self._keep(index, result, [i for i, frame in boxed_on.items() if frame > index])

    def _keep(self, index: int, result: FrameResult, object_ids: list[int]) -> None:
        if not object_ids:
            return
        labels = np.where(np.isin(result.labels, object_ids), result.labels, 0).astype(np.uint8)
        self.shape = labels.shape
        self.frames[index] = _Frame(zlib.compress(labels.tobytes(), 1), {i: result.boxes.get(i) for i in object_ids},
                                    {i: result.confidence.get(i, 0.0) for i in object_ids})
        for object_id in object_ids:
            if not result.lost.get(object_id, True):
                self.reached[object_id] = index
            if result.doubts.get(object_id) and object_id not in self.doubtful:
                self.doubtful[object_id] = (index, result.doubts[object_id])

    def paint(self, result: FrameResult) -> FrameResult:
        """``result`` (a forward run's frame) with the late objects' masks on it, where it has any."""
        found = self.frames.get(result.index)
        if found is None:
            return result
        earlier = np.frombuffer(zlib.decompress(found.labels), dtype=np.uint8).reshape(self.shape)
        labels = np.where(earlier > 0, earlier, result.labels)
        boxes = {**result.boxes, **found.boxes}
        lost = {**result.lost, **{i: not bool((earlier == i).any()) for i in found.boxes}}
        # Probability maps are the forward run's only, so they are left out rather than half right.
        return replace(result, labels=labels, boxes=boxes, maps=None, confidence={**result.confidence, **found.confidence},
                       lost=lost)

    def summary(self) -> list[str]:
        """One line per late object: how far back it was found."""
        lines = []
        for prompt in self.late:
            reached = self.reached.get(prompt.object_id)
            where = f"its earliest mask is on frame {reached}" if reached is not None else "no mask before that frame"
            lines.append(f"object {prompt.object_id} (boxed on frame {prompt.frame}) followed backwards: {where}")
        return lines

    def warnings(self) -> list[str]:
        """One line per late object whose mask looked wrong on a frame before its box."""
        lines = []
        for prompt in self.late:
            if prompt.object_id in self.doubtful:
                frame, signs = self.doubtful[prompt.object_id]
                lines.append(f"object {prompt.object_id}, followed backwards from its box on frame {prompt.frame}, is "
                             f"doubtful from frame {frame} back ({', '.join(signs)}): where it is out of view, what it "
                             "is masked on only looks like it")
        return lines
