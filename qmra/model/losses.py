"""The paper's loss (Eq. 10): cross-entropy + 0.1 × dice for each of Bq, Sq and Sr."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qmra.model.network import QMRAOutput

#: Added to the dice numerator and denominator so that an empty prediction of an empty target costs 0.
DICE_SMOOTHING = 1.0


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float = DICE_SMOOTHING) -> torch.Tensor:
    """1 − (2·Σ p·g + s) / (Σ p + Σ g + s) per sample, averaged over the batch.

    logits: B×2×H×W (background, object); target: B×1×H×W or B×H×W of 0/1; p = softmax object channel.
    """
    probability = torch.softmax(logits.float(), dim=1)[:, 1]
    target = _as_binary(target, logits).float()
    intersection = (probability * target).flatten(1).sum(1)
    total = probability.flatten(1).sum(1) + target.flatten(1).sum(1)
    return (1.0 - (2.0 * intersection + smoothing) / (total + smoothing)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.1) -> torch.Tensor:
    """Pixel-averaged 2-class cross-entropy + ``dice_weight`` × :func:`dice_loss`."""
    labels = _as_binary(target, logits).long()
    return F.cross_entropy(logits.float(), labels) + dice_weight * dice_loss(logits, labels)


def _as_binary(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    if target.dim() == 4:
        target = target[:, 0]
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    return target > 0.5


@dataclass(frozen=True)
class LossParts:
    """The total and its parts (None where the variant has no such prediction)."""

    total: torch.Tensor
    track: torch.Tensor | None
    mask: torch.Tensor
    refined: torch.Tensor | None

    def detached(self) -> dict[str, torch.Tensor]:
        """The parts there are by name (``loss``, ``track``, ``mask``, ``refined``), detached, where they lie."""
        parts = {"loss": self.total, "track": self.track, "mask": self.mask, "refined": self.refined}
        return {k: v.detach() for k, v in parts.items() if v is not None}


class QMRALoss:
    """L = l(Bq, box map) + l(Sq, mask) + l(Sr, mask), l = CE + ``dice_weight`` × dice.

    The stage-1 target follows ``output.track_target``: the true box map, or the mask for
    ``2stage-noalign``. Terms for predictions a variant does not make are left out.
    """

    def __init__(self, dice_weight: float = 0.1) -> None:
        self.dice_weight = dice_weight

    def __call__(self, output: QMRAOutput, mask: torch.Tensor, box_map: torch.Tensor) -> LossParts:
        """mask, box_map: B×1×H×W (or B×H×W) of 0/1 at the size of the logits."""
        track = None
        if output.track_logits is not None:
            target = box_map if output.track_target == "box" else mask
            track = segmentation_loss(output.track_logits, target, self.dice_weight)
        mask_term = segmentation_loss(output.mask_logits, mask, self.dice_weight)
        refined = None if output.refined_logits is None else segmentation_loss(output.refined_logits, mask, self.dice_weight)
        total = mask_term + sum(t for t in (track, refined) if t is not None)
        return LossParts(total=total, track=track, mask=mask_term, refined=refined)
