"""Training clips: what the trainer consumes.

Each item is a dict of float32 tensors for T frames (default 3: two memory frames, one query) at a
fixed size (default 384×384):

- ``images``: T×3×h×w RGB in [0, 1];
- ``masks``: T×1×h×w, 1 on the target object;
- ``box_maps``: T×1×h×w, the filled tight box of each frame's mask (jittered if asked);
- ``frame_indices`` (video clips only): the T frame indices used, in order.

Three kinds: :class:`VideoClipDataset` (ordered frames of a real or synthetic video, gaps ≤ 5),
:class:`StaticClipDataset` (the paper's simulated videos: three warped views of one image–mask
pair) and :class:`CompositeClipDataset` (an object cut out with its mask and moved over another
image's background). Every item is a pure function of (seed, epoch, index): deterministic, and
safe with several DataLoader workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from qmra.data.boxes import Box, box_from_mask, loosened, render_box_map
from qmra.data.image_masks import ImageMaskSet
from qmra.data.sequence import VideoSequence
from qmra.data.transforms import View, colour_jitter, gaussian_blur, greyscale, sampling_grid, warp_image, warp_mask
from qmra.errors import DataError


class NoUsableClip(DataError):
    """A clip source that drew no usable clip in all its attempts: its target objects too small at the
    clip size (``min_object_pixels``), say."""


@dataclass(frozen=True)
class ClipSettings:
    size: tuple[int, int] = (384, 384)  # (h, w) of every frame
    num_frames: int = 3
    max_gap: int = 5  # video clips: at most this many frames between consecutive clip frames
    hflip: bool = True
    colour_jitter: float = 0.2
    #: Share of clips made greyscale, every frame (infrared cameras, microscopes and old film are).
    grey_clips: float = 0.0
    #: Share of clips blurred, every frame alike, by a Gaussian of :attr:`blur_sigma` pixels (a soft
    #: focus, a video scaled up from a smaller one).
    blur_clips: float = 0.0
    blur_sigma: tuple[float, float] = (0.5, 2.5)
    #: The memory frames' boxes (all but the last frame's) drawn loose, as people draw the first box:
    #: each side moved by -1/4 to 1 times this share of the box's side (:func:`loosened`); 0: tight.
    loose_boxes: float = 0.0
    min_object_pixels: int = 50  # the target must keep this many pixels in every frame
    #: Crop window side relative to the object's box side, drawn log-uniformly (larger shows more
    #: context and a smaller object). Inference sees whole frames where objects often fill only a
    #: few percent, so the range reaches far beyond the tight crops that train fastest.
    context: tuple[float, float] = (1.3, 5.0)
    static_rotation: float = 20.0  # degrees, static and composite views
    static_scale: tuple[float, float] = (0.8, 1.25)
    tps: float = 0.08  # thin-plate-spline magnitude for static views
    video_jitter: float = 0.04  # per-frame shift/scale jitter of video crops
    attempts: int = 10

    def __post_init__(self) -> None:
        if self.num_frames < 2:
            raise ValueError("a clip needs at least 2 frames (memory and query)")
        if self.max_gap < 1:
            raise ValueError("max_gap must be at least 1")
        if not 0 <= self.loose_boxes <= 1:
            raise ValueError(f"loose_boxes must be a share of the box's side, 0 to 1, got {self.loose_boxes}")
        for name in ("grey_clips", "blur_clips"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share of the clips, 0 to 1, got {getattr(self, name)}")


class _ClipDataset(Dataset):
    """``length`` items per epoch; item i of epoch e is drawn with the generator seeded by (seed, e, i)."""

    def __init__(self, settings: ClipSettings | None, length: int, seed: int) -> None:
        self.settings = settings or ClipSettings()
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different clips in each epoch (call before creating the DataLoader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for _ in range(self.settings.attempts):
            clip = self._sample(rng)
            if clip is not None:
                return clip
        height, width = self.settings.size
        raise NoUsableClip(f"{type(self).__name__}: no usable clip in {self.settings.attempts} attempts for item {index} at "
                           f"{width}x{height}: the target must keep {self.settings.min_object_pixels} pixels in every "
                           "frame (min_object_pixels)")

    def _sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        raise NotImplementedError

    def _finish(self, images: list[torch.Tensor], masks: list[torch.Tensor], rng: np.random.Generator,
                must_show: Sequence[int] | None = None) -> dict[str, torch.Tensor] | None:
        """Stack frames, check the object is in each (or in the frames ``must_show`` lists: an object
        may leave the frame in others), add box maps (empty where it is absent), colour jitter and, for
        shares of clips, greyscale and blur."""
        settings = self.settings
        shown = range(len(masks)) if must_show is None else must_show
        if any(int(masks[t].sum()) < settings.min_object_pixels for t in shown):
            return None
        h, w = settings.size
        boxes = [box_from_mask(mask[0].numpy() > 0.5) for mask in masks]
        images = colour_jitter(torch.stack(images), settings.colour_jitter, rng)
        if settings.grey_clips and rng.random() < settings.grey_clips:
            images = greyscale(images)
        if settings.blur_clips and rng.random() < settings.blur_clips:
            images = gaussian_blur(images, float(rng.uniform(*settings.blur_sigma)))
        if settings.loose_boxes:
            # Drawn last, so that a clip's frames and masks are the same with tight boxes or loose ones;
            # the query's box (the last frame's) is the stage-1 target and stays tight.
            boxes = [box if box is None or t == len(boxes) - 1 else loosened(box, settings.loose_boxes, (h, w), rng)
                     for t, box in enumerate(boxes)]
        return {
            "images": images,
            "masks": torch.stack(masks),
            "box_maps": torch.stack([torch.from_numpy(render_box_map(box, (h, w)))[None] for box in boxes]),
        }

    def _window(self, box: Box, image_size: tuple[int, int], rng: np.random.Generator,
                scale: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
        """A crop window (centre, extent) around ``box`` with the output's aspect ratio and random context."""
        h, w = self.settings.size
        low, high = self.settings.context
        side = max(box.width, box.height * w / h) * math.exp(rng.uniform(math.log(low), math.log(high))) * scale
        # Do not look much beyond the image: the black outside teaches nothing.
        image_h, image_w = image_size
        side = min(side, max(box.width, box.height * w / h, 1.05 * max(image_w, image_h * w / h)))
        cx, cy = box.center
        extent = (side, side * h / w)
        # Put the object anywhere in the window, not always in its middle: at inference objects
        # are anywhere in the frame, and a centred crop teaches a centre prior instead of tracking.
        room_x = max(0.0, (extent[0] - box.width) / 2)
        room_y = max(0.0, (extent[1] - box.height) / 2)
        shift = rng.uniform(-1.0, 1.0, 2) * np.array([room_x, room_y]) + rng.uniform(-0.1, 0.1, 2) * np.array([box.width, box.height])
        return (cx + shift[0], cy + shift[1]), extent


class VideoClipDataset(_ClipDataset):
    """T temporally ordered annotated frames of one video (gaps ≤ ``max_gap``) and one of its objects,
    present in every frame. One crop window follows the object over the clip (real motion kept),
    with a small per-frame jitter; the same flip and colour change for the whole clip."""

    def __init__(self, sequences: Sequence[VideoSequence], length: int = 10_000, settings: ClipSettings | None = None,
                 seed: int = 0) -> None:
        super().__init__(settings, length, seed)
        self.sequences = list(sequences)
        needed = self.settings.num_frames
        self.sequences = [s for s in self.sequences if len(s.annotated_indices) >= needed and s.object_ids]
        if not self.sequences:
            raise ValueError(f"no sequence has {needed} annotated frames and an object")
        weights = np.array([len(s.annotated_indices) for s in self.sequences], dtype=np.float64)
        self.weights = weights / weights.sum()

    def _sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        settings = self.settings
        sequence = self.sequences[rng.choice(len(self.sequences), p=self.weights)]
        annotated = sequence.annotated_indices
        gaps = rng.integers(1, settings.max_gap + 1, settings.num_frames - 1)
        span = int(gaps.sum())
        if span >= len(annotated):
            gaps = np.ones(settings.num_frames - 1, dtype=int)
            span = int(gaps.sum())
        start = int(rng.integers(0, len(annotated) - span))
        positions = start + np.concatenate([[0], np.cumsum(gaps)])
        indices = [annotated[p] for p in positions]
        object_id = int(rng.choice(sequence.object_ids))
        masks_full = [sequence.labels(i) == object_id for i in indices]
        boxes = [box_from_mask(m) for m in masks_full]
        if any(b is None for b in boxes):
            return None
        union = Box(min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes))  # type: ignore[union-attr]
        centre, extent = self._window(union, masks_full[0].shape, rng)
        flip = settings.hflip and bool(rng.integers(2))
        height, width = masks_full[0].shape
        images, masks = [], []
        for index, mask in zip(indices, masks_full):
            jitter = rng.uniform(-settings.video_jitter, settings.video_jitter, 3)
            view = View((centre[0] + jitter[0] * extent[0], centre[1] + jitter[1] * extent[1]),
                        (extent[0] * (1 + jitter[2]), extent[1] * (1 + jitter[2])), 0.0, flip)
            grid = sampling_grid(view, settings.size, (height, width))
            images.append(warp_image(sequence.image(index), grid))
            masks.append(warp_mask(mask, grid))
        clip = self._finish(images, masks, rng)
        if clip is not None:
            clip["frame_indices"] = torch.tensor(indices)
        return clip


class StaticClipDataset(_ClipDataset):
    """The paper's simulated videos: T views of one image–mask pair, each a random crop with its own
    rotation, scale and thin-plate-spline warp (images bilinear, masks nearest)."""

    def __init__(self, pairs: ImageMaskSet, length: int = 10_000, settings: ClipSettings | None = None, seed: int = 0) -> None:
        super().__init__(settings, length, seed)
        if len(pairs) == 0:
            raise ValueError("no image–mask pairs")
        self.pairs = pairs

    def _sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        settings = self.settings
        image, mask = self.pairs.pair(int(rng.integers(len(self.pairs))))
        box = box_from_mask(mask)
        if box is None:
            return None
        flip = settings.hflip and bool(rng.integers(2))
        images, masks = [], []
        for _ in range(settings.num_frames):
            centre, extent = self._window(box, mask.shape, rng, rng.uniform(*settings.static_scale))
            angle = math.radians(rng.uniform(-settings.static_rotation, settings.static_rotation))
            grid = sampling_grid(View(centre, extent, angle, flip, settings.tps), settings.size, mask.shape, rng)
            images.append(warp_image(image, grid))
            masks.append(warp_mask(mask, grid))
        return self._finish(images, masks, rng)


class CompositeClipDataset(_ClipDataset):
    """An object cut out of one image with its mask, moved along a random path (shift, scale,
    rotation) over a crop of another image that pans slowly. Not in the paper: it multiplies the
    variety of the little real data there is."""

    def __init__(self, objects: ImageMaskSet, backgrounds: ImageMaskSet, length: int = 10_000,
                 settings: ClipSettings | None = None, seed: int = 0) -> None:
        super().__init__(settings, length, seed)
        if len(objects) == 0 or len(backgrounds) == 0:
            raise ValueError("composite clips need objects and backgrounds")
        self.objects = objects
        self.backgrounds = backgrounds

    def _sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        settings = self.settings
        h, w = settings.size
        source, mask = self.objects.pair(int(rng.integers(len(self.objects))))
        background, _ = self.backgrounds.pair(int(rng.integers(len(self.backgrounds))))
        box = box_from_mask(mask)
        if box is None:
            return None
        bg_h, bg_w = background.shape[:2]
        # Background: a window of random size that pans a little over the clip.
        side = min(bg_w, bg_h * w / h) * rng.uniform(0.6, 1.0)
        bg_extent = (side, side * h / w)
        bg_start = np.array([rng.uniform(side / 2, max(side / 2, bg_w - side / 2)),
                             rng.uniform(bg_extent[1] / 2, max(bg_extent[1] / 2, bg_h - bg_extent[1] / 2))])
        bg_pan = rng.uniform(-0.05, 0.05, 2) * side
        # Object path in output coordinates ([-1, 1] across the frame): start and end poses.
        object_side = rng.uniform(0.25, 0.6)  # fraction of the frame the object's box spans
        start, end = rng.uniform(-0.5, 0.5, 2), rng.uniform(-0.5, 0.5, 2)
        scale_end = rng.uniform(0.8, 1.25)
        angles = np.radians(rng.uniform(-settings.static_rotation, settings.static_rotation, 2))
        flip = settings.hflip and bool(rng.integers(2))
        base_width = max(box.width, box.height * w / h) / object_side  # window width at scale 1, source pixels
        images, masks = [], []
        for t in np.linspace(0.0, 1.0, settings.num_frames):
            bg_grid = sampling_grid(View(tuple(bg_start + bg_pan * t), bg_extent), settings.size, (bg_h, bg_w))
            frame = warp_image(background, bg_grid)
            position = start * (1 - t) + end * t
            scale = 1.0 * (1 - t) + scale_end * t
            extent = (base_width / scale, base_width * h / w / scale)
            angle = float(angles[0] * (1 - t) + angles[1] * t)
            # Place the window so that output position `position` shows the object's box centre.
            lx, ly = position[0] * extent[0] / 2 * (-1 if flip else 1), position[1] * extent[1] / 2
            c, s_ = math.cos(angle), math.sin(angle)
            centre = (box.center[0] - (c * lx + s_ * ly), box.center[1] - (-s_ * lx + c * ly))
            grid = sampling_grid(View(centre, extent, angle, flip, settings.tps / 2), settings.size, mask.shape, rng)
            alpha = warp_mask(mask, grid)
            frame = frame * (1 - alpha) + warp_image(source, grid) * alpha
            images.append(frame)
            masks.append(alpha)
        return self._finish(images, masks, rng)


class SequenceFrames:
    """Annotated frames of videos as image–mask pairs (one per frame and object): lets DAVIS or
    synthetic videos feed :class:`StaticClipDataset` and :class:`CompositeClipDataset`."""

    def __init__(self, sequences: Sequence[VideoSequence], step: int = 1) -> None:
        self.sequences = list(sequences)
        self.items = [(s, i, o) for s, seq in enumerate(self.sequences) for i in seq.annotated_indices[::step] for o in seq.object_ids]
        if not self.items:
            raise ValueError("no annotated frames with objects")

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s, frame, object_id = self.items[index]
        sequence = self.sequences[s]
        return sequence.image(frame), sequence.labels(frame) == object_id
