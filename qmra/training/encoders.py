"""How the encoders learn when they start from ImageNet: which of their parameters stay fixed, and
at what fraction of the learning rate the rest move."""

from __future__ import annotations

from typing import Any

from torch import nn

from qmra.model import QMRA
from qmra.model.efficientnet import EfficientNetLiteTrunk

#: ``--frozen-backbone`` choices: nothing; the stem and the stride-2..8 stages (low-level filters);
#: every ImageNet parameter (only the box map's stem filter and the new layers learn).
FROZEN_PARTS = ("none", "early", "all")


def _box_filter(trunk: nn.Module) -> str | None:
    """The name of the parameter through which the box map enters (it never starts from ImageNet);
    None for an RGB-only trunk (the query encoder)."""
    if getattr(trunk, "in_channels", 3) == 3:
        return None
    return "box_conv.weight" if isinstance(trunk, EfficientNetLiteTrunk) else "conv1.weight"


def _is_early(trunk: nn.Module, name: str) -> bool:
    if isinstance(trunk, EfficientNetLiteTrunk):
        if name.startswith(("_conv_stem.", "_bn0.")):
            return True
        if name.startswith("_blocks."):
            return int(name.split(".")[1]) <= trunk.stage_ends[2]
        return False
    return name.startswith(("bn1.", "layer1.", "layer2."))


def freeze_encoders(model: QMRA, part: str) -> int:
    """Fix ``part`` (:data:`FROZEN_PARTS`) of every encoder; returns how many parameters were fixed.

    The box map's stem filter always learns (the memory encoder has to learn to read the box), and a
    ResNet's conv1, which holds it beside the RGB filters, learns whole.
    """
    if part not in FROZEN_PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {', '.join(FROZEN_PARTS)}")
    fixed = 0
    if part == "none":
        return fixed
    for trunk in model.encoders().values():
        box = _box_filter(trunk)
        for name, parameter in trunk.named_parameters():
            if name != box and (part == "all" or _is_early(trunk, name)):
                parameter.requires_grad_(False)
                fixed += parameter.numel()
    return fixed


def parameter_groups(model: QMRA, encoder_lr_scale: float) -> list[dict[str, Any]]:
    """The optimizer's groups: the encoders' trainable parameters at ``encoder_lr_scale`` × the
    learning rate (``lr_scale`` in the group, read by the trainer at each step), the rest at 1 ×.
    The box map's stem filter is new, so it learns with the new layers."""
    encoder_ids: set[int] = set()
    encoders: list[nn.Parameter] = []
    for trunk in model.encoders().values():
        box = _box_filter(trunk)
        for name, parameter in trunk.named_parameters():
            if name != box:
                encoder_ids.add(id(parameter))
                if parameter.requires_grad:
                    encoders.append(parameter)
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids]
    groups = [{"params": others, "lr_scale": 1.0}]
    if encoders:
        groups.append({"params": encoders, "lr_scale": encoder_lr_scale})
    return groups
