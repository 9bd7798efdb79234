"""Turning a stage-1 prediction into the stage-2 query prior Mq."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: What stage 2's box surrounds: every pixel of stage 1's p > threshold (the paper), or only its
#: largest blob (:func:`largest_blob`).
STAGE2_BOXES = ("all", "largest-blob")


def rectangle_prior(probability: torch.Tensor, threshold: float = 0.5, box: str = "all") -> torch.Tensor:
    """Filled rectangle of the tight box around pixels with ``probability > threshold`` (``box``
    "all", the paper), or around the largest blob of them (``box`` "largest-blob").

    probability: B×1×H×W object probabilities → B×1×H×W float map of 0s and 1s. A frame without any
    pixel over the threshold gets an all-zero map (the object is lost there).
    """
    if box not in STAGE2_BOXES:
        raise ValueError(f"box must be one of {', '.join(STAGE2_BOXES)}, got {box!r}")
    foreground = probability > threshold
    if box == "largest-blob":
        foreground = largest_blob(foreground, probability)
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


#: The blob grid's cells are at least 4 pixels (stage 1's own resolution) and at most GRID_CELLS
#: along the map's long side: at 320 px (569 wide) cells stay 4 pixels; on a native 1080p frame
#: they are 12, so finding blobs costs about the same at any size (a 4-pixel grid there took up
#: to ~0.4 s per frame on a 2-core CPU, when stage 1 fired in many small blobs).
GRID_CELLS = 160


def blob_cell(height: int, width: int) -> int:
    """The side, pixels, of :func:`largest_blob`'s grid cells for an H×W map."""
    return max(4, -(-max(height, width) // GRID_CELLS))


def largest_blob(foreground: torch.Tensor, probability: torch.Tensor, cell: int | None = None) -> torch.Tensor:
    """B×1×H×W booleans → the same with only the blob of each map whose ``probability`` (B×1×H×W)
    sums highest kept (ties keep every tied blob).

    When stage 1 also fires on a look-alike away from the object, the tight box around all its
    pixels spans both and stage 2 segments whatever lies between; the blob with the most probability
    mass is the object far more often than not. Blobs are 4-connected on a grid of ``cell``-pixel
    cells (default :func:`blob_cell`; stage 1's decoder predicts at a quarter of the size and
    upsamples), so parts closer than about a cell count as one blob. Computed on the tensors'
    device: each cell's label starts as its own index and takes its 4 neighbours' largest label
    until nothing changes; pointer jumping (``label ← label[label]``) lets labels cross a blob in
    fewer rounds.
    """
    batch, _, height, width = foreground.shape
    if batch == 0 or height * width == 0:
        return foreground
    cell = cell or blob_cell(height, width)
    weights = probability.float() * foreground
    # Sums over cells (avg-pooling times the cell's area; padding cells count as empty).
    pad = (0, -width % cell, 0, -height % cell)
    mass_cells = F.avg_pool2d(F.pad(weights, pad), cell)[:, 0] * cell**2
    inside = F.max_pool2d(F.pad(foreground.float(), pad), cell)[:, 0] > 0
    rows, cols = inside.shape[-2:]
    index = torch.arange(1, rows * cols + 1, device=foreground.device, dtype=torch.float32).view(1, rows, cols)
    labels = torch.where(inside, index, 0.0)
    while True:
        before = labels
        for _ in range(4):  # one check (a wait for the device) per 4 rounds; extra rounds change nothing
            grown = torch.maximum(F.max_pool2d(labels[:, None], (1, 3), 1, (0, 1)),
                                  F.max_pool2d(labels[:, None], (3, 1), 1, (1, 0)))[:, 0]
            grown = torch.where(inside, grown, 0.0).flatten(1)
            # A label names a cell of the same blob whose own label is at least as large.
            labels = torch.where(inside, grown.gather(1, (grown.long() - 1).clamp(min=0)).view_as(labels), 0.0)
        if torch.equal(labels, before):
            break
    flat = labels.flatten(1).long()  # 0: background, else 1 + the index of the blob's last cell
    mass = torch.zeros(batch, rows * cols + 1, device=foreground.device, dtype=torch.float32)
    mass.scatter_add_(1, flat, mass_cells.flatten(1))
    mass[:, 0] = -1.0  # the background is never the blob
    chosen = (mass.gather(1, flat) >= mass.amax(dim=1, keepdim=True)).view(batch, 1, rows, cols)
    kept = chosen.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)[..., :height, :width]
    return kept & foreground
