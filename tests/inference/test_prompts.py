"""Boxes given at once to Segmenter.start(prompts=...), in each form it takes."""

from __future__ import annotations

import numpy as np
import pytest

from qmra.data import Box
from qmra.errors import BoxError, QmraError
from qmra.inference import InferenceSettings
from qmra.inference.prompts import Prompt
from tests.inference.helpers import clip, tiny_segmenter


def _labels(session) -> list[np.ndarray]:
    return [result.labels for _, result in session.propagate()]


def test_every_form_of_prompts_gives_what_add_box_gives():
    video = clip(frames=4, objects=2)
    frames = [video.image(i) for i in range(4)]
    boxes = video.first_boxes()
    segmenter = tiny_segmenter()
    by_hand = segmenter.start(frames)
    by_hand.add_box(1, boxes[1], predict=False)
    by_hand.add_box(2, boxes[2], frame=2, predict=False)
    expected = _labels(by_hand)
    as_tuples = segmenter.start(frames, prompts=[(1, boxes[1]), (2, boxes[2].as_tuple(), 2)])
    as_prompts = segmenter.start(frames, prompts=[Prompt(1, 0, boxes[1]), Prompt(2, 2, boxes[2])])
    for session in (as_tuples, as_prompts):
        assert session.object_ids == [1, 2] and [p.frame for p in session.prompts(2)] == [2]
        assert all(np.array_equal(a, b) for a, b in zip(expected, _labels(session)))
    on_frame_0 = segmenter.start(frames, prompts={1: boxes[1], 2: ",".join(map(str, boxes[2].as_tuple()))})
    assert [p.frame for i in (1, 2) for p in on_frame_0.prompts(i)] == [0, 0]


def test_bad_prompts_are_refused_before_any_frame_is_segmented():
    frames = [clip(frames=2).image(i) for i in range(2)]
    segmenter = tiny_segmenter(InferenceSettings())
    with pytest.raises(QmraError, match="a prompt is a Prompt or an"):
        segmenter.start(frames, prompts=[Box(1, 1, 9, 9)])
    with pytest.raises(QmraError, match="object ids are integers 1..255"):
        segmenter.start(frames, prompts={0: (1, 1, 9, 9)})
    with pytest.raises(QmraError, match="past the end of the video"):
        segmenter.start(frames, prompts=[(1, (1, 1, 9, 9), 5)])
    with pytest.raises(BoxError, match="object 1"):
        segmenter.start(frames, prompts={1: (500, 500, 600, 600)})


def test_a_prompt_with_a_mask_is_what_add_mask_gives_and_its_key_tells_it_from_the_box_alone():
    video = clip(frames=3, objects=1)
    frames = [video.image(i) for i in range(3)]
    mask = video.labels(0) == 1
    box = video.first_boxes()[1]
    segmenter = tiny_segmenter()
    by_hand = segmenter.start(frames)
    by_hand.add_mask(1, mask, predict=False)
    given = segmenter.start(frames, prompts=[Prompt(1, 0, box, mask)])
    assert all(np.array_equal(a, b) for a, b in zip(_labels(by_hand), _labels(given)))
    assert Prompt(1, 0, box, mask) == Prompt(1, 0, box)  # prompts compare by id, frame and box
    assert Prompt(1, 0, box, mask).key != Prompt(1, 0, box).key == (1, box.as_tuple(), None)
    with pytest.raises(BoxError, match="object 1: its mask on frame 0 is empty"):
        Prompt(1, 0, box, np.zeros_like(mask))
    with pytest.raises(BoxError, match="the masks are 64x47 pixels but the video's frames are 64x48"):
        segmenter.start(frames, prompts=[Prompt(1, 0, box, mask[:-1])])
