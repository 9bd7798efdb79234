"""Signs that an object's mask went wrong, from what a run already has (no extra network work).

An empty mask is reported as lost (:mod:`qmra.inference.lost`). A wrong mask that is not empty is
the commoner failure: it spreads onto background of the object's colour, or jumps to a look-alike.
Per object and frame, against the frame it was boxed on (or the frame before):

- ``flood``: its area is more than :attr:`QualityThresholds.growth` times the boxed frame's, and
  still growing (off by default: see :class:`QualityThresholds`);
- ``spill`` (off by default: see :class:`QualityThresholds`): it fills most of its tracked box
  (stage 1's), as a mask that has spread onto the background around the object does (it may also
  be asked to reach outside the box, :attr:`QualityThresholds.outside`);
- ``fading``: its confidence fell below :attr:`QualityThresholds.fading` of the boxed frame's;
- ``jump``: its centre moved more than :attr:`QualityThresholds.jump` times its own size (the
  square root of its area) in one frame;
- ``found``: it was lost and was found again by its look (``--redetect``,
  :mod:`qmra.inference.redetect`), which can pick a look-alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qmra.inference.results import FrameResult

SIGNALS = ("flood", "spill", "fading", "jump", "found")
#: What a user can do about a doubtful mask, said with each warning (and, where adaptation ran, ADAPTED).
ADVICE = "draw a tighter box, or correct the object on that frame (qmra ui, or a second box in --boxes)"
#: What to do where an object was found again by its look: see whether it is the object.
FOUND_ADVICE = "check that it is the object; if not, correct it on that frame (qmra ui, or a second box in --boxes)"
ADAPTED = ", or try another --adapt-seed"


@dataclass(frozen=True)
class QualityThresholds:
    """Where each signal fires; None: it does not.

    Chosen on the 844 frames of the DAVIS training and validation sequences (shipped weights and
    settings; benchmarks/quality_thresholds.py): each signal takes the threshold that catches the most
    frames with J < 0.5 while firing on at most 3 % of the frames with J >= 0.8. ``fading`` 0.9 caught
    28 of 140 bad frames (0.3 % of good ones), ``jump`` 0.3 caught 4 (0.6 %), ``fill`` 0.75 caught 1
    (0 %; good masks filled their box at most 0.74). No ``growth`` did: objects that come closer grow
    3-8x with good masks (18 % of good frames at 3x), so ``flood`` is off by default. ``outside`` is
    not asked for: stage 2 keeps the mask inside stage 1's box (at most 9 % outside on those frames).
    Measured again with the weights shipped after that (38 frames with J < 0.5, 560 with J >= 0.8),
    the rule keeps fading 0.9 and jump 0.3; no ``fill`` catches a bad frame there (0.75 fires on 2
    good ones, and on objects that fill their box: signs, screens, discs), so ``spill`` is off by
    default too. See docs/results-history.md, "Quality signals".
    """

    growth: float | None = None
    fill: float | None = None
    outside: float | None = None
    fading: float | None = 0.9
    jump: float | None = 0.3


@dataclass(frozen=True)
class MaskShape:
    """One object's mask on one frame: ``area`` (pixels), ``centre`` (x, y pixels), the share of it
    ``outside`` its tracked box, how much of that box it ``fill``-s, and its ``confidence``."""

    area: int
    centre: tuple[float, float]
    outside: float
    fill: float
    confidence: float

    @classmethod
    def of(cls, result: FrameResult, object_id: int) -> "MaskShape | None":
        """The object's mask on this frame (None: empty)."""
        mask = result.labels == object_id
        ys, xs = np.nonzero(mask)
        if xs.size == 0:
            return None
        box = result.boxes.get(object_id)
        outside, fill = 0.0, 0.0
        if box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in box.as_tuple())
            inside = int(mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)].sum())
            outside = 1.0 - inside / xs.size
            fill = inside / max(1, (x1 - x0) * (y1 - y0))
        return cls(int(xs.size), (float(xs.mean()), float(ys.mean())), outside, fill,
                   float(result.confidence.get(object_id, 0.0)))


@dataclass(frozen=True)
class Measures:
    """An object's mask on a frame against its boxed frame (``growth``, ``fading``: confidence
    ratio) and the frame before (``growing``, ``jump``: centre shift over its size)."""

    growth: float
    growing: bool
    outside: float
    fill: float
    fading: float
    jump: float

    def signals(self, thresholds: QualityThresholds) -> tuple[str, ...]:
        fired = []
        if thresholds.growth is not None and self.growth > thresholds.growth and self.growing:
            fired.append("flood")
        if thresholds.fill is not None and self.fill > thresholds.fill and (
                thresholds.outside is None or self.outside > thresholds.outside):
            fired.append("spill")
        if thresholds.fading is not None and self.fading < thresholds.fading:
            fired.append("fading")
        if thresholds.jump is not None and self.jump > thresholds.jump:
            fired.append("jump")
        return tuple(fired)


class QualityWatch:
    """Follows a run's objects frame by frame (:meth:`check`); an object's reference is the frame it
    was boxed on, taken again when it is corrected."""

    def __init__(self, thresholds: QualityThresholds | None = None) -> None:
        self.thresholds = thresholds or QualityThresholds()
        self._first: dict[int, MaskShape] = {}
        self._last: dict[int, MaskShape] = {}

    def clear(self) -> None:
        self._first.clear()
        self._last.clear()

    def measure(self, result: FrameResult, starting: set[int] | frozenset[int] = frozenset()) -> dict[int, Measures]:
        """Each object's :class:`Measures` on this frame (objects ``starting`` here take it as their
        reference and get none; neither do empty masks, which are lost, not doubtful)."""
        measured = {}
        for object_id in result.object_ids:
            shape = MaskShape.of(result, object_id)
            if object_id in starting or object_id not in self._first:
                self._first.pop(object_id, None)
                if shape is not None:
                    self._first[object_id] = self._last[object_id] = shape
                continue
            if shape is None:
                continue
            first, last = self._first[object_id], self._last.get(object_id, self._first[object_id])
            shift = math.dist(shape.centre, last.centre) / math.sqrt(last.area)
            measured[object_id] = Measures(shape.area / first.area, shape.area > last.area, shape.outside, shape.fill,
                                           shape.confidence / max(first.confidence, 1e-6), shift)
            self._last[object_id] = shape
        return measured

    def check(self, result: FrameResult, starting: set[int] | frozenset[int] = frozenset(),
              found: set[int] | frozenset[int] = frozenset()) -> dict[int, tuple[str, ...]]:
        """The signals that fire for each object on this frame (objects without any left out);
        ``found``: objects found again by their look on it (``found``, first, where their mask is not empty)."""
        fired = {i: m.signals(self.thresholds) for i, m in self.measure(result, starting).items()}
        for object_id in found:
            if object_id in fired:
                fired[object_id] = ("found", *fired[object_id])
        return {i: signals for i, signals in fired.items() if signals}


def describe(signal: str) -> str:
    """What a signal means, in words."""
    return {"flood": "its mask has grown to several times its boxed frame's area and still grows",
            "spill": "its mask fills its whole tracked box, as one spread onto the background does",
            "fading": "its confidence fell sharply",
            "jump": "its mask jumped to another place",
            "found": "it was lost and was found again by its look (--redetect), maybe on a look-alike"}[signal]


class DoubtfulObjects:
    """Follows :attr:`FrameResult.doubts` over a run, as :class:`~qmra.inference.lost.LostObjects`
    follows lost objects: which objects were doubtful, on how many frames, by which signal."""

    def __init__(self) -> None:
        self.frames: dict[int, int] = {}  # object id → doubtful frames
        self.by_signal: dict[int, dict[str, int]] = {}
        self._doubtful: set[int] = set()  # on the frame before

    def update(self, result: FrameResult) -> list[tuple[int, tuple[str, ...]]]:
        """Take one frame's result; returns (object id, signals) for objects whose mask became
        doubtful on this frame (not those that already were on the frame before)."""
        started = [(i, signals) for i, signals in sorted(result.doubts.items()) if i not in self._doubtful]
        for object_id, signals in result.doubts.items():
            self.frames[object_id] = self.frames.get(object_id, 0) + 1
            counts = self.by_signal.setdefault(object_id, {})
            for signal in signals:
                counts[signal] = counts.get(signal, 0) + 1
        self._doubtful = set(result.doubts)
        return started

    def summary(self) -> str:
        """'no doubtful mask', or 'doubtful masks: object 1 on 14 frames (flood 10, jump 4)'."""
        if not self.frames:
            return "no doubtful mask"
        parts = []
        for object_id in sorted(self.frames):
            signals = ", ".join(f"{s} {n}" for s, n in sorted(self.by_signal[object_id].items(), key=lambda x: -x[1]))
            frames = self.frames[object_id]
            parts.append(f"object {object_id} on {frames} frame{'s' if frames != 1 else ''} ({signals})")
        return "doubtful masks: " + "; ".join(parts)


def warning(object_id: int, result: FrameResult, signals: tuple[str, ...], adapted: bool = False) -> str:
    """The line a command prints when an object's mask becomes doubtful (``adapted``: test-time
    adaptation ran, so another seed is worth a try)."""
    said = "; ".join(describe(s) for s in signals)
    advice = FOUND_ADVICE if "found" in signals else ADVICE
    return f"object {object_id} on frame {result.index} ({result.name}): {said}: {advice}{ADAPTED if adapted else ''}"
