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


def label_map(probabilities: torch.Tensor, object_ids: list[int]) -> torch.Tensor:
    """(N+1)×H×W merged probabilities (background first) → H×W uint8 ids of the most probable class.

    The same as ``argmax`` over the classes (ties go to the earlier class), but a running maximum
    over the few classes: a reduction across the leading dimension of a large map is ~50× slower
    on CPU.
    """
    if probabilities.shape[0] != len(object_ids) + 1:
        raise ValueError(f"{probabilities.shape[0]} maps for {len(object_ids)} objects (expected background + one each)")
    best = probabilities[0]
    labels = torch.zeros(probabilities.shape[1:], dtype=torch.uint8, device=probabilities.device)
    for slot, object_id in enumerate(object_ids, start=1):
        better = probabilities[slot] > best
        labels.masked_fill_(better, object_id)
        best = torch.maximum(best, probabilities[slot])
    return labels
