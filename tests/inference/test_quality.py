"""The signs that a mask went wrong: each fires on the case it names, and not on a steady mask."""

from __future__ import annotations

import numpy as np

from qmra.data import Box
from qmra.inference.quality import DoubtfulObjects, QualityThresholds, QualityWatch, warning
from qmra.inference.results import FrameResult


def _result(index: int, rects: dict[int, tuple[int, int, int, int]], boxes: dict[int, Box] | None = None,
            confidence: float = 0.9) -> FrameResult:
    """A 100×200 frame whose objects' masks are the given rectangles (x0, y0, x1, y1); tracked boxes
    are the rectangles with a quarter of their size added on each side (the mask fills 44 % of its
    box) unless given."""
    labels = np.zeros((100, 200), np.uint8)
    for object_id, (x0, y0, x1, y1) in rects.items():
        labels[y0:y1, x0:x1] = object_id
    boxes = boxes or {i: Box(x0 - (x1 - x0) / 4, y0 - (y1 - y0) / 4, x1 + (x1 - x0) / 4, y1 + (y1 - y0) / 4)
                      for i, (x0, y0, x1, y1) in rects.items()}
    return FrameResult(index, f"{index:05d}", labels, boxes, np.zeros((100, 200, 3), np.uint8),
                       confidence={i: confidence for i in rects}, lost={i: False for i in rects})


#: Every signal on (flood and spill are off by default: they did not catch bad masks on DAVIS).
ALL_ON = QualityThresholds(growth=3.0, fill=0.8, outside=0.3, fading=0.75, jump=1.0)


def _run(frames: list[FrameResult], thresholds: QualityThresholds = ALL_ON) -> list[dict[int, tuple[str, ...]]]:
    watch = QualityWatch(thresholds)
    return [watch.check(result, {1} if result.index == 0 else set()) for result in frames]


def test_a_steady_mask_raises_nothing():
    assert _run([_result(i, {1: (40 + i, 30, 70 + i, 60)}) for i in range(6)]) == [{}] * 6


def test_a_mask_that_keeps_growing_far_beyond_its_boxed_frame_floods():
    sizes = [10, 12, 16, 22, 30, 30]  # half-sides: the area grows to 9x, then stops growing
    fired = _run([_result(i, {1: (100 - s, 50 - min(s, 49), 100 + s, 50 + min(s, 49))}) for i, s in enumerate(sizes)])
    assert [("flood" in f.get(1, ())) for f in fired] == [False, False, False, True, True, False]


def test_a_mask_that_fills_its_tracked_box_spills_when_asked_for():
    box = Box(30, 20, 80, 70)
    frames = [_result(0, {1: (40, 30, 70, 60)}, {1: box}), _result(1, {1: (40, 30, 70, 60)}, {1: box}),
              _result(2, {1: (31, 21, 79, 69)}, {1: box})]  # 92 % of its box: the background around it
    assert _run(frames, QualityThresholds(fill=0.75)) == [{}, {}, {1: ("spill",)}]
    assert _run(frames, QualityThresholds()) == [{}, {}, {}]  # off by default: it caught no bad mask on DAVIS


def test_spill_can_also_ask_for_a_mask_that_reaches_outside_its_box():
    box = Box(40, 30, 70, 60)
    fired = _run([_result(0, {1: (40, 30, 70, 60)}), _result(1, {1: (40, 30, 70, 60)}, {1: box}),
                  _result(2, {1: (35, 30, 85, 60)}, {1: box}),  # 1.7x the area, 40 % of it outside the box
                  _result(3, {1: (30, 20, 110, 70)}, {1: box})])  # 4.4x and growing: it floods too
    assert fired[:2] == [{}, {}] and fired[2] == {1: ("spill",)} and fired[3] == {1: ("flood", "spill")}
    inside = _run([_result(0, {1: (40, 30, 70, 60)}), _result(1, {1: (40, 30, 70, 60)}, {1: box})])
    assert inside == [{}, {}]  # it fills its box but stays inside: not with outside asked for


def test_a_confidence_that_falls_sharply_fades():
    frames = [_result(0, {1: (40, 30, 70, 60)}, confidence=0.95), _result(1, {1: (40, 30, 70, 60)}, confidence=0.9),
              _result(2, {1: (40, 30, 70, 60)}, confidence=0.5)]
    assert _run(frames) == [{}, {}, {1: ("fading",)}]


def test_a_mask_that_moves_farther_than_its_size_in_one_frame_jumps():
    frames = [_result(0, {1: (20, 30, 40, 50)}), _result(1, {1: (22, 30, 42, 50)}), _result(2, {1: (150, 30, 170, 50)})]
    assert _run(frames) == [{}, {}, {1: ("jump",)}]


def test_an_object_found_again_by_its_look_says_so_first_where_it_has_a_mask():
    watch = QualityWatch()
    assert watch.check(_result(0, {1: (20, 30, 40, 50), 2: (100, 30, 120, 50)}), {1, 2}) == {}
    steady = _result(1, {1: (20, 30, 40, 50), 2: (100, 30, 120, 50)})
    assert watch.check(steady, found={2}) == {2: ("found",)}
    moved = _result(2, {1: (150, 60, 170, 80)})  # object 2 empty here: lost, not found
    assert watch.check(moved, found={1, 2}) == {1: ("found", "jump")}
    said = warning(1, moved, ("found", "jump"))
    assert "found again by its look" in said and said.endswith("check that it is the object; if not, correct it on "
                                                               "that frame (qmra ui, or a second box in --boxes)")
    assert "tighter box" in warning(1, moved, ("jump",))


def test_by_default_a_fading_confidence_and_a_small_jump_count_and_growth_does_not():
    frames = [_result(0, {1: (40, 30, 50, 40)}, confidence=0.95), _result(1, {1: (40, 30, 52, 42)}, confidence=0.93),
              _result(2, {1: (38, 28, 54, 44)}, confidence=0.8), _result(3, {1: (70, 28, 86, 44)}, confidence=0.9)]
    assert _run(frames, QualityThresholds()) == [{}, {}, {1: ("fading",)}, {1: ("jump",)}]


def test_an_object_boxed_again_takes_that_frame_as_its_reference():
    watch = QualityWatch(ALL_ON)
    watch.check(_result(0, {1: (95, 45, 105, 55)}), {1})
    assert watch.check(_result(1, {1: (60, 10, 140, 90)}), {1}) == {}  # a correction: the new box is the reference
    assert watch.check(_result(2, {1: (58, 10, 142, 90)})) == {}


def test_doubtful_objects_warn_once_per_stretch_and_count_frames():
    doubtful = DoubtfulObjects()
    started = []
    for index, doubts in enumerate([{}, {1: ("jump",)}, {1: ("flood",)}, {}, {1: ("flood",), 2: ("fading",)}]):
        result = _result(index, {1: (40, 30, 70, 60), 2: (100, 30, 120, 60)})
        result.doubts = doubts
        started.append(doubtful.update(result))
    assert started == [[], [(1, ("jump",))], [], [], [(1, ("flood",)), (2, ("fading",))]]
    assert doubtful.summary() == ("doubtful masks: object 1 on 3 frames (flood 2, jump 1); "
                                  "object 2 on 1 frame (fading 1)")
