"""The session API for interactive work: boxes answered at once, corrections, runs from any frame,
backwards, and a frame loop the caller owns."""

import numpy as np
import pytest

from qmra.data import box_from_mask
from qmra.errors import BoxError, QmraError
from tests.inference.helpers import clip, tiny_segmenter


def _frames(video):
    return [video.image(i) for i in range(video.num_frames)]


def _own(result, object_id):
    return result.object_probabilities[object_id]


def test_add_box_returns_that_frames_prediction_as_a_run_from_there_would_start(segmenter):
    video = clip(frames=8, objects=2)
    box = box_from_mask(video.labels(5) == 1)
    session = segmenter.start(_frames(video))
    preview = session.add_box(1, box, frame=5)
    assert preview.index == 5 and preview.object_ids == [1] and preview.boxes[1] == box
    first = next(session.propagate(start=5))[1]
    assert first.index == 5 and np.allclose(_own(preview, 1), _own(first, 1), atol=1e-6)
    assert np.array_equal(preview.labels, first.labels)


def test_a_mask_is_its_frames_result_the_box_its_tight_box_and_a_wrong_one_says_why(segmenter):
    video = clip(frames=8, objects=2)
    session = segmenter.start(_frames(video))
    mask = video.labels(3) == 2
    rows, cols = np.nonzero(mask)
    mask[rows[len(rows) // 2], cols[len(cols) // 2]] = False  # a hole: a shape no box gives
    session.add_box(1, box_from_mask(video.labels(3) == 1), frame=3, predict=False)
    given = session.add_mask(2, mask, frame=3)
    assert session.prompts(2)[0].box == box_from_mask(mask) == box_from_mask(video.labels(3) == 2) == given.boxes[2]
    assert np.array_equal(given.labels == 2, mask) and not given.lost[2]  # exactly, over object 1's pixels too
    run = [r for _, r in session.propagate(start=3)]
    assert np.array_equal(run[0].labels, given.labels)
    boxes = segmenter.start(_frames(video))
    for object_id in (1, 2):
        boxes.add_box(object_id, box_from_mask(video.labels(3) == object_id), frame=3, predict=False)
    from_boxes = [r for _, r in boxes.propagate(start=3)]
    assert not np.array_equal(from_boxes[0].labels == 2, mask)
    for with_mask, with_box in zip(run[1:], from_boxes[1:]):  # no adaptation: the memory is the boxes'
        assert np.array_equal(with_mask.labels, with_box.labels)
    for mask, message in [(np.zeros_like(video.labels(3)), "object 1: its mask on frame 3 is empty"),
                          (video.labels(3)[:-1] == 1, "the masks are 64x47 pixels but the video's frames are 64x48"),
                          (video.image(3), r"expected an H×W mask, got an array of shape \(48, 64, 3\)")]:
        with pytest.raises(BoxError, match=message):
            session.add_mask(1, mask, frame=3)


def test_step_is_propagate_one_frame_at_a_time(segmenter):
    video = clip(frames=6, objects=2)
    session = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box, predict=False)
    expected = [r for _, r in session.propagate()]
    stepper = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        stepper.add_box(object_id, box, predict=False)
    for index in range(video.num_frames):
        got = stepper.step(video.image(index))
        assert got.index == index and np.array_equal(got.labels, expected[index].labels)
    assert stepper.memory_frames(1) == session.memory_frames(1)
    with pytest.raises(QmraError, match="step\\(\\) takes the video's 64x48 frames"):
        stepper.step(np.zeros((10, 10, 3), np.uint8))


def test_a_box_on_the_next_frame_of_a_loop_is_answered_with_all_objects(segmenter):
    video = clip(frames=6, objects=2)
    boxes = video.first_boxes()
    session = segmenter.start(_frames(video))
    session.add_box(1, boxes[1], predict=False)
    session.step(video.image(0))
    late = box_from_mask(video.labels(1) == 2)
    result = session.add_box(2, late, frame=1)  # the next frame: it is done now, with object 1 too
    assert result.index == 1 and result.object_ids == [1, 2]
    assert session.step(video.image(2)).index == 2


def test_a_correction_restarts_the_object_from_its_new_box(segmenter):
    video = clip(frames=8, objects=1)
    wrong = box_from_mask(video.labels(0) == 1).scale(0.5, 0.5)
    right = box_from_mask(video.labels(4) == 1)
    corrected = segmenter.start(_frames(video))
    corrected.add_box(1, wrong, predict=False)
    for index in range(5):
        corrected.step(video.image(index))
    redone = corrected.add_box(1, right, frame=4)  # the frame just done: redone with the new box
    after = [redone] + [corrected.step(video.image(i)) for i in range(5, 8)]
    fresh = segmenter.start(_frames(video))
    fresh.add_box(1, right, frame=4, predict=False)
    expected = [r for i, r in fresh.propagate() if i >= 4]
    for got, want in zip(after, expected):
        assert got.index == want.index and np.allclose(_own(got, 1), _own(want, 1), atol=1e-5)
    assert corrected.memory_frames(1)[0] == 4 and [p.frame for p in corrected.prompts(1)] == [0, 4]
    # A later run applies the correction at frame 4 again.
    rerun = {i: r for i, r in corrected.propagate()}
    assert np.allclose(_own(rerun[6], 1), _own(expected[2], 1), atol=1e-5)


def test_backwards_from_a_box_is_forwards_over_the_reversed_frames():
    segmenter = tiny_segmenter()
    video = clip(frames=7, objects=1)
    box = box_from_mask(video.labels(4) == 1)
    session = segmenter.start(_frames(video))
    session.add_box(1, box, frame=4, predict=False)
    backwards = list(session.propagate(reverse=True))
    assert [i for i, _ in backwards] == [6, 5, 4, 3, 2, 1, 0] and sorted(backwards[0][1].masks) == []
    mirrored = segmenter.start(_frames(video)[4::-1])
    mirrored.add_box(1, box, predict=False)
    for (index, got), (_, want) in zip(backwards[2:], mirrored.propagate()):
        assert np.allclose(_own(got, 1), _own(want, 1), atol=1e-5), f"frame {index}"
    assert max(session.memory_frames(1)) == 4 and min(session.memory_frames(1)) == 0  # first and previous


def test_a_run_from_a_later_frame_or_to_a_stop_frame_gives_what_the_whole_run_gives_there(segmenter):
    video = clip(frames=8, objects=2)
    session = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box, predict=False)
    full = dict(session.propagate())
    for start, stop, frames in [(5, None, [5, 6, 7]), (2, 5, [2, 3, 4, 5])]:  # objects boxed before start are followed
        part = list(session.propagate(start=start, stop=stop))
        assert [i for i, _ in part] == frames
        for index, result in part:
            assert np.array_equal(result.labels, full[index].labels)
    with pytest.raises(QmraError, match="cannot end on frame 1: it starts on frame 2, going forwards"):
        next(session.propagate(start=2, stop=1))
    with pytest.raises(QmraError, match="object 1 is boxed on frame 0, beyond frame 4 where the run ends"):
        next(session.propagate(reverse=True, stop=4))  # backwards, it would never start
    backwards = segmenter.start(_frames(video))
    backwards.add_box(1, box_from_mask(video.labels(6) == 1), frame=6, predict=False)
    assert [i for i, _ in backwards.propagate(reverse=True, stop=4)] == [7, 6, 5, 4]
    session.add_box(3, video.first_boxes()[1], frame=7, predict=False)
    with pytest.raises(QmraError, match="object 3 is boxed on frame 7, beyond frame 5 where the run ends"):
        next(session.propagate(stop=5))


def test_a_one_pass_stream_runs_forwards_only_and_says_so(segmenter):
    video = clip(frames=4, objects=1)
    session = segmenter.start(iter(_frames(video)))
    assert session.add_box(1, video.first_boxes()[1]) is None  # not read yet: nothing to show
    with pytest.raises(QmraError, match="read once, front to back"):
        next(session.propagate(reverse=True))
    assert [i for i, _ in session.propagate()] == [0, 1, 2, 3]
    with pytest.raises(QmraError, match="already read"):
        list(session.propagate())
    later = segmenter.start(iter(_frames(video)))  # from a later frame: one pass, the frames before it dropped
    later.add_box(1, video.first_boxes()[1], predict=False)
    assert [i for i, _ in later.propagate(start=2, stop=2)] == [2]


def test_the_object_table_maps_ids_to_rows(segmenter):
    video = clip(frames=3, objects=3)
    session = segmenter.start(_frames(video))
    boxes = video.first_boxes()
    session.add_box(2, boxes[2], predict=False)
    session.add_box(1, boxes[1], predict=False)
    session.add_box(3, box_from_mask(video.labels(1) == 3), frame=1, predict=False)
    list(session.propagate())
    table = session.objects
    assert table.ids == [1, 2, 3]
    first_bank, row = table.row(2)
    assert row == 1 and table.row(1) == (first_bank, 0) and table.row(3)[0] is not first_bank
    session.remove_object(1)
    assert table.ids == [2, 3] and table.row(2) == (first_bank, 0)
