"""Turning a stage-1 prediction into the stage-2 query prior Mq."""

from __future__ import annotations

import torch


def rectangle_prior(probability: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Filled rectangle of the tight box around pixels with ``probability > threshold``.

    probability: B×1×H×W object probabilities → B×1×H×W float map of 0s and 1s. A frame without any
    pixel over the threshold gets an all-zero map (the object is lost there).
    """
    foreground = probability > threshold
    height, width = foreground.shape[-2:]
    rows = foreground.any(dim=-1)  # B×1×H
    cols = foreground.any(dim=-2)  # B×1×W
    return (_span(rows, height)[..., :, None] & _span(cols, width)[..., None, :]).to(probability.dtype)


def _span(present: torch.Tensor, length: int) -> torch.Tensor:
    """...×L booleans → ...×L, True from the first to the last True (all False when none is)."""
    index = torch.arange(length, device=present.device)
    first = torch.where(present, index, length).amin(dim=-1, keepdim=True)
    last = torch.where(present, index, -1).amax(dim=-1, keepdim=True)
    return (index >= first) & (index <= last)


def mask_prior(probability: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """B×1×H×W probabilities → binary mask (the ``2stage-noalign`` variant's query prior)."""
    return (probability > threshold).to(probability.dtype)
