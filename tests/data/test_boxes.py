import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmra.data import Box, box_from_mask, render_box_map
from qmra.errors import BoxError


def test_conversions_and_geometry():
    box = Box.from_xywh(10, 20, 30, 40)
    assert box.as_tuple() == (10.0, 20.0, 40.0, 60.0)
    assert box.to_xywh() == (10.0, 20.0, 30.0, 40.0)
    assert (box.width, box.height, box.area, box.center) == (30.0, 40.0, 1200.0, (25.0, 40.0))
    assert Box.parse(" 1, 2.5,3,4 ") == Box(1, 2.5, 3, 4)
    assert Box.from_sequence([0, 0, 2, 2]).iou(Box(1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert Box(-5, 10, 50, 700).clip(40, 480) == Box(0, 10, 40, 480)


@pytest.mark.parametrize("values,message", [
    ((math.nan, 0, 1, 1), "not a finite number"),
    ((0, 0, math.inf, 1), "not a finite number"),
    ((5, 0, 5, 10), "zero or negative area"),
    ((0, 9, 10, 3), "zero or negative area"),
    (("1", 0, 2, 2), "must be a number"),
    ((True, 0, 2, 2), "must be a number"),
])
def test_invalid_boxes_are_refused(values, message):
    with pytest.raises(BoxError, match=message):
        Box(*values)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1;2;3;4", ""])
def test_malformed_text(text):
    with pytest.raises(BoxError, match="four numbers"):
        Box.parse(text)


def test_box_wholly_outside_the_image():
    with pytest.raises(BoxError, match="lies outside the 100x50 image"):
        Box(100, 0, 120, 10).clip(100, 50)
    with pytest.raises(BoxError, match="outside"):
        Box(-20, -20, 0, 0).validate(100, 50)
    Box(99, 49, 120, 60).validate(100, 50)  # one pixel inside is fine


def test_tight_box_uses_pixel_edges():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:8] = True
    assert box_from_mask(mask) == Box(3, 2, 8, 5)
    single = np.zeros((4, 4), bool)
    single[1, 2] = True
    assert box_from_mask(single) == Box(2, 1, 3, 2)
    assert box_from_mask(np.zeros((4, 4))) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.data())
def test_box_map_of_a_rectangle_mask_is_that_rectangle(height, width, data):
    y0 = data.draw(st.integers(0, height - 1))
    y1 = data.draw(st.integers(y0 + 1, height))
    x0 = data.draw(st.integers(0, width - 1))
    x1 = data.draw(st.integers(x0 + 1, width))
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0:x1] = 1
    assert np.array_equal(render_box_map(box_from_mask(mask), (height, width)), mask)


def test_box_map_at_another_resolution():
    box = Box(0, 0, 50, 25)  # left half, top quarter of a 100x100 image
    small = render_box_map(box, (100, 100), (4, 4))
    assert small.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert render_box_map(None, (5, 5)).sum() == 0


def test_loosened_boxes_mostly_grow_stay_in_the_image_and_repeat_per_seed():
    from qmra.data.boxes import loosened

    box = Box(20, 10, 40, 30)
    boxes = [loosened(box, 0.4, (50, 60), np.random.default_rng(seed)) for seed in range(200)]
    for drawn in boxes:
        assert 0 <= drawn.x0 and drawn.x1 <= 60 and 0 <= drawn.y0 and drawn.y1 <= 50
        assert 20 - 8 <= drawn.x0 <= 20 + 2 and 30 - 2 <= drawn.y1 <= 30 + 8  # out by up to 0.4, in by up to 0.1
    assert np.mean([b.area > box.area for b in boxes]) > 0.8
    assert loosened(box, 0.4, (50, 60), np.random.default_rng(3)) == boxes[3]
    assert loosened(box, 0.0, (50, 60), np.random.default_rng(0)) == box


def test_widened_moves_each_side_by_its_share_and_clips_to_the_image():
    box = Box(20, 10, 40, 30)  # 20 × 20
    assert box.widened([0.1, 0.2, 0.3, 0.4], (50, 60)) == Box(18, 6, 46, 38)
    assert box.widened([-0.25, -0.25, -0.25, -0.25], (50, 60)) == Box(25, 15, 35, 25)
    assert box.widened([2, 1, 2, 2], (50, 60)) == Box(0, 0, 60, 50)
