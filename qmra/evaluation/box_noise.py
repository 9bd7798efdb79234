"""Boxes as people draw them, for measuring what they cost: the box protocol's tight box widened (or
narrowed) by a margin, and each side moved at random; or the mask protocol, each object's first mask
given with its box.

The box protocol gives each object the tight box of its first mask; nobody draws that box. A box
drawn by hand is usually a little loose, and its sides are off by a few percent each way. ``qmra eval
--box-margin 0.05 --box-jitter 0.05`` runs the protocol with such boxes, the same ones on every run
(each object's draw depends only on the seed, the sequence and the object).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from qmra.data.boxes import Box
from qmra.errors import ConfigError
from qmra.options import option

_GROUP = "prompts given (the box protocol's tight box by default)"


@dataclass(frozen=True)
class BoxNoise:
    """How the protocol's tight boxes are changed before they are given.

    ``box_margin``: each side moves out by this share of the box's width (left, right) or height
    (top, bottom); negative moves it in. ``box_jitter``: each side then moves by a uniform draw in
    ±``box_jitter`` of the same length, from a generator seeded by ``box_seed`` and the object's key.
    The result is clipped to the frame.
    """

    box_margin: float = field(default=0.0, metadata=option(
        "give each object its tight box with every side moved out by this share of the box's width or height "
        "(0.1: 10 %% a side, as a loose hand-drawn box; negative: in)", metavar="SHARE", group=_GROUP))
    box_jitter: float = field(default=0.0, metadata=option(
        "then move each side by a random amount up to this share of the box's width or height, in or out, "
        "the same draw on every run", metavar="SHARE", group=_GROUP))
    box_seed: int = field(default=0, metadata=option("the seed of --box-jitter's draws", metavar="SEED", group=_GROUP))
    #: The mask protocol (semi-supervised video object segmentation's): each object's first mask as
    #: well as its box, as ``qmra segment --masks`` gives them.
    first_masks: bool = field(default=False, metadata=option(
        "give each object its first mask as well as its box (the mask protocol of semi-supervised video object "
        "segmentation, as qmra segment --masks does): that frame's result is the mask, and adaptation with mask "
        "losses (--adapt-mask-weight) learns it",
        group=_GROUP))

    def __post_init__(self) -> None:
        if not (math.isfinite(self.box_margin) and math.isfinite(self.box_jitter)):
            raise ConfigError("box_margin and box_jitter must be finite numbers")
        if self.box_jitter < 0:
            raise ConfigError(f"box_jitter must be at least 0, got {self.box_jitter:g}")
        if 1 + 2 * self.box_margin - 2 * self.box_jitter <= 0:
            # The narrowest box the draws can make must keep some width: each side may move in by
            # jitter - margin of the side.
            raise ConfigError(f"box_margin {self.box_margin:g} with --box-jitter {self.box_jitter:g} can leave a box "
                              "no width: keep 2 x (jitter - margin) under 1")

    @property
    def tight(self) -> bool:
        """Whether boxes are given as they are (the box protocol)."""
        return self.box_margin == 0 and self.box_jitter == 0

    def apply(self, box: Box, frame_size: tuple[int, int], key: str) -> Box:
        """``box`` (pixels, xyxy) on a frame of ``frame_size`` (H, W) as drawn; ``key`` names the
        object (``"sequence/object id"``) so that each gets its own, repeatable draw."""
        if self.tight:
            return box
        shares = np.full(4, float(self.box_margin))
        if self.box_jitter:
            generator = np.random.default_rng([self.box_seed, zlib.crc32(key.encode())])
            # Each draw moves a side towards +x or +y: out on the right and bottom, in on the left and top.
            shares += generator.uniform(-self.box_jitter, self.box_jitter, 4) * np.array([-1, -1, 1, 1])
        # The box keeps some width and height (__post_init__); clipping to the frame cannot undo that,
        # since the tight box lies inside it.
        return box.widened(shares.tolist(), frame_size)

    @property
    def protocol(self) -> str:
        """'box' or 'mask' (:attr:`first_masks`)."""
        return "mask" if self.first_masks else "box"

    def describe(self) -> str:
        """'tight boxes', or what was done to them: 'tight boxes widened by 10 % a side, sides moved by up
        to 5 % (seed 0)'; with the first masks, 'first masks and tight boxes'."""
        masks = "first masks and " if self.first_masks else ""
        if self.tight:
            return masks + "tight boxes"
        parts = []
        if self.box_margin:
            parts.append(f"{'widened' if self.box_margin > 0 else 'narrowed'} by {abs(self.box_margin) * 100:g} % a side")
        if self.box_jitter:
            parts.append(f"sides moved by up to {self.box_jitter * 100:g} % (seed {self.box_seed})")
        return masks + "tight boxes " + ", ".join(parts)

    def record(self) -> dict:
        """What a results folder records of these prompts (``{}`` for tight boxes alone)."""
        record = {} if self.tight else {"box_margin": self.box_margin, "box_jitter": self.box_jitter,
                                        "box_seed": self.box_seed}
        return {**record, "first_masks": True} if self.first_masks else record
