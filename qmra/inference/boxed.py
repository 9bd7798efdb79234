"""An object's probability on the frame where the user boxed it: the box is the user's word for
where the object is, so the mask keeps to it and is never empty there. (A mask given with the box
replaces the labels there, not this probability: :func:`qmra.inference.merge.merge_frame`.)"""

from __future__ import annotations

import numpy as np
import torch

from qmra.data.boxes import render_box_map
from qmra.inference.ensemble import Runtime
from qmra.inference.features import FrameInputs
from qmra.inference.prompts import Prompt
from qmra.model import MemoryFrame, QMRAOutput

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


def box_maps(prompts: list[Prompt], frame_size: tuple[int, int], inputs: FrameInputs) -> torch.Tensor:
    """The prompts' filled boxes, B×1×h×w at the working size (1 inside), on the inputs' device."""
    size = (inputs.padding.height, inputs.padding.width)
    maps = np.stack([render_box_map(p.box, frame_size, size) for p in prompts])
    return torch.from_numpy(maps)[:, None].to(inputs.prepared.device)


def first_frame(runtime: Runtime, prompts: list[Prompt], inputs: FrameInputs, query_features,
                frame_size: tuple[int, int]) -> tuple[torch.Tensor, MemoryFrame, QMRAOutput]:
    """Objects starting on a frame (H×W ``frame_size``): their box maps (:func:`box_maps`), their
    first memory entry, and the network's prediction of that frame given their boxes.
    ``query_features``: the frame's encoding on ``runtime`` (None: encoded here)."""
    maps = box_maps(prompts, frame_size, inputs)
    entry, output = runtime.start(inputs.prepared, inputs.padding, maps, query_features)
    return maps, entry, output


def boxed_frame(runtime: Runtime, prompts: list[Prompt], inputs: FrameInputs, query_features,
                frame_size: tuple[int, int]) -> tuple[MemoryFrame, torch.Tensor]:
    """:func:`first_frame`'s memory entry and the objects' B×h×w probabilities on the frame they
    were boxed on, held to their boxes (:func:`hold_to_box`)."""
    maps, entry, output = first_frame(runtime, prompts, inputs, query_features, frame_size)
    return entry, hold_to_box(output.probability()[:, 0], maps[:, 0].to(output.logits.dtype))
