"""Which frames the web app computes, in which sessions, and which stored masks stay current."""

from __future__ import annotations

import pytest

from qmra.data.boxes import Box
from qmra.errors import QmraError
from qmra.ui.plan import BACKWARD, FORWARD, Plan

BOX = Box(1, 1, 5, 5)


def finish(plan: Plan, tasks) -> None:
    """Record every mask the tasks write, as a run does."""
    for task in tasks:
        for member in task.members:
            for position in member.frames:
                plan.record(member.object_id, task.frames[position], member.tag)


def summary(tasks) -> list[tuple]:
    return [(t.direction, t.start, t.frames, [(m.object_id, list(m.frames)) for m in t.members]) for t in tasks]


def test_a_box_runs_forward_to_the_end_and_backward_to_frame_0():
    plan = Plan(8)
    plan.set_box(1, 3, BOX)
    assert summary(plan.tasks()) == [
        (FORWARD, 3, [3, 4, 5, 6, 7], [(1, [0, 1, 2, 3, 4])]),
        (BACKWARD, 3, [3, 2, 1, 0], [(1, [1, 2, 3])]),  # frame 3 itself is the forward run's
    ]
    assert summary(plan.tasks((BACKWARD,))) == summary(plan.tasks())[1:]
    finish(plan, plan.tasks((FORWARD,)))
    assert plan.done_frames().tolist() == [False] * 3 + [True] * 5
    finish(plan, plan.tasks())
    assert plan.done_frames().all() and plan.tasks() == []


def test_a_correction_replaces_the_masks_from_its_frame_on_only():
    plan = Plan(10)
    plan.set_box(1, 0, BOX)
    finish(plan, plan.tasks())
    plan.set_box(1, 6, Box(2, 2, 6, 6))
    assert plan.current(1).tolist() == [True] * 6 + [False] * 4
    assert summary(plan.tasks()) == [(FORWARD, 6, [6, 7, 8, 9], [(1, [0, 1, 2, 3])])]
    finish(plan, plan.tasks())
    # Redrawing the first box invalidates frames 0..5 (its stretch), not the correction's.
    plan.set_box(1, 0, Box(0, 0, 3, 3))
    assert plan.current(1).tolist() == [False] * 6 + [True] * 4
    assert summary(plan.tasks()) == [(FORWARD, 0, list(range(6)), [(1, list(range(6)))])]
    # Removing the correction gives frames 6..9 back to the first box: they must run again.
    finish(plan, plan.tasks())
    plan.remove_box(1, 6)
    assert summary(plan.tasks()) == [(FORWARD, 0, list(range(10)), [(1, list(range(10)))])]


def test_objects_boxed_on_one_frame_share_a_session_and_leave_it_where_their_stretch_ends():
    plan = Plan(10)
    plan.set_box(1, 2, BOX)
    plan.set_box(2, 2, BOX)
    plan.set_box(2, 5, BOX)
    plan.set_box(3, 7, BOX)
    forward = [t for t in plan.tasks() if t.direction == FORWARD]
    assert summary(forward) == [
        (FORWARD, 2, list(range(2, 10)), [(1, list(range(8))), (2, [0, 1, 2])]),
        (FORWARD, 5, list(range(5, 10)), [(2, list(range(5)))]),
        (FORWARD, 7, [7, 8, 9], [(3, [0, 1, 2])]),
    ]
    backward = [t for t in plan.tasks() if t.direction == BACKWARD]
    assert [(t.start, [m.object_id for m in t.members]) for t in backward] == [(2, [1, 2]), (7, [3])]
    assert plan.tasks(start=5) == forward[1:2]


def test_paint_order_puts_later_boxes_last():
    plan = Plan(6)
    plan.set_box(2, 1, BOX)
    plan.set_box(1, 4, BOX)
    finish(plan, plan.tasks())
    assert plan.paint_order(5) == [2, 1]  # object 1's box (frame 4) is later: it wins overlaps
    assert plan.paint_order(0) == [2, 1]  # backward: object 1 from frame 4 still counts as the later box
    plan.set_box(2, 5, BOX)
    assert plan.paint_order(5) == [1]  # object 2's new box has no mask yet on frame 5


def test_editing_errors_and_resizing():
    plan = Plan(4)
    with pytest.raises(QmraError, match="object ids"):
        plan.set_box(0, 0, BOX)
    with pytest.raises(QmraError, match="frame must be"):
        plan.set_box(1, 4, BOX)
    plan.set_box(1, 3, BOX)
    plan.set_box(2, 0, BOX)
    assert plan.next_object_id() == 3
    with pytest.raises(QmraError, match="no box on frame"):
        plan.remove_box(1, 0)
    plan.resize(3)  # the video had fewer frames than its header said: object 1's only box is gone
    assert plan.object_ids == [2] and plan.made_by[2].size == 3
    plan.remove_box(2, 0)
    assert plan.object_ids == [] and plan.next_object_id() == 1
    with pytest.raises(QmraError, match="unknown object"):
        plan.remove_object(2)
