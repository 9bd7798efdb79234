"""Cascaded Refinement Module (paper, Fig. 4) with a CoordConv layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qmra.model.decoder import Decoder


def coordinate_channels(batch: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """CoordConv's two channels, B×2×h×w: row index i and column index j, each scaled linearly to [-1, 1].

    A side of length 1 has the single value 0.
    """

    def scaled(n: int) -> torch.Tensor:
        index = torch.arange(n, device=device, dtype=dtype)
        return index * (2.0 / (n - 1)) - 1.0 if n > 1 else torch.zeros(1, device=device, dtype=dtype)

    rows = scaled(height).view(height, 1).expand(height, width)
    cols = scaled(width).view(1, width).expand(height, width)
    return torch.stack([rows, cols]).unsqueeze(0).expand(batch, 2, height, width)


class CascadedRefinementModule(nn.Module):
    """Combine both stages' aggregated features and raw predictions into the refined mask Sr.

    F1a ‖ F2a (B×2Ca×h×w) → [‖ i, j coordinate channels] → 1×1 conv → Ca; ‖ Bq, Sq (object
    probabilities, area-pooled to h×w) → 1×1 conv → Ca; → decoder (with the stage-2 skips) → logits.
    """

    def __init__(self, aggregated_channels: int, r3_channels: int, r2_channels: int, decoder_channels: int, coordinates: bool) -> None:
        super().__init__()
        self.coordinates = coordinates
        extra = 2 if coordinates else 0
        self.feature_fusion = nn.Conv2d(2 * aggregated_channels + extra, aggregated_channels, 1)
        self.prediction_fusion = nn.Conv2d(aggregated_channels + 2, aggregated_channels, 1)
        self.decoder = Decoder(aggregated_channels, r3_channels, r2_channels, decoder_channels)

    def forward(
        self,
        track_aggregated: torch.Tensor,
        segment_aggregated: torch.Tensor,
        track_probability: torch.Tensor,
        mask_probability: torch.Tensor,
        r3: torch.Tensor,
        r2: torch.Tensor,
    ) -> torch.Tensor:
        """Aggregated features B×Ca×h×w; probabilities B×1×16h×16w; skips at strides 8 and 4.

        Returns refined logits B×2×16h×16w.
        """
        batch, _, h, w = segment_aggregated.shape
        parts = [track_aggregated, segment_aggregated]
        if self.coordinates:
            parts.append(coordinate_channels(batch, h, w, segment_aggregated.device, segment_aggregated.dtype))
        fused = self.feature_fusion(torch.cat(parts, dim=1))
        predictions = F.adaptive_avg_pool2d(torch.cat([track_probability, mask_probability], dim=1), (h, w))
        fused = self.prediction_fusion(torch.cat([fused, predictions], dim=1))
        return self.decoder(fused, r3, r2)
