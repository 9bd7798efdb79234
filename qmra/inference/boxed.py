"""An object's probability on the frame where the user boxed it: the box is the user's word for
where the object is, so the mask keeps to it and is never empty there."""

from __future__ import annotations

import torch

#: Below this fraction of its box, the object's confident pixels (p > 0.5) are too few to be its mask.
MIN_BOX_FILL = 0.05


def hold_to_box(probability: torch.Tensor, box_maps: torch.Tensor) -> torch.Tensor:
    """B×H×W object probabilities and B×H×W box maps (1 inside the user's box) → B×H×W.

    Outside its box an object's probability is 0. Where the network is confident on less than
    :data:`MIN_BOX_FILL` of the box (a small object, a small frame, an unfamiliar look), the
    probability inside the box is divided by its peak there, so that the pixels the network finds
    at least half as likely as its best one make the mask. Computed on the device, without a wait.
    """
    inside = probability * box_maps
    box_area = box_maps.flatten(1).sum(1)
    confident = (inside > 0.5).flatten(1).sum(1)
    peak = inside.flatten(1).amax(1).clamp(min=1e-6)
    weak = (confident < MIN_BOX_FILL * box_area).to(inside.dtype)
    scale = 1 + weak * (1 / peak - 1)
    return (inside * scale[:, None, None]).clamp(max=1.0)
