"""Natural-texture "flying objects" clips: real cut-outs with exact masks moving over real photographs.

Eleven training videos are eleven objects, far too few for a network trained from scratch to learn
what an object is. These clips multiply them: every clip takes a target cut-out (an RGBA image whose
alpha is its mask), a background photograph, and other cut-outs, and films them with a moving camera:

- the camera pans and zooms over the background;
- each object moves, scales, rotates and deforms non-rigidly (a thin-plate spline per frame);
- another object may pass in front of the target (occlusion), a recoloured copy of the target may
  fly beside it (a look-alike distractor), and up to ``clutter`` other objects fly behind it;
- the target may leave the frame in a middle frame and come back;
- frames get motion blur and brightness drift.

The target's box covers ``box_area`` of the frame (5–80 %: the sizes users box), its mask is its
warped alpha minus whatever covers it, and the box maps come from those masks. Items are a pure
function of (seed, epoch, index), as for every clip dataset here.

A *pack* is a folder with ``objects/`` (RGBA PNGs) and ``backgrounds/`` (photographs);
``benchmarks/prepare_appearance.py`` builds one from Debian's image packages and DAVIS training frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from qmra.data.boxes import Box, box_from_mask
from qmra.data.clips import ClipSettings, _ClipDataset
from qmra.data.frames import IMAGE_SUFFIXES, list_files
from qmra.data.masks import open_image, read_rgb
from qmra.data.transforms import View, sampling_grid
from qmra.errors import DataError


class CutoutFolder:
    """RGBA cut-outs in a folder (PNG or WebP with alpha). ``pair(i)`` → (H×W×3 uint8, H×W bool alpha > ½),
    so a cut-out folder is also an :class:`~qmra.data.image_masks.ImageMaskSet`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"cut-out folder not found: {self.folder}")
        self.paths = list_files(self.folder, (".png", ".webp"))
        if not self.paths:
            raise DataError(f"no RGBA cut-outs (png, webp) in {self.folder}")

    def __len__(self) -> int:
        return len(self.paths)

    def rgba(self, index: int) -> torch.Tensor:
        """4×H×W float in [0, 1]: RGB premultiplied by nothing, alpha last."""
        image = open_image(self.paths[index]).convert("RGBA")
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        array = np.array(open_image(self.paths[index]).convert("RGBA"))
        return array[..., :3].copy(), array[..., 3] > 127


class PhotoFolder:
    """Background photographs in a folder; ``image(i)`` → 3×H×W float in [0, 1]."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"background folder not found: {self.folder}")
        self.paths = list_files(self.folder, IMAGE_SUFFIXES)
        if not self.paths:
            raise DataError(f"no background images in {self.folder}")

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> torch.Tensor:
        return torch.from_numpy(read_rgb(self.paths[index])).permute(2, 0, 1).float().div_(255.0)


def open_pack(root: str | Path) -> tuple[CutoutFolder, PhotoFolder]:
    """The cut-outs and backgrounds of an appearance pack (``ROOT/objects``, ``ROOT/backgrounds``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"appearance pack not found: {root} (build one with benchmarks/prepare_appearance.py)")
    return CutoutFolder(root / "objects"), PhotoFolder(root / "backgrounds")


@dataclass(frozen=True)
class FlyingSettings:
    """How the camera and the objects move; probabilities are per clip."""

    box_area: tuple[float, float] = (0.05, 0.8)  # the target's box, as a fraction of the frame (log-uniform)
    scale_change: float = 1.5  # the target's scale at the end of a clip is within [1/x, x] of its start
    rotation: float = 30.0  # degrees over a clip
    tps: float = 0.05  # non-rigid deformation per frame, output coordinates
    travel: float = 0.5  # how far an object moves over a clip, in half-frames (normal spread)
    camera_pan: float = 0.2  # fraction of the view the camera moves over a clip
    camera_zoom: float = 1.3  # the view's size at the end is within [1/x, x] of its start
    occluder: float = 0.35
    distractor: float = 0.35
    clutter: int = 2
    leave: float = 0.1  # the target leaves the frame in a middle frame
    motion_blur: float = 0.25
    max_blur: int = 9  # pixels, the longest blur kernel
    brightness: float = 0.15  # per-frame brightness drift

    def __post_init__(self) -> None:
        low, high = self.box_area
        if not 0 < low <= high <= 1:
            raise ValueError("box_area must satisfy 0 < low <= high <= 1")
        if self.scale_change < 1 or self.camera_zoom < 1:
            raise ValueError("scale_change and camera_zoom are factors of at least 1")


def parse_box_area(text: str) -> tuple[float, float]:
    """``LOW-HIGH`` (fractions of the frame, 0 < LOW <= HIGH <= 1) → :attr:`FlyingSettings.box_area`;
    a ValueError saying what it takes otherwise."""
    low, _, high = text.partition("-")
    try:
        return FlyingSettings(box_area=(float(low), float(high))).box_area
    except ValueError:
        raise ValueError(f"the target's box area is LOW-HIGH fractions of the frame, 0 < LOW <= HIGH <= 1 "
                         f"(e.g. 0.003-0.05), got {text!r}") from None


@dataclass(frozen=True)
class _Pose:
    """An object's place in one output frame: its box centre in [-1, 1] output coordinates, its box
    width in output pixels, rotation (radians)."""

    x: float
    y: float
    width: float
    angle: float


@dataclass(frozen=True)
class _Layer:
    """One object over a clip: its cut-out (4×H×W), tight box in the cut-out, poses, flip."""

    rgba: torch.Tensor
    box: Box
    poses: tuple[_Pose, ...]
    flip: bool


class FlyingObjectsClipDataset(_ClipDataset):
    """Clips of cut-out objects flying over photographs (see the module docstring)."""

    def __init__(self, objects: CutoutFolder, backgrounds: PhotoFolder, length: int = 10_000,
                 settings: ClipSettings | None = None, seed: int = 0, flying: FlyingSettings | None = None) -> None:
        super().__init__(settings, length, seed)
        if len(objects) == 0 or len(backgrounds) == 0:
            raise ValueError("flying clips need cut-outs and backgrounds")
        self.objects = objects
        self.backgrounds = backgrounds
        self.flying = flying or FlyingSettings()

    # ------------------------------------------------------------------ drawing a clip

    def _cutout(self, rng: np.random.Generator) -> tuple[torch.Tensor, Box] | None:
        rgba = self.objects.rgba(int(rng.integers(len(self.objects))))
        box = box_from_mask(rgba[3].numpy() > 0.5)
        if box is None or box.width < 8 or box.height < 8:
            return None
        return rgba, box

    def _path(self, rng: np.random.Generator, start: tuple[float, float], width: float, frames: int,
              scale_change: float, travel: float) -> list[_Pose]:
        """Poses along a smooth random path (linear with a little curvature)."""
        flying = self.flying
        velocity = rng.normal(0.0, travel, 2)
        bend = rng.normal(0.0, travel / 3, 2)
        scale_end = math.exp(rng.uniform(-math.log(scale_change), math.log(scale_change)))
        angles = np.radians(rng.uniform(-flying.rotation / 2, flying.rotation / 2, 2))
        poses = []
        for t in np.linspace(0.0, 1.0, frames):
            x = start[0] + velocity[0] * t + bend[0] * t * (1 - t)
            y = start[1] + velocity[1] * t + bend[1] * t * (1 - t)
            poses.append(_Pose(float(x), float(y), width * scale_end**t, float(angles[0] * (1 - t) + angles[1] * t)))
        return poses

    def _box_width(self, rng: np.random.Generator, box: Box, area: tuple[float, float]) -> float:
        """Output box width (pixels) so that the box covers a log-uniform fraction of the frame."""
        h, w = self.settings.size
        fraction = math.exp(rng.uniform(math.log(area[0]), math.log(area[1])))
        aspect = box.width / box.height
        width = math.sqrt(fraction * h * w * aspect)
        height = width / aspect
        shrink = min(1.0, 0.95 * w / width, 0.95 * h / height)
        return width * shrink

    def _sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        settings, flying = self.settings, self.flying
        frames = settings.num_frames
        h, w = settings.size
        target = self._cutout(rng)
        if target is None:
            return None
        rgba, box = target
        width = self._box_width(rng, box, flying.box_area)
        half_w, half_h = width / w, width * box.height / box.width / h  # box half-sides in [-1, 1] units
        start = (rng.uniform(-1 + half_w * 0.8, 1 - half_w * 0.8), rng.uniform(-1 + half_h * 0.8, 1 - half_h * 0.8))
        poses = self._path(rng, start, width, frames, flying.scale_change, flying.travel)
        must_show = list(range(frames))
        if frames > 2 and rng.random() < flying.leave:
            middle = int(rng.integers(1, frames - 1))
            side = rng.choice([-1.0, 1.0])
            pose = poses[middle]
            poses[middle] = _Pose(float(side * (1 + 0.7 * half_w)), pose.y, pose.width, pose.angle)
            must_show.remove(middle)
        flip = settings.hflip and bool(rng.integers(2))
        target_layer = _Layer(rgba, box, tuple(poses), flip)

        behind = self._behind(rng, rgba, box, start, width, frames)
        front = self._in_front(rng, poses[-1], width, (half_w, half_h), frames)

        background = self.backgrounds.image(int(rng.integers(len(self.backgrounds))))
        camera = self._camera(rng, background.shape[1:])
        brightness = 1.0 + np.cumsum(rng.normal(0.0, flying.brightness / 2, frames))
        blur = rng.random() < flying.motion_blur
        images, masks = [], []
        for t in range(frames):
            grid = sampling_grid(camera[t], (h, w), tuple(background.shape[1:]))
            frame = F.grid_sample(background[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
            for layer in behind:
                frame, _ = self._composite(frame, layer, t, rng)
            frame, alpha = self._composite(frame, target_layer, t, rng)
            visible = alpha > 0.5
            for layer in front:
                frame, cover = self._composite(frame, layer, t, rng)
                visible &= cover <= 0.5
            if blur:
                frame = _motion_blur(frame, int(rng.integers(3, flying.max_blur + 1)), float(rng.uniform(0, math.pi)))
            images.append((frame * float(np.clip(brightness[t], 0.6, 1.4))).clamp_(0, 1))
            masks.append(visible.float())
        return self._finish(images, masks, rng, must_show=must_show)

    def _behind(self, rng: np.random.Generator, rgba: torch.Tensor, box, start: tuple[float, float], width: float,
                frames: int) -> list[_Layer]:
        """Layers under the target: other cut-outs (clutter), and sometimes a look-alike of it."""
        flying = self.flying
        behind: list[_Layer] = []
        for _ in range(int(rng.integers(0, flying.clutter + 1))):
            other = self._cutout(rng)
            if other is not None:
                other_width = self._box_width(rng, other[1], (0.02, 0.3))
                position = tuple(rng.uniform(-1, 1, 2))
                behind.append(_Layer(other[0], other[1], tuple(self._path(rng, position, other_width, frames, 1.3, flying.travel)),
                                     bool(rng.integers(2))))
        if rng.random() < flying.distractor:
            # A look-alike: the target itself, recoloured a little, elsewhere and moving on its own.
            gains = torch.from_numpy(rng.uniform(0.85, 1.15, 3).astype(np.float32))[:, None, None]
            copy = rgba.clone()
            copy[:3] = (copy[:3] * gains).clamp_(0, 1)
            position = (float(np.clip(-start[0] + rng.normal(0, 0.3), -0.9, 0.9)), float(rng.uniform(-0.8, 0.8)))
            behind.append(_Layer(copy, box, tuple(self._path(rng, position, width * rng.uniform(0.7, 1.3), frames,
                                                             flying.scale_change, flying.travel)), bool(rng.integers(2))))
        return behind

    def _in_front(self, rng: np.random.Generator, end: "_Pose", width: float, half: tuple[float, float],
                  frames: int) -> list[_Layer]:
        """Sometimes an occluder that crosses the target's place in the last (query) frame."""
        front: list[_Layer] = []
        if rng.random() < self.flying.occluder:
            other = self._cutout(rng)
            if other is not None:
                # Aim its path at the target in the last frame, a little off centre.
                other_width = width * rng.uniform(0.4, 1.0)
                aim = (end.x + rng.normal(0, half[0] * 0.6), end.y + rng.normal(0, half[1] * 0.6))
                travel = rng.normal(0, self.flying.travel, 2)
                first = (aim[0] - travel[0], aim[1] - travel[1])
                path = [_Pose(float(first[0] + travel[0] * t), float(first[1] + travel[1] * t), other_width, 0.0)
                        for t in np.linspace(0.0, 1.0, frames)]
                front.append(_Layer(other[0], other[1], tuple(path), bool(rng.integers(2))))
        return front

    def _camera(self, rng: np.random.Generator, source: tuple[int, int]) -> list[View]:
        """Background views over the clip: a window that pans and zooms."""
        h, w = self.settings.size
        height, width = source
        side = min(width, height * w / h) * rng.uniform(0.5, 1.0)
        zoom_end = math.exp(rng.uniform(-math.log(self.flying.camera_zoom), math.log(self.flying.camera_zoom)))
        centre = np.array([rng.uniform(side / 2, max(side / 2, width - side / 2)),
                           rng.uniform(side * h / w / 2, max(side * h / w / 2, height - side * h / w / 2))])
        pan = rng.normal(0.0, self.flying.camera_pan, 2) * side
        flip = bool(rng.integers(2))
        views = []
        for t in np.linspace(0.0, 1.0, self.settings.num_frames):
            extent = side * zoom_end**t
            views.append(View(tuple(centre + pan * t), (extent, extent * h / w), 0.0, flip))
        return views

    def _composite(self, frame: torch.Tensor, layer: _Layer, t: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``layer`` at frame ``t`` over ``frame`` (3×h×w, in place: the clip's own frame) → (that
        frame, the layer's alpha 1×h×w).

        Only the square of the frame that can hold the object is rendered (the object's box
        diagonal plus a margin for the cut-out's border and the deformation): most of a frame is
        not under a given object, and rendering it would cost most of the time.
        """
        h, w = self.settings.size
        pose, box = layer.poses[t], layer.box
        scale = pose.width / box.width  # output pixels per cut-out pixel
        ox, oy = (pose.x + 1) / 2 * w, (pose.y + 1) / 2 * h  # the box centre in output pixels
        reach = 0.5 * math.hypot(box.width, box.height) * scale * 1.2 + 4
        x0, x1 = max(0, int(ox - reach)), min(w, int(math.ceil(ox + reach)))
        y0, y1 = max(0, int(oy - reach)), min(h, int(math.ceil(oy + reach)))
        alpha = torch.zeros(1, h, w)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return frame, alpha
        # Where the region's centre lies in the cut-out: output offset from the box centre, unrotated.
        dx, dy = ((x0 + x1) / 2 - ox) / scale * (-1 if layer.flip else 1), ((y0 + y1) / 2 - oy) / scale
        c, s = math.cos(pose.angle), math.sin(pose.angle)
        centre = (box.center[0] + c * dx + s * dy, box.center[1] - s * dx + c * dy)
        view = View(centre, ((x1 - x0) / scale, (y1 - y0) / scale), pose.angle, layer.flip, self.flying.tps)
        grid = sampling_grid(view, (y1 - y0, x1 - x0), tuple(layer.rgba.shape[1:]), rng)
        drawn = F.grid_sample(layer.rgba[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        cover = alpha[:, y0:y1, x0:x1]
        cover.copy_(drawn[3:4]).clamp_(0, 1)
        region = frame[:, y0:y1, x0:x1]
        region.sub_(region * cover).add_(drawn[:3] * cover)  # region·(1 − alpha) + drawn·alpha
        return frame, alpha


def _motion_blur(frame: torch.Tensor, length: int, angle: float) -> torch.Tensor:
    """Blur 3×h×w along a line of ``length`` pixels at ``angle`` (radians): a moving camera's smear.

    The mean of the frame shifted to each pixel of the line (edges replicated): a convolution with
    the line's kernel, at the cost of its ``length``-odd taps rather than all length² of them.
    """
    centre = (length - 1) / 2
    taps = sorted({(int(round(centre + step * math.sin(angle))), int(round(centre + step * math.cos(angle))))
                   for step in np.linspace(-centre, centre, 2 * length)})
    padded = F.pad(frame[None], (length // 2, (length - 1) // 2, length // 2, (length - 1) // 2), mode="replicate")[0]
    height, width = frame.shape[-2:]
    blurred = torch.zeros_like(frame)
    for row, column in taps:
        blurred += padded[:, row:row + height, column:column + width]
    return blurred.div_(len(taps))
