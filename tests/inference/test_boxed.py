"""On the frame where the user boxed an object, its mask keeps to the box and is never empty."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.data.boxes import Box
from qmra.data.frames import ArrayFrames
from qmra.inference import Segmenter
from qmra.inference.boxed import MIN_BOX_FILL, hold_to_box
from qmra.inference.merge import merge_frame
from tests.inference.helpers import tiny_segmenter


def _box(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    box = torch.zeros(1, height, width)
    box[:, y0:y1, x0:x1] = 1
    return box


def test_outside_the_box_is_zero_and_a_confident_mask_is_unchanged_inside():
    probability = torch.rand(1, 20, 30)
    probability[:, 5:15, 5:20] = 0.9
    box = _box(20, 30, 5, 5, 20, 15)
    held = hold_to_box(probability, box)
    assert torch.count_nonzero(held * (1 - box)) == 0
    assert torch.equal(held * box, probability * box)


def test_a_weak_mask_becomes_the_pixels_at_least_half_as_likely_as_the_best():
    probability = torch.full((2, 20, 30), 0.01)
    probability[0, 8, 8], probability[0, 9, 9], probability[0, 10, 10] = 0.3, 0.2, 0.1  # no pixel above 0.5
    probability[1, 6:14, 6:19] = 0.9  # confident on well over MIN_BOX_FILL of its box: left alone
    box = torch.cat([_box(20, 30, 5, 5, 20, 15)] * 2)
    held = hold_to_box(probability, box)
    assert set(map(tuple, (held[0] > 0.5).nonzero().tolist())) == {(8, 8), (9, 9)}
    assert torch.equal(held[1], probability[1] * box[1])
    assert (held[1] > 0.5).sum() > MIN_BOX_FILL * box[1].sum()


def _ellipses(frames: int = 4, height: int = 64, width: int = 96) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    """Two ellipses of about 15 px drifting right over a textured background (the small-frame case):
    the T×H×W×3 video, the objects' boxes on frame 0 (xyxy pixels), the T×H×W true labels (1, 2)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    video = np.empty((frames, height, width, 3), np.uint8)
    labels = np.zeros((frames, height, width), np.uint8)
    boxes = []
    for t in range(frames):
        frame = (rng.random((height, width, 3)) * 60 + 80).astype(np.uint8)
        for object_id, (cx, cy, colour) in enumerate(((25 + 2 * t, 30, (220, 40, 40)), (65 + 2 * t, 36, (40, 60, 220))), 1):
            inside = ((xx - cx) / 8) ** 2 + ((yy - cy) / 6) ** 2 <= 1
            frame[inside] = colour
            labels[t][inside] = object_id
            if t == 0:
                boxes.append((cx - 8, cy - 6, cx + 9, cy + 7))
        video[t] = frame
    return video, boxes, labels


def _nested() -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    """A synthetic clip whose object 1 lies in front of object 2, its box inside object 2's box: the
    T×H×W×3 video, the three objects' boxes on frame 0, the true labels."""
    clip = SyntheticVideo(SyntheticConfig(192, 256, 2, 3, num_distractors=1, seed=2), "nested")
    boxes = clip.first_boxes()
    inner, outer = boxes[1], boxes[2]
    assert outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and inner.x1 <= outer.x1 and inner.y1 <= outer.y1
    frames = np.stack([clip.image(t) for t in range(2)])
    labels = np.stack([clip.labels(t) for t in range(2)])
    return frames, [tuple(int(v) for v in boxes[i].as_tuple()) for i in sorted(boxes)], labels


def _merged(probability: torch.Tensor, boxes: dict, boxed: list[int]) -> np.ndarray:
    frame = np.zeros((*probability.shape[1:], 3), np.uint8)
    return merge_frame(0, "0", frame, dict(enumerate(probability, start=1)), boxes, boxed=boxed).labels


def test_an_object_boxed_inside_another_box_keeps_its_pixels():
    """Both objects boxed on this frame; object 2's box holds object 1's, and object 2 is surer than
    object 1 of object 1's pixels (its box says so): inside object 1's box, object 2 gives way."""
    probability = torch.full((2, 40, 60), 0.01)
    probability[0, 12:20, 22:34] = 0.8  # object 1, boxed at x 20..36, y 10..22
    probability[1, 5:35, 10:50] = 0.99  # object 2, boxed at x 8..52, y 4..36
    boxes = {1: Box(20, 10, 36, 22), 2: Box(8, 4, 52, 36)}
    labels = _merged(probability, boxes, boxed=[1, 2])
    assert (labels == 1).sum() == 8 * 12 and (labels[12:20, 22:34] == 1).all()
    assert (labels == 2).sum() == 30 * 40 - 8 * 12
    # Merged as on a tracked frame, the surer object 2 takes all of object 1.
    assert not (_merged(probability, boxes, boxed=[]) == 1).any()


def test_tracked_objects_with_larger_boxes_give_way_to_a_boxed_one_and_smaller_ones_do_not():
    """Object 1 is boxed on this frame; object 2 is tracked (its box a box map) and sure of object 1's pixels."""
    probability = torch.full((2, 40, 60), 0.01)
    probability[0, 12:20, 22:34] = 0.8  # object 1, boxed at x 20..36, y 10..22
    probability[1, 12:20, 22:34] = 0.95
    large, small = torch.zeros(40, 60), torch.zeros(40, 60)
    large[5:35, 10:50] = 1
    small[12:20, 22:34] = 1
    labels = _merged(probability, {1: Box(20, 10, 36, 22), 2: large}, boxed=[1])
    assert (labels == 1).sum() == 8 * 12 and not (labels == 2).any()
    labels = _merged(probability, {1: Box(20, 10, 36, 22), 2: small}, boxed=[1])  # in front of object 1
    assert (labels == 2).sum() == 8 * 12 and not (labels == 1).any()


def _shipped_without_adaptation() -> Segmenter:
    shipped = Segmenter()  # adaptation would only make the test slow: the guarantee holds for any network
    return Segmenter(shipped.model, settings=replace(shipped.settings, adapt_steps=0, adapt_average=1, ensemble=1))


@pytest.mark.parametrize("clip", [_ellipses, _nested], ids=["small", "nested"])
@pytest.mark.parametrize("make", [tiny_segmenter, _shipped_without_adaptation], ids=["random-network", "shipped-weights"])
def test_every_boxed_object_has_a_mask_inside_its_box_on_its_frame(make, clip):
    video, boxes, _ = clip()
    segmenter = make()
    session = segmenter.start(ArrayFrames(video))
    for object_id, box in enumerate(boxes, start=1):
        session.add_box(object_id, box, frame=0, predict=False)
    _, first = next(iter(session.propagate()))
    for object_id, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        mask = first.labels == object_id
        assert mask.any(), f"object {object_id} is empty on the frame it was boxed on"
        assert not mask[:, :x0].any() and not mask[:, x1:].any() and not mask[:y0].any() and not mask[y1:].any()


def test_the_shipped_weights_follow_small_objects_in_a_small_frame():
    """Ellipses of 17×13 px in a 96×64 clip are one feature cell at the network's stride 16; the
    frames are scaled up to the weights' working size, so both objects are followed on every frame
    (at the frame's own size both were lost by frame 2)."""
    video, boxes, labels = _ellipses(frames=8)
    session = _shipped_without_adaptation().start(ArrayFrames(video))
    for object_id, box in enumerate(boxes, start=1):
        session.add_box(object_id, box, frame=0, predict=False)
    for index, result in session.propagate():
        for object_id in (1, 2):
            predicted, true = result.labels == object_id, labels[index] == object_id
            iou = np.logical_and(predicted, true).sum() / np.logical_or(predicted, true).sum()
            assert iou >= 0.7, f"object {object_id} on frame {index}: IoU {iou:.2f}"


def test_the_shipped_weights_keep_an_object_boxed_in_front_of_another():
    """Object 2's box holds object 1, and the network given object 2's box claims object 1's
    pixels too, surer than object 1 (merged as on a tracked frame, object 1 kept 19 of 739 pixels)."""
    video, boxes, labels = _nested()
    session = _shipped_without_adaptation().start(ArrayFrames(video[:1]))
    for object_id, box in enumerate(boxes, start=1):
        session.add_box(object_id, box, frame=0, predict=False)
    _, first = next(iter(session.propagate()))
    predicted, true = first.labels == 1, labels[0] == 1
    assert np.logical_and(predicted, true).sum() / np.logical_or(predicted, true).sum() >= 0.9


def test_a_box_answered_at_once_keeps_an_object_boxed_in_front_of_another():
    """The two other ways a box is answered (``add_box`` predicting): a preview of a frame not yet
    run, and a redo of the frame just done, where object 2 was boxed before object 1."""
    video, boxes, labels = _nested()
    segmenter = _shipped_without_adaptation()

    def iou(result) -> float:
        predicted, true = result.labels == 1, labels[0] == 1
        return np.logical_and(predicted, true).sum() / np.logical_or(predicted, true).sum()

    previewed = segmenter.start(ArrayFrames(video))
    previewed.add_box(2, boxes[1], frame=0, predict=False)
    assert iou(previewed.add_box(1, boxes[0], frame=0)) >= 0.9
    redone = segmenter.start(ArrayFrames(video))
    redone.add_box(2, boxes[1], frame=0, predict=False)
    redone.step(video[0])
    assert iou(redone.add_box(1, boxes[0], frame=0)) >= 0.9
