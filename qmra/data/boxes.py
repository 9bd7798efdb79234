"""Boxes in pixels (x0, y0, x1, y1), boxes from masks, and box maps.

Convention: pixel column ``j`` covers ``[j, j + 1)``, so the tight box of a mask whose leftmost and
rightmost object pixels are columns 3 and 7 is ``x0 = 3, x1 = 8``, and a one-pixel object has area 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qmra.errors import BoxError

#: How four numbers describe a box: corners, or top-left corner and size.
BOX_FORMATS = ("xyxy", "xywh")
_LAYOUTS = {"xyxy": "[x0, y0, x1, y1]", "xywh": "[x, y, w, h]"}


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates, x0 < x1 and y0 < y1 (floats)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
                raise BoxError(f"box coordinate {name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not all(math.isfinite(v) for v in self.as_tuple()):
            raise BoxError(f"box {self.format()} has a coordinate that is not a finite number")
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise BoxError(f"box {self.format()} has zero or negative area (x1 must exceed x0 and y1 exceed y0)")

    # --------------------------------------------------------------- construction

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> "Box":
        for value in (x, y, w, h):
            if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
                raise BoxError(f"box values must be numbers, got {value!r}")
        if not w > 0 or not h > 0:
            raise BoxError(f"box x,y,w,h = {x:g},{y:g},{w:g},{h:g} has zero or negative width or height")
        return cls(x, y, x + w, y + h)

    @classmethod
    def from_values(cls, values: object, box_format: str = "xyxy") -> "Box":
        """Four numbers in ``box_format`` → Box: ``"xyxy"`` (corners x0, y0, x1, y1) or ``"xywh"``
        (top-left corner, width, height, as COCO and many annotation tools write boxes)."""
        if box_format not in BOX_FORMATS:
            raise BoxError(f"unknown box format {box_format!r}; use {' or '.join(BOX_FORMATS)}")
        if not isinstance(values, (list, tuple)) or len(values) != 4:
            raise BoxError(f"a box is a list of four numbers {_LAYOUTS[box_format]}, got {values!r}")
        if box_format == "xywh":
            return cls.from_xywh(*values)  # type: ignore[arg-type]
        return cls(*values)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, text: str, box_format: str = "xyxy") -> "Box":
        """``"x0,y0,x1,y1"`` (or ``"x,y,w,h"`` with ``box_format="xywh"``) → Box, with a clear error for anything else."""
        layout = _LAYOUTS.get(box_format, "")
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise BoxError(f"a box is four numbers {layout.strip('[]').replace(' ', '').upper()}, got {text!r}")
        return cls.from_values(values, box_format)

    @classmethod
    def from_sequence(cls, values: object, box_format: str = "xyxy") -> "Box":
        """A list or tuple ``[x0, y0, x1, y1]`` (as in JSON files) → Box."""
        return cls.from_values(values, box_format)

    # --------------------------------------------------------------- views

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def to_xywh(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def format(self) -> str:
        return "(" + ", ".join(f"{v:g}" for v in (self.x0, self.y0, self.x1, self.y1)) + ")"

    # --------------------------------------------------------------- geometry

    def clip(self, width: int, height: int) -> "Box":
        """The part inside a width×height image; :class:`BoxError` when nothing is left."""
        self.validate(width, height)
        return Box(max(self.x0, 0.0), max(self.y0, 0.0), min(self.x1, float(width)), min(self.y1, float(height)))

    def widened(self, shares: Sequence[float], image_size: tuple[int, int]) -> "Box":
        """Each side moved out by its share (left, top, right, bottom) of the box's width (left,
        right) or height (top, bottom), a negative share moving it in, then clipped to the
        ``image_size`` (H, W) image. The shares must leave the box some width and height."""
        left, top, right, bottom = shares
        height, width = image_size
        return Box(max(self.x0 - left * self.width, 0.0), max(self.y0 - top * self.height, 0.0),
                   min(self.x1 + right * self.width, float(width)), min(self.y1 + bottom * self.height, float(height)))

    def validate(self, width: int, height: int) -> None:
        """Raise :class:`BoxError` if the box lies wholly outside a width×height image."""
        if self.x1 <= 0 or self.y1 <= 0 or self.x0 >= width or self.y0 >= height:
            raise BoxError(f"box {self.format()} lies outside the {width}x{height} image")

    def scale(self, sx: float, sy: float) -> "Box":
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)

    def iou(self, other: "Box") -> float:
        w = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        h = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = w * h
        return inter / (self.area + other.area - inter)


def box_from_mask(mask: np.ndarray) -> Box | None:
    """Tight box of the nonzero pixels of an H×W mask, or None for an empty mask (boxes as people draw
    them, for training: :func:`loosened`)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an H×W mask, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def loosened(box: Box, share: float, image_size: tuple[int, int], rng: np.random.Generator) -> Box:
    """``box`` as a person might draw it: each side moved by a uniform draw from ``share`` / 4 of the
    box's width (left, right) or height (top, bottom) inwards to ``share`` of it outwards, then
    clipped to the ``image_size`` (H, W) image. Mostly looser: people draw around an object rather
    than cut into it (measured on validation: docs/results-history.md, boxes as people draw them)."""
    # Each side moves in by at most share / 4 of the box, so for share < 2 the box keeps some width.
    return box.widened(rng.uniform(-share / 4, share, 4).tolist(), image_size)


def render_box_map(box: Box | None, image_size: tuple[int, int], map_size: tuple[int, int] | None = None) -> np.ndarray:
    """Filled rectangle of ``box`` as a float32 map of 0/1.

    image_size: (H, W) of the image the box is given in; map_size: (h, w) of the map, default the
    image size. A map pixel is inside when its centre, in image coordinates, lies in [x0, x1)×[y0, y1).
    ``None`` (no object) gives an all-zero map.
    """
    height, width = image_size
    h, w = map_size if map_size is not None else image_size
    out = np.zeros((h, w), dtype=np.float32)
    if box is None:
        return out
    ys = (np.arange(h) + 0.5) * (height / h)
    xs = (np.arange(w) + 0.5) * (width / w)
    inside_y = (ys >= box.y0) & (ys < box.y1)
    inside_x = (xs >= box.x0) & (xs < box.x1)
    out[np.ix_(inside_y, inside_x)] = 1.0
    return out
