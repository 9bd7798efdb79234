"""Cascaded Refinement Module (paper, Fig. 4) with a CoordConv layer."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class FoldedCRMInput:
    """The CRM's feature fusion (1×1), prediction fusion (1×1) and its decoder's first 3×3
    convolution composed into one 3×3 convolution over ``F1a ‖ F2a ‖ Bq, Sq`` (pooled), with the
    biases and the CoordConv channels (constant for a frame size) turned into a bias map.

    The three are linear with nothing between them, so this is exact up to float rounding, and it
    does about a third of their work. Made by :meth:`CascadedRefinementModule.fold` from the
    current weights: whoever holds it (an inference session, for one video) makes it again if the
    weights change.

    - ``weights``: the kernels on F1a, on F2a (C×Ca×3×3 each) and on Bq, Sq (C×2×3×3), applied
      one by one and summed: the same as one kernel on their concatenation, without copying the
      B×(2·Ca + 2)×h×w concatenation each frame (on a 2-core CPU that copy cost 11 ms an object);
      ``bias``: C;
    - ``constant_weight``: C×(1 + coordinate channels)×3×3, applied to a map of ones (and the
      coordinate channels), zero-padded like the features, so the borders stay exact.
    """

    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    bias: torch.Tensor
    constant_weight: torch.Tensor
    coordinates: bool

    def bias_map(self, height: int, width: int) -> torch.Tensor:
        """1×C×h×w: what the constant inputs (biases, coordinates) add at each position."""
        device, dtype = self.bias.device, self.bias.dtype
        constant = [torch.ones(1, 1, height, width, device=device, dtype=dtype)]
        if self.coordinates:
            constant.append(coordinate_channels(1, height, width, device, dtype))
        return F.conv2d(torch.cat(constant, dim=1), self.constant_weight, self.bias, padding=1)


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
        folded: FoldedCRMInput | None = None,
    ) -> torch.Tensor:
        """Aggregated features B×Ca×h×w; probabilities B×1×16h×16w; skips at strides 8 and 4;
        ``folded``: this module's :meth:`fold` (same result, less work), or None.

        Returns refined logits B×2×16h×16w.
        """
        batch, _, h, w = segment_aggregated.shape
        predictions = F.adaptive_avg_pool2d(torch.cat([track_probability, mask_probability], dim=1), (h, w))
        if folded is not None:
            dtype = segment_aggregated.dtype
            first = folded.bias_map(h, w).to(dtype)
            for part, weight in zip((track_aggregated, segment_aggregated, predictions.to(dtype)), folded.weights):
                first = first + F.conv2d(part, weight.to(dtype), padding=1)
            return self.decoder.decode(first, r3, r2)
        parts = [track_aggregated, segment_aggregated]
        if self.coordinates:
            parts.append(coordinate_channels(batch, h, w, segment_aggregated.device, segment_aggregated.dtype))
        fused = self.feature_fusion(torch.cat(parts, dim=1))
        fused = self.prediction_fusion(torch.cat([fused, predictions], dim=1))
        return self.decoder(fused, r3, r2)

    @torch.no_grad()
    def fold(self) -> FoldedCRMInput:
        """Compose feature fusion, prediction fusion and the decoder's ``input_conv`` (see
        :class:`FoldedCRMInput`) from the current weights, in float64, cast back to their dtype."""
        dtype = self.decoder.input_conv.weight.dtype
        w1 = self.feature_fusion.weight.double().flatten(1)  # Ca×(2Ca + coords)
        b1 = self.feature_fusion.bias.double()
        w2 = self.prediction_fusion.weight.double().flatten(1)  # Ca×(Ca + 2)
        b2 = self.prediction_fusion.bias.double()
        kernel = self.decoder.input_conv.weight.double()  # C×Ca×3×3
        aggregated = w2.shape[0]
        features = w2[:, :aggregated] @ w1  # both fusions on F1a ‖ F2a (‖ coordinates)
        predictions = w2[:, aggregated:]  # prediction fusion on Bq, Sq
        shift = w2[:, :aggregated] @ b1 + b2
        on_features = torch.einsum("cikl,ij->cjkl", kernel, features)
        on_predictions = torch.einsum("cikl,ij->cjkl", kernel, predictions)
        constant = [torch.einsum("cikl,i->ckl", kernel, shift)[:, None]]
        if self.coordinates:
            constant.append(on_features[:, 2 * aggregated:])
        kernels = (on_features[:, :aggregated], on_features[:, aggregated : 2 * aggregated], on_predictions)
        # The composed kernels keep the layout of the one they replace (channels-last models).
        memory_format = torch.contiguous_format if self.decoder.input_conv.weight.is_contiguous() else torch.channels_last
        weights = tuple(kernel.to(dtype).contiguous(memory_format=memory_format) for kernel in kernels)
        return FoldedCRMInput(weights, self.decoder.input_conv.bias.to(dtype),  # type: ignore[arg-type]
                              torch.cat(constant, dim=1).to(dtype), self.coordinates)
