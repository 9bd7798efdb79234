"""RGMP/STM decoder: stride-16 features refined with the stride-8 and stride-4 skips into 2-class logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """Pre-activation residual block: x + conv(relu(conv(relu(x)))), channels kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Refine(nn.Module):
    """Merge a skip feature with the upsampled coarser decoder state (RGMP's refinement module).

    skip: B×Cs×h×w or 1×Cs×h×w, coarse: B×C×h/2×w/2 → B×C×h×w. A batch-1 skip (a query frame
    shared by B objects) goes through the skip path once and is broadcast over the objects.
    """

    def __init__(self, skip_channels: int, channels: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, channels, 3, padding=1)
        self.skip_block = ResidualBlock(channels)
        self.merge_block = ResidualBlock(channels)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        s = self.skip_block(self.skip_conv(skip))
        up = F.interpolate(coarse, size=s.shape[-2:], mode="bilinear", align_corners=False)
        return self.merge_block(s + up)


class Decoder(nn.Module):
    """Aggregated feature B×Cin×h×w (stride 16) + skips r3 (stride 8), r2 (stride 4), each of batch B or
    1 (shared) → logits B×2×16h×16w.

    3×3 conv Cin→C and a residual block; Refine with r3; Refine with r2; 3×3 conv to 2 classes
    (background, object); bilinear ×4 to the (padded) input size.
    """

    def __init__(self, in_channels: int, r3_channels: int, r2_channels: int, channels: int = 256) -> None:
        super().__init__()
        self.input_conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.input_block = ResidualBlock(channels)
        self.refine_r3 = Refine(r3_channels, channels)
        self.refine_r2 = Refine(r2_channels, channels)
        self.predict = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, r3: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        return self.decode(self.input_conv(x), r3, r2)

    def decode(self, m4: torch.Tensor, r3: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        """Everything after ``input_conv``: its output B×C×h×w (stride 16) and the skips → logits."""
        # Skips may come from a query frame shared by all objects (batch 1): Refine broadcasts them
        # after its skip path, which therefore runs once per frame rather than once per object.
        m4 = self.input_block(m4)
        m3 = self.refine_r3(r3, m4)
        m2 = self.refine_r2(r2, m3)
        logits = self.predict(F.relu(m2))
        return F.interpolate(logits, scale_factor=4.0, mode="bilinear", align_corners=False)
