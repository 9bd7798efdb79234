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


def _box_of(box_map):
    ys, xs = torch.nonzero(box_map[0], as_tuple=True)
    return ys.min().item(), xs.min().item(), ys.max().item() + 1, xs.max().item() + 1


def test_loose_boxes_loosen_the_memory_frames_boxes_and_keep_the_querys_tight():
    from dataclasses import replace

    videos = _videos(2)
    tight = VideoClipDataset(videos, length=12, settings=SMALL, seed=2)
    loose = VideoClipDataset(videos, length=12, settings=replace(SMALL, loose_boxes=0.3), seed=2)
    grown = 0
    for index in range(12):
        a, b = tight[index], loose[index]
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["masks"], b["masks"])
        assert torch.equal(b["box_maps"][-1], a["box_maps"][-1])  # the query's box: the target stays tight
        for t in range(2):
            y0, x0, y1, x1 = _box_of(a["box_maps"][t])
            ly0, lx0, ly1, lx1 = _box_of(b["box_maps"][t])
            # Each side moves at most 0.3 of the box out and 0.075 in (a pixel of rounding either way).
            h, w = y1 - y0, x1 - x0
            assert y0 - 0.3 * h - 1 <= ly0 <= y0 + 0.075 * h + 1 and x1 - 0.075 * w - 1 <= lx1 <= x1 + 0.3 * w + 1
            grown += b["box_maps"][t].sum() > a["box_maps"][t].sum()
    assert grown >= 18  # mostly looser: 24 memory boxes in all
    assert torch.equal(loose[3]["box_maps"], VideoClipDataset(videos, length=12, settings=replace(SMALL, loose_boxes=0.3),
                                                              seed=2)[3]["box_maps"])
    with pytest.raises(ValueError, match="loose_boxes"):
        ClipSettings(loose_boxes=1.5)


def test_a_share_of_clips_is_greyscale_and_otherwise_the_same_clip():
    from dataclasses import replace

    from qmra.data.transforms import LUMA

    videos = _videos(2)
    colour = VideoClipDataset(videos, length=8, settings=SMALL, seed=4)
    grey = VideoClipDataset(videos, length=8, settings=replace(SMALL, grey_clips=1.0), seed=4)
    for index in range(8):
        a, b = colour[index], grey[index]
        luma = sum(weight * a["images"][:, c] for c, weight in enumerate(LUMA))
        assert all(torch.allclose(b["images"][:, c], luma, atol=1e-6) for c in range(3))
        assert torch.equal(a["masks"], b["masks"]) and torch.equal(a["box_maps"], b["box_maps"])
    assert not torch.equal(colour[0]["images"][:, 0], colour[0]["images"][:, 1])  # the colour clips are in colour
    some = VideoClipDataset(videos, length=40, settings=replace(SMALL, grey_clips=0.3), seed=4)
    greys = sum(bool(torch.equal(clip["images"][:, 0], clip["images"][:, 2])) for clip in some)
    assert 4 <= greys <= 22  # 12 expected
    with pytest.raises(ValueError, match="grey_clips"):
        ClipSettings(grey_clips=-0.1)


def test_a_share_of_clips_is_blurred_every_frame_alike_and_otherwise_the_same_clip():
    from dataclasses import replace

    from qmra.data.transforms import gaussian_blur

    videos = _videos(2)
    sharp = VideoClipDataset(videos, length=6, settings=SMALL, seed=4)
    soft = VideoClipDataset(videos, length=6, settings=replace(SMALL, blur_clips=1.0, blur_sigma=(1.5, 1.5)), seed=4)
    for index in range(6):
        a, b = sharp[index], soft[index]
        assert torch.equal(a["masks"], b["masks"]) and torch.equal(a["box_maps"], b["box_maps"])
        assert torch.allclose(b["images"], gaussian_blur(a["images"], 1.5), atol=1e-6)  # its sharp twin, blurred
        assert not torch.allclose(a["images"], b["images"], atol=0.01)
    some = VideoClipDataset(videos, length=40, settings=replace(SMALL, blur_clips=0.3), seed=4)
    blurred = sum(not torch.equal(s["images"], c["images"])  # the others are their sharp twins exactly
                  for s, c in zip(some, VideoClipDataset(videos, length=40, settings=SMALL, seed=4)))
    assert 4 <= blurred <= 22  # 12 expected
    with pytest.raises(ValueError, match="blur_clips"):
        ClipSettings(blur_clips=1.5)


def test_gaussian_blur_keeps_a_flat_image_and_spreads_a_point_by_sigma():
    from qmra.data.transforms import gaussian_blur

    flat = torch.full((1, 3, 20, 24), 0.4)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    point = torch.zeros(1, 3, 41, 41)
    point[..., 20, 20] = 1
    spread = gaussian_blur(point, 2.0)[0, 0]
    assert abs(float(spread.sum()) - 1) < 1e-5
    ys = torch.arange(41, dtype=torch.float32) - 20
    variance = float((spread.sum(1) * ys**2).sum())
    assert abs(variance - 4.0) < 0.2  # sigma² along each axis
