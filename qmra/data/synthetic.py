"""Procedural videos with exact masks: textured objects that move, scale, rotate, occlude each other,
leave and re-enter the frame, over a textured, slowly panning background, with look-alike distractors.

A :class:`SyntheticVideo` renders any frame on demand from its random parameters (nothing is stored),
so it has any size and length at constant memory. It is a :class:`~qmra.data.sequence.VideoSequence`,
so training clips can be sampled from it like from a real video.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmra.data.boxes import Box, box_from_mask
from qmra.data.masks import write_palette_png
from qmra.data.atomic import atomic_path

SHAPES = ("ellipse", "rectangle", "polygon", "star", "blob")
PATTERNS = ("stripes", "checker", "dots", "gradient")
#: Frames a video keeps rendered: a training clip reads its frames' labels, then their images.
CACHED_FRAMES = 4


@dataclass(frozen=True)
class SyntheticConfig:
    """Size in pixels, length in frames, number of labelled objects and of unlabelled look-alikes."""

    height: int = 240
    width: int = 320
    num_frames: int = 30
    num_objects: int = 2
    num_distractors: int = 1
    seed: int = 0
    #: About half the objects (and distractors) leave the frame once and come back.
    exits: bool = True
    #: Gaussian pixel noise (standard deviation in grey levels), like a camera's.
    noise: float = 3.0

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"synthetic frames must be at least 16x16, got {self.height}x{self.width}")
        if self.num_frames < 1 or self.num_objects < 1 or self.num_distractors < 0:
            raise ValueError("num_frames and num_objects must be >= 1 and num_distractors >= 0")
        if self.num_objects > 254:
            raise ValueError("at most 254 objects")


@dataclass(frozen=True)
class _Texture:
    pattern: str
    colours: np.ndarray  # 2×3 float in [0, 255]
    frequency: float  # cycles per unit of object radius
    angle: float

    def paint(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Local coordinates (object radius = 1) → N×3 colours."""
        a, b = math.cos(self.angle), math.sin(self.angle)
        s, t = a * u + b * v, -b * u + a * v
        f = self.frequency
        if self.pattern == "stripes":
            weight = 0.5 + 0.5 * np.sin(2 * math.pi * f * s)
        elif self.pattern == "checker":
            weight = ((np.floor(f * s) + np.floor(f * t)) % 2).astype(np.float64)
        elif self.pattern == "dots":
            weight = ((np.sin(2 * math.pi * f * s) * np.sin(2 * math.pi * f * t)) > 0.3).astype(np.float64)
        else:
            weight = np.clip(0.5 + 0.5 * s, 0, 1)
        return self.colours[0] * (1 - weight[..., None]) + self.colours[1] * weight[..., None]


@dataclass(frozen=True)
class _Actor:
    """One moving shape: a labelled object (id > 0) or a distractor (id 0)."""

    object_id: int
    depth: float  # larger is nearer the camera (drawn later)
    shape: str
    shape_params: np.ndarray
    texture: _Texture
    radius: float  # pixels, at scale 1
    start: np.ndarray  # (x, y) pixels
    velocity: np.ndarray  # pixels per frame
    sway: np.ndarray  # (amp x, amp y, period, phase)
    scale_params: np.ndarray  # (amplitude, period, phase)
    rotation: np.ndarray  # (start, per frame)
    bounds: np.ndarray  # (x min, x max, y min, y max): the base path is reflected at these
    excursion: np.ndarray  # (start frame, duration, dx, dy): a trip out of the frame and back; duration 0 = none

    def pose(self, t: float) -> tuple[float, float, float, float]:
        """Centre x, y (pixels), scale and angle at frame t."""
        amp_x, amp_y, period, phase = self.sway
        x = self.start[0] + self.velocity[0] * t + amp_x * math.sin(2 * math.pi * t / period + phase)
        y = self.start[1] + self.velocity[1] * t + amp_y * math.cos(2 * math.pi * t / period + phase)
        x, y = _reflect(x, self.bounds[0], self.bounds[1]), _reflect(y, self.bounds[2], self.bounds[3])
        begin, duration, dx, dy = self.excursion
        if duration > 0 and begin <= t <= begin + duration:
            bump = math.sin(math.pi * (t - begin) / duration) ** 2
            x, y = x + dx * bump, y + dy * bump
        amplitude, s_period, s_phase = self.scale_params
        scale = 1.0 + amplitude * math.sin(2 * math.pi * t / s_period + s_phase)
        return x, y, scale, self.rotation[0] + self.rotation[1] * t

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Local coordinates (radius 1) → boolean membership."""
        p = self.shape_params
        if self.shape == "ellipse":
            return (u / p[0]) ** 2 + (v / p[1]) ** 2 <= 1.0
        if self.shape == "rectangle":
            return (np.abs(u) <= p[0]) & (np.abs(v) <= p[1])
        rho = np.hypot(u, v)
        theta = np.arctan2(v, u)
        if self.shape == "polygon":
            sides = int(p[0])
            sector = 2 * math.pi / sides
            edge = math.cos(math.pi / sides) / np.cos((theta % sector) - sector / 2)
            return rho <= edge
        if self.shape == "star":
            points = int(p[0])
            radius = p[1] + (1 - p[1]) * (0.5 + 0.5 * np.cos(points * theta))
            return rho <= radius
        radius = 0.75 + p[0] * np.cos(2 * theta + p[1]) + p[2] * np.cos(3 * theta + p[3]) + p[4] * np.cos(5 * theta + p[5])
        return rho <= radius


class SyntheticVideo:
    """A procedurally generated video with exact label maps; see the module docstring."""

    def __init__(self, config: SyntheticConfig | None = None, name: str | None = None) -> None:
        self.config = config = config or SyntheticConfig()
        self.name = name or f"synthetic-{config.seed}"
        rng = np.random.default_rng([config.seed, 0x51])
        self._background = _Background(rng, config.height, config.width, config.num_frames)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._actors = self._cast(rng)

    # ------------------------------------------------------------- VideoSequence
    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    @property
    def size(self) -> tuple[int, int]:
        return self.config.height, self.config.width

    @property
    def frame_names(self) -> list[str]:
        return [f"{i:05d}" for i in range(self.num_frames)]

    @property
    def object_ids(self) -> list[int]:
        return list(range(1, self.config.num_objects + 1))

    @property
    def annotated_indices(self) -> list[int]:
        return list(range(self.num_frames))

    def image(self, index: int) -> np.ndarray:
        """H×W×3 uint8."""
        return self.render(index)[0]

    def labels(self, index: int) -> np.ndarray:
        """H×W uint8 ids: 0 background (and distractors), 1..N objects, as visible after occlusion."""
        return self.render(index)[1]

    # ------------------------------------------------------------- rendering
    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} of a {self.num_frames}-frame video")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        height, width = self.size
        image = self._background.render(index)
        labels = np.zeros((height, width), dtype=np.uint8)
        for actor in sorted(self._actors, key=lambda a: a.depth):
            x, y, scale, angle = actor.pose(index)
            reach = actor.radius * scale * 1.5
            x0, x1 = max(0, int(x - reach)), min(width, int(x + reach) + 1)
            y0, y1 = max(0, int(y - reach)), min(height, int(y + reach) + 1)
            if x0 >= x1 or y0 >= y1:
                continue  # wholly outside the frame
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
            dx, dy = (xs + 0.5 - x) / (actor.radius * scale), (ys + 0.5 - y) / (actor.radius * scale)
            c, s = math.cos(angle), math.sin(angle)
            u, v = c * dx + s * dy, -s * dx + c * dy
            inside = actor.inside(u, v)
            if not inside.any():
                continue
            region = image[y0:y1, x0:x1]
            region[inside] = actor.texture.paint(u[inside], v[inside])
            labels[y0:y1, x0:x1][inside] = actor.object_id
        if self.config.noise > 0:
            noise_rng = np.random.default_rng([self.config.seed, 0x4E, index])
            image = image + noise_rng.normal(0.0, self.config.noise, image.shape)
        frame = np.clip(image, 0, 255).round().astype(np.uint8)
        self._cache[index] = (frame, labels)
        if len(self._cache) > CACHED_FRAMES:
            self._cache.popitem(last=False)
        return frame, labels

    def first_boxes(self) -> dict[int, Box]:
        """Each object's tight box on the first frame where it is visible (object id → box)."""
        boxes: dict[int, Box] = {}
        for index in range(self.num_frames):
            labels = self.labels(index)
            for object_id in self.object_ids:
                if object_id not in boxes:
                    box = box_from_mask(labels == object_id)
                    if box is not None:
                        boxes[object_id] = box
            if len(boxes) == len(self.object_ids):
                break
        return boxes

    # ------------------------------------------------------------- writers
    def write_davis(self, root: str | Path, resolution: str = "480p") -> Path:
        """Write ``root/JPEGImages/<res>/<name>/00000.jpg`` and palette ``Annotations``; returns the frame folder."""
        from PIL import Image

        root = Path(root)
        frames = root / "JPEGImages" / resolution / self.name
        masks = root / "Annotations" / resolution / self.name
        frames.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for index, frame_name in enumerate(self.frame_names):
            image, labels = self.render(index)
            with atomic_path(frames / f"{frame_name}.jpg") as temporary:
                Image.fromarray(image).save(temporary, format="JPEG", quality=95, subsampling=0)
            write_palette_png(masks / f"{frame_name}.png", labels)
        return frames

    def write_mp4(self, path: str | Path, fps: float = 24.0, annotations: str | Path | None = None) -> Path:
        """Write the frames as an H.264 mp4 (and, if asked, the label maps as palette PNGs in ``annotations``)."""
        from qmra.data.video_writer import Mp4Writer

        height, width = self.size
        with Mp4Writer(path, width, height, fps) as writer:
            for index, frame_name in enumerate(self.frame_names):
                image, labels = self.render(index)
                writer.write(image)
                if annotations is not None:
                    write_palette_png(Path(annotations) / f"{frame_name}.png", labels)
        return Path(path)

    # ------------------------------------------------------------- casting
    def _cast(self, rng: np.random.Generator) -> list[_Actor]:
        config = self.config
        for _attempt in range(50):
            actors = [self._actor(rng, object_id) for object_id in self.object_ids]
            for index in range(config.num_distractors):
                actors.append(self._look_alike(rng, actors[index % len(actors)]))
            if self._all_visible_at_start(actors):
                return actors
        return actors

    def _actor(self, rng: np.random.Generator, object_id: int) -> _Actor:
        height, width = self.size
        short = min(height, width)
        radius = rng.uniform(0.08, 0.16) * short
        shape = str(rng.choice(SHAPES))
        params = {
            "ellipse": lambda: np.array([rng.uniform(0.6, 1.0), rng.uniform(0.4, 1.0)]),
            "rectangle": lambda: np.array([rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.9)]),
            "polygon": lambda: np.array([rng.integers(3, 8)], dtype=np.float64),
            "star": lambda: np.array([rng.integers(4, 7), rng.uniform(0.4, 0.6)]),
            "blob": lambda: np.concatenate([rng.uniform(0.05, 0.15, 1), rng.uniform(0, 6.3, 1), rng.uniform(0.02, 0.1, 1),
                                            rng.uniform(0, 6.3, 1), rng.uniform(0.0, 0.05, 1), rng.uniform(0, 6.3, 1)]),
        }[shape]()
        texture = _Texture(str(rng.choice(PATTERNS)), rng.uniform(20, 255, (2, 3)), rng.uniform(1.0, 3.0), rng.uniform(0, math.pi))
        start = np.array([rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)])
        frames = max(self.num_frames, 2)
        velocity = rng.uniform(-1, 1, 2) * np.array([width, height]) * 0.6 / frames
        sway = np.array([rng.uniform(0, 0.2) * width, rng.uniform(0, 0.2) * height, rng.uniform(0.6, 1.5) * frames,
                         rng.uniform(0, 2 * math.pi)])
        scale = np.array([rng.uniform(0.0, 0.35), rng.uniform(0.5, 1.5) * frames, rng.uniform(0, 2 * math.pi)])
        rotation = np.array([rng.uniform(0, 2 * math.pi), rng.uniform(-0.05, 0.05)])
        bounds = np.array([radius, width - radius, radius, height - radius])
        excursion = np.zeros(4)
        leaves = rng.uniform() < 0.5
        if self.config.exits and leaves and frames >= 10:
            # Out along a random direction far enough to clear the frame, back before the end.
            direction = rng.uniform(0, 2 * math.pi)
            distance = 1.2 * math.hypot(width, height)
            excursion = np.array([rng.uniform(0.15, 0.5) * frames, rng.uniform(0.2, 0.35) * frames,
                                  distance * math.cos(direction), distance * math.sin(direction)])
        return _Actor(object_id, rng.uniform(), shape, params, texture, radius, start, velocity, sway, scale, rotation,
                      bounds, excursion)

    def _look_alike(self, rng: np.random.Generator, original: _Actor) -> _Actor:
        """Same shape and texture (colours shifted a little) as ``original``, unlabelled, moving its own way."""
        own = self._actor(rng, 0)
        colours = np.clip(original.texture.colours + rng.uniform(-15, 15, (2, 3)), 0, 255)
        texture = _Texture(original.texture.pattern, colours, original.texture.frequency, original.texture.angle)
        return _Actor(0, own.depth, original.shape, original.shape_params, texture, original.radius * rng.uniform(0.85, 1.15),
                      own.start, own.velocity, own.sway, own.scale_params, own.rotation, own.bounds, own.excursion)

    def _all_visible_at_start(self, actors: list[_Actor]) -> bool:
        """Every labelled object shows at least half of itself on frame 0 (so it can be boxed there)."""
        self._actors = actors
        self._cache.clear()
        labels = self.labels(0)
        for actor in actors:
            if actor.object_id == 0:
                continue
            visible = int((labels == actor.object_id).sum())
            _, _, scale, _ = actor.pose(0)
            if visible < 0.5 * math.pi * 0.25 * (actor.radius * scale) ** 2:
                return False
        return True


def _reflect(value: float, low: float, high: float) -> float:
    """Fold ``value`` into [low, high] as a ball bouncing between two walls."""
    if high <= low:
        return (low + high) / 2
    span = high - low
    folded = (value - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


@dataclass
class _Background:
    """Coloured gratings over smooth noise, panning slowly (camera motion)."""

    rng: np.random.Generator
    height: int
    width: int
    num_frames: int

    def __post_init__(self) -> None:
        rng = self.rng
        self.base = rng.uniform(40, 200, 3)
        self.gratings = [(rng.uniform(0, math.pi), rng.uniform(2, 12) / max(self.height, self.width), rng.uniform(0, 6.3),
                          rng.uniform(-40, 40, 3)) for _ in range(3)]
        coarse = rng.uniform(-50, 50, (6, 8, 3))
        coarse[-1], coarse[:, -1] = coarse[0], coarse[:, 0]  # periodic, so that panning shows no seam
        self.noise = coarse
        self.pan = rng.uniform(-0.3, 0.3, 2) * np.array([self.width, self.height]) / max(self.num_frames, 1)

    def render(self, index: int) -> np.ndarray:
        # Every term is separable in x and y, so it is computed on one row and one column and combined
        # by outer products: the same image (to float rounding) at a fifth of the cost.
        xs = np.arange(self.width, dtype=np.float64) + self.pan[0] * index
        ys = np.arange(self.height, dtype=np.float64) + self.pan[1] * index
        image = np.broadcast_to(self.base, (self.height, self.width, 3)).copy()
        for angle, frequency, phase, colour in self.gratings:
            # sin(X + Y) = sin X cos Y + cos X sin Y, with X from x alone and Y from y alone.
            along_x = 2 * math.pi * frequency * math.cos(angle) * xs + phase
            along_y = 2 * math.pi * frequency * math.sin(angle) * ys
            wave = np.cos(along_y)[:, None] * np.sin(along_x)[None, :] + np.sin(along_y)[:, None] * np.cos(along_x)[None, :]
            image += wave[..., None] * colour
        # Smooth noise: bilinear interpolation of a coarse random grid, periodic so panning never runs out;
        # between the grid's rows first, then between its columns.
        gy, gx = self.noise.shape[:2]
        fy = (ys / self.height * (gy - 1)) % (gy - 1)
        fx = (xs / self.width * (gx - 1)) % (gx - 1)
        y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
        wy, wx = (fy - y0)[:, None, None], (fx - x0)[None, :, None]
        rows = self.noise[y0] * (1 - wy) + self.noise[y0 + 1] * wy  # H×gx×3
        image += rows[:, x0] * (1 - wx) + rows[:, x0 + 1] * wx
        return image
