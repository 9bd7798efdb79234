"""Several objects' probabilities → one label map (STM's soft aggregation, the paper's softmax)."""

from __future__ import annotations

import torch

EPSILON = 1e-7


def soft_aggregate(probabilities: torch.Tensor) -> torch.Tensor:
    """N×H×W object probabilities → (N+1)×H×W probabilities of {background, object 1..N}.

    background = Π(1 − p_i); all clamped to [1e-7, 1 − 1e-7]; logit = log(p / (1 − p)); softmax over
    the N + 1 classes. With no object, everything is background.
    """
    if probabilities.dim() != 3:
        raise ValueError(f"expected N×H×W probabilities, got shape {tuple(probabilities.shape)}")
    background = torch.prod(1 - probabilities, dim=0, keepdim=True)
    stacked = torch.cat([background, probabilities], dim=0).clamp(EPSILON, 1 - EPSILON)
    return torch.softmax(torch.log(stacked / (1 - stacked)), dim=0)
