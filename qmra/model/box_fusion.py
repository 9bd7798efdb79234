"""The box map joined to the query encoder's features: the memory encoder of a network whose
encoders are shared (``ModelConfig(memory_encoder="shared")``).

The paper's memory encoder is a trunk of its own that reads the box map as a fourth input channel,
so every memory frame and every stage-2 re-encoding costs a whole encoder pass, and the encoder has
to be trained to read the box. With a frozen ImageNet encoder that is the costly part of training:
the gradient must run back through the whole trunk to the box's stem filter. Here the frame goes
through the encoder once, as the query, and the box map joins its features at each scale:

- r4 (stride 16, the keys' and values' input): ``r4 + W₂·relu(W₁·[r4, e(box)])``, a residual 1×1
  block over the features and a small embedding of the box, so that the values can say *which*
  features lie inside the box, not only that a box is there;
- r3 and r2 (the decoders' skips): ``r + e(box)``.

Each last layer starts at zero, so before training the fused features are the encoder's own, as
the paper's zero-initialised box filter leaves the ImageNet network as it was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qmra.model.features import BackboneFeatures

#: Channels of the box embedding at each scale, and of the r4 block's hidden layer.
EMBEDDING_CHANNELS = 16
HIDDEN_CHANNELS = 128


class BoxEmbedding(nn.Module):
    """Box map B×1×H×W in [0, 1] → B×C×h×w: the fraction of each cell inside the box (area pooling
    to h×w), then 3×3 conv (it sees the box's edges) + ReLU + 1×1 conv to ``channels``."""

    def __init__(self, channels: int, zero_init: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, EMBEDDING_CHANNELS, 3, padding=1)
        self.project = nn.Conv2d(EMBEDDING_CHANNELS, channels, 1)
        if zero_init:
            nn.init.zeros_(self.project.weight)
            nn.init.zeros_(self.project.bias)

    def forward(self, box_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        cells = F.adaptive_avg_pool2d(box_map, size)
        return self.project(F.relu(self.conv(cells)))


class BoxFusion(nn.Module):
    """Query-encoder features of a frame + B box maps → B objects' memory-encoder features.

    ``channels``: the encoder's (r2, r3, r4) channels. See the module docstring.
    """

    def __init__(self, channels: tuple[int, int, int]) -> None:
        super().__init__()
        r2_channels, r3_channels, r4_channels = channels
        self.r2 = BoxEmbedding(r2_channels)
        self.r3 = BoxEmbedding(r3_channels)
        self.r4_box = BoxEmbedding(EMBEDDING_CHANNELS, zero_init=False)
        self.r4_hidden = nn.Conv2d(r4_channels + EMBEDDING_CHANNELS, HIDDEN_CHANNELS, 1)
        self.r4_out = nn.Conv2d(HIDDEN_CHANNELS, r4_channels, 1)
        nn.init.zeros_(self.r4_out.weight)
        nn.init.zeros_(self.r4_out.bias)

    def forward(self, features: BackboneFeatures, box_maps: torch.Tensor) -> BackboneFeatures:
        """features: one frame's (batch 1, shared by every object) or B frames'; box_maps: B×1×H'×W'
        at the padded input size → B×C×h×w at each scale."""
        batch = box_maps.shape[0]
        if features.r4.shape[0] not in (1, batch):
            raise ValueError(f"features of {features.r4.shape[0]} frames cannot take {batch} box maps")
        box_maps = box_maps.to(features.r4.dtype)
        r4 = features.r4.expand(batch, -1, -1, -1)
        box = F.relu(self.r4_box(box_maps, r4.shape[-2:]))
        r4 = r4 + self.r4_out(F.relu(self.r4_hidden(torch.cat([r4, box], dim=1))))
        r3 = features.r3 + self.r3(box_maps, features.r3.shape[-2:])
        r2 = features.r2 + self.r2(box_maps, features.r2.shape[-2:])
        return BackboneFeatures(r4=r4, r3=r3, r2=r2)
