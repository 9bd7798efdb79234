import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from qmra.data import (ClipSettings, CompositeClipDataset, SequenceFrames, StaticClipDataset, SyntheticConfig, SyntheticVideo,
                       VideoClipDataset)

SMALL = ClipSettings(size=(64, 80), min_object_pixels=20)


class SparseVideo:
    """A synthetic video annotated only every 5th frame (like YouTube-VOS)."""

    def __init__(self, video):
        self.video, self.name = video, video.name
        self.num_frames, self.frame_names, self.object_ids = video.num_frames, video.frame_names, video.object_ids
        self.annotated_indices = list(range(0, video.num_frames, 5))

    def image(self, index):
        return self.video.image(index)

    def labels(self, index):
        assert index % 5 == 0, "read an unannotated frame"
        return self.video.labels(index)


def _videos(count=3, frames=40):
    return [SyntheticVideo(SyntheticConfig(height=72, width=96, num_frames=frames, num_objects=2, seed=s, exits=False))
            for s in range(count)]


def _check(clip, frames=3):
    assert clip["images"].shape == (frames, 3, 64, 80) and clip["images"].dtype == torch.float32
    assert clip["masks"].shape == clip["box_maps"].shape == (frames, 1, 64, 80)
    assert 0 <= clip["images"].min() and clip["images"].max() <= 1
    for mask, box_map in zip(clip["masks"], clip["box_maps"]):
        assert mask.sum() >= 20, "the target is in every frame"
        ys, xs = torch.nonzero(mask[0], as_tuple=True)
        expected = torch.zeros_like(box_map[0])
        expected[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 1
        assert torch.equal(box_map[0], expected), "box map = filled tight box of the mask"


def test_video_clips_are_ordered_with_limited_gaps():
    dataset = VideoClipDataset(_videos(), length=40, settings=SMALL, seed=0)
    for index in range(40):
        clip = dataset[index]
        _check(clip)
        gaps = np.diff(clip["frame_indices"].numpy())
        assert (gaps >= 1).all() and (gaps <= 5).all()


def test_sparse_annotations_gap_counts_annotated_frames():
    dataset = VideoClipDataset([SparseVideo(v) for v in _videos(2)], length=20,
                               settings=ClipSettings(size=(64, 80), max_gap=2, min_object_pixels=20), seed=1)
    for index in range(20):
        gaps = np.diff(dataset[index]["frame_indices"].numpy())
        assert set(gaps.tolist()) <= {5, 10}


def test_clips_are_deterministic_per_seed_epoch_and_index():
    videos = _videos(2)
    a = VideoClipDataset(videos, length=10, settings=SMALL, seed=3)
    b = VideoClipDataset(videos, length=10, settings=SMALL, seed=3)
    for key in ("images", "masks", "box_maps", "frame_indices"):
        assert torch.equal(a[4][key], b[4][key])
    assert not torch.equal(a[4]["images"], a[5]["images"])
    before = a[4]["images"]
    a.set_epoch(1)
    assert not torch.equal(a[4]["images"], before)
    with pytest.raises(IndexError):
        a[10]


def test_static_and_composite_clips():
    frames = SequenceFrames(_videos(2, frames=10), step=3)
    static = StaticClipDataset(frames, length=6, settings=SMALL, seed=0)
    composite = CompositeClipDataset(frames, frames, length=6, settings=SMALL, seed=0)
    for dataset in (static, composite):
        for index in range(6):
            _check(dataset[index])
    # Three views of one pair differ (warps), yet show the same object.
    clip = static[0]
    assert not torch.equal(clip["masks"][0], clip["masks"][1])


def test_dataloader_with_workers_gives_the_same_clips():
    dataset = VideoClipDataset(_videos(2), length=8, settings=SMALL, seed=5)
    batches = list(DataLoader(dataset, batch_size=4, num_workers=2))
    assert batches[0]["images"].shape == (4, 3, 3, 64, 80)
    assert torch.equal(batches[1]["images"][2], dataset[6]["images"])
