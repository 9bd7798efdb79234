import json
from dataclasses import replace

import numpy as np
import pytest

from qmra.cli import main
from qmra.data import SyntheticConfig, SyntheticVideo, read_labels
from qmra.data.boxes import Box, box_from_mask
from qmra.errors import QmraError
from qmra.evaluation.metrics import region_similarity
from qmra.inference.backwards import EarlierMasks, first_boxes
from qmra.inference.prompts import Prompt
from qmra.inference.results import FrameResult


def _result(index: int, labels: np.ndarray, boxes: dict, lost: dict | None = None) -> FrameResult:
    return FrameResult(index, f"{index:05d}", labels, boxes, np.zeros((*labels.shape, 3), np.uint8),
                       confidence={i: 0.9 for i in boxes}, lost=lost or {i: False for i in boxes})


def test_first_boxes_are_each_objects_earliest_box_after_frame_0():
    box = Box(1, 1, 5, 5)
    prompts = [Prompt(1, 0, box), Prompt(2, 5, box), Prompt(2, 3, box), Prompt(3, 7, box), Prompt(1, 4, box)]
    assert [(p.object_id, p.frame) for p in first_boxes(prompts)] == [(2, 3), (3, 7)]
    assert first_boxes([Prompt(1, 0, box)]) == []


def test_paint_adds_the_late_objects_and_they_win_where_masks_overlap():
    late = [Prompt(2, 3, Box(0, 0, 4, 4)), Prompt(3, 5, Box(0, 0, 4, 4))]
    earlier = EarlierMasks(late)
    backward = np.zeros((4, 6), np.uint8)
    backward[:, :3], backward[:, 5] = 2, 3
    # On frame 4 object 2 (boxed on frame 3) is the forward run's: only object 3's pixels are kept.
    earlier._keep(4, _result(4, backward, {2: Box(0, 0, 3, 4), 3: Box(5, 0, 6, 4)}), [3])
    earlier._keep(1, _result(1, backward, {2: Box(0, 0, 3, 4), 3: Box(5, 0, 6, 4)}), [2, 3])
    forward = np.zeros((4, 6), np.uint8)
    forward[:, 2:5] = 1
    painted = earlier.paint(_result(1, forward, {1: Box(2, 0, 5, 4)}))
    assert painted.labels.tolist() == [[2, 2, 2, 1, 1, 3]] * 4  # object 2 was boxed later than object 1: it wins
    assert painted.object_ids == [1, 2, 3] and painted.boxes[3] == Box(5, 0, 6, 4)
    assert painted.masks[2].sum() == 12 and painted.lost == {1: False, 2: False, 3: False} and painted.maps is None
    on_4 = earlier.paint(_result(4, forward, {1: Box(2, 0, 5, 4), 2: Box(0, 0, 2, 4)}))
    assert on_4.labels[:, 5].tolist() == [3] * 4 and on_4.labels[:, 0].tolist() == [0] * 4
    unpainted = _result(3, forward, {1: Box(2, 0, 5, 4)})
    assert earlier.paint(unpainted) is unpainted  # frames the backward run did not reach (or need) are as they were
    assert earlier.reached == {2: 1, 3: 1}
    assert earlier.summary()[0] == "object 2 (boxed on frame 3) followed backwards: its earliest mask is on frame 1"
    assert earlier.warnings() == []  # no doubtful mask on the way back


def test_the_first_doubtful_frame_going_back_is_said():
    earlier = EarlierMasks([Prompt(2, 5, Box(0, 0, 4, 4))])
    labels = np.full((4, 6), 2, np.uint8)
    for index, doubts in ((4, {}), (3, {2: ("fading", "jump")}), (2, {2: ("jump",)}), (1, {})):
        result = _result(index, labels, {2: Box(0, 0, 6, 4)})
        earlier._keep(index, replace(result, doubts=doubts), [2])
    assert earlier.doubtful == {2: (3, ("fading", "jump"))}
    assert earlier.summary() == ["object 2 (boxed on frame 5) followed backwards: its earliest mask is on frame 1"]
    assert earlier.warnings() == ["object 2, followed backwards from its box on frame 5, is doubtful from frame 3 back "
                                  "(fading, jump): where it is out of view, what it is masked on only looks like it"]


def test_an_object_not_found_before_its_box_is_said_so_and_marked_lost_there():
    earlier = EarlierMasks([Prompt(2, 3, Box(0, 0, 4, 4))])
    earlier._keep(2, _result(2, np.zeros((4, 6), np.uint8), {2: None}, {2: True}), [2])
    painted = earlier.paint(_result(2, np.ones((4, 6), np.uint8), {1: Box(0, 0, 6, 4)}))
    assert painted.lost[2] and not painted.masks[2].any() and painted.masks[1].all()
    assert earlier.summary() == ["object 2 (boxed on frame 3) followed backwards: no mask before that frame"]


def test_a_stream_cannot_be_followed_backwards():
    class Stream:
        seekable, description = False, "a stream of frames"

    with pytest.raises(QmraError, match="read once, front to back.*leave out --backwards"):
        EarlierMasks([Prompt(2, 3, Box(0, 0, 4, 4))]).run(segmenter=None, source=Stream())
    EarlierMasks([]).run(segmenter=None, source=Stream())  # nothing boxed late: nothing to run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two objects in view from frame 0 (no look-alike, none leaves); object 2 is boxed on frame 3 only."""
    config = SyntheticConfig(height=96, width=128, num_frames=6, num_objects=2, num_distractors=0, exits=False, seed=7)
    video = SyntheticVideo(config, name="clip")
    folder = tmp_path_factory.mktemp("clip")
    video.write_davis(folder / "davis")
    source = folder / "davis" / "JPEGImages" / "480p" / "clip"
    boxes = [{"id": 1, "frame": 0, "box": list(video.first_boxes()[1].as_tuple())},
             {"id": 2, "frame": 3, "box": list(box_from_mask(video.labels(3) == 2).as_tuple())}]
    (folder / "boxes.json").write_text(json.dumps(boxes))
    return video, source, folder / "boxes.json"


def _segment(clip, out, *extra):
    _, source, boxes = clip
    return main(["segment", str(source), "--boxes", str(boxes), "--out", str(out), "--quiet", *extra])


@pytest.mark.slow  # the shipped weights adapt at 384 px in every run (about a minute on 2 cores)
def test_segment_backwards_finds_an_object_on_the_frames_before_its_box(tmp_path, clip, capsys):
    # The shipped weights: object 2 is found on frames 0-2, where a forward run has none of it, and
    # nothing on frames 3-5 changes.
    video = clip[0]
    assert _segment(clip, tmp_path / "forward") == 0
    assert _segment(clip, tmp_path / "both", "--backwards", "--rle", str(tmp_path / "both.json")) == 0
    forward = [read_labels(tmp_path / "forward" / f"{i:05d}.png") for i in range(6)]
    both = [read_labels(tmp_path / "both" / f"{i:05d}.png") for i in range(6)]
    for i in range(3):
        assert not (forward[i] == 2).any()
        assert region_similarity(both[i] == 2, video.labels(i) == 2) > 0.5, i
        assert np.array_equal(both[i] == 1, (forward[i] == 1) & (both[i] != 2))  # object 1 only gives way to 2
    for i in range(3, 6):
        assert np.array_equal(both[i], forward[i])
    rle = json.loads((tmp_path / "both.json").read_text())
    assert "2" in rle["frames"][0]["objects"]
    # Kept by a resumed run: the backward run is redone, and the kept frames agree with it.
    for i in (4, 5):
        (tmp_path / "both" / f"{i:05d}.png").unlink()
    assert _segment(clip, tmp_path / "both", "--backwards", "--resume") == 0
    assert all(np.array_equal(read_labels(tmp_path / "both" / f"{i:05d}.png"), both[i]) for i in range(6))


@pytest.mark.slow  # the shipped weights adapt at 384 px in every run (about a minute on 2 cores)
def test_with_a_range_objects_are_followed_back_to_its_first_frame_only(tmp_path, clip):
    assert _segment(clip, tmp_path / "both", "--backwards") == 0
    assert _segment(clip, tmp_path / "part", "--backwards", "--frames", "1-") == 0
    names = sorted(p.stem for p in (tmp_path / "part").glob("*.png"))
    assert names == [f"{i:05d}" for i in range(1, 6)]  # frame 0 is neither written nor run backwards to
    for i in range(1, 6):  # the backward run from frame 3 gives frames 2 and 1 what it gave them going on to 0
        assert np.array_equal(read_labels(tmp_path / "part" / f"{i:05d}.png"), read_labels(tmp_path / "both" / f"{i:05d}.png"))
    late = [Prompt(2, 3, Box(0, 0, 4, 4))]
    assert first_boxes([Prompt(1, 0, Box(0, 0, 4, 4)), *late], start=3) == []  # boxed on the range's first frame
    assert first_boxes(late, start=2) == late
