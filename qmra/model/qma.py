"""Query-Memory Aggregation (paper, Fig. 3): Memory Read + Bidirectional Channel Aggregation."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class KeyValueMaps(NamedTuple):
    """Keys and values of one or several frames.

    One frame: ``key`` B×Ck×h×w, ``value`` B×Cv×h×w. Stacked memory: B×T×Ck×h×w and B×T×Cv×h×w.
    ``key`` is None for the ``no-qma`` variant, which reads no memory.
    """

    key: torch.Tensor | None
    value: torch.Tensor

    @staticmethod
    def stack(frames: "list[KeyValueMaps]") -> "KeyValueMaps":
        """T single-frame maps (B×C×h×w) → one memory (B×T×C×h×w)."""
        if not frames:
            raise ValueError("memory needs at least one frame")
        key = None if frames[0].key is None else torch.stack([f.key for f in frames], dim=1)  # type: ignore[misc]
        return KeyValueMaps(key, torch.stack([f.value for f in frames], dim=1))


class KeyValueProjection(nn.Module):
    """Two parallel convolutions: features B×Cin×h×w → key B×Ck×h×w and value B×Cv×h×w."""

    def __init__(self, in_channels: int, key_channels: int | None, value_channels: int, kernel_size: int) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.key = None if key_channels is None else nn.Conv2d(in_channels, key_channels, kernel_size, padding=padding)
        self.value = nn.Conv2d(in_channels, value_channels, kernel_size, padding=padding)

    def forward(self, features: torch.Tensor) -> KeyValueMaps:
        return KeyValueMaps(None if self.key is None else self.key(features), self.value(features))


def memory_read(query_key: torch.Tensor, memory_key: torch.Tensor, memory_value: torch.Tensor) -> torch.Tensor:
    """STM's Memory Read (paper, Eq. 6): softmax over all T·h·w memory positions of ``Kq·Km / √Ck``.

    query_key: B×Ck×h×w; memory_key: B×T×Ck×h'×w'; memory_value: B×T×Cv×h'×w' → B×Cv×h×w.
    A batch-1 query is broadcast over a memory batch of B objects.
    """
    batch = memory_key.shape[0]
    _, _, h, w = query_key.shape
    key_channels = query_key.shape[1]
    value_channels = memory_value.shape[2]
    # Tokens: query B×hw×Ck, memory B×(T·h'·w')×C. The sum over memory positions makes the result
    # independent of the order of memory frames.
    q = query_key.flatten(2).transpose(1, 2).expand(batch, -1, -1)
    k = memory_key.permute(0, 1, 3, 4, 2).reshape(batch, -1, key_channels)
    v = memory_value.permute(0, 1, 3, 4, 2).reshape(batch, -1, value_channels)
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(key_channels))
    return out.transpose(1, 2).reshape(batch, value_channels, h, w)


class BidirectionalChannelAggregation(nn.Module):
    """BCA (paper, Eqs. 7-9): channel weights predicted jointly from query and read-out values.

    GAP(Vq) ‖ GAP(Vm_a) (2·Cv) → FC → ReLU → FC (bottleneck) → sigmoid → split into ωq, ωm (Cv each);
    output ``ωq·Vq ‖ ωm·Vm_a`` (B×2Cv×h×w).
    """

    def __init__(self, value_channels: int, reduction: int) -> None:
        super().__init__()
        joint = 2 * value_channels
        hidden = max(1, joint // reduction)
        self.fc1 = nn.Linear(joint, hidden)
        self.fc2 = nn.Linear(hidden, joint)

    def channel_weights(self, query_value: torch.Tensor, read_value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×Cv×h×w twice → ωq, ωm, each B×Cv with values in (0, 1)."""
        pooled = torch.cat([query_value.mean(dim=(2, 3)), read_value.mean(dim=(2, 3))], dim=1)
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return weights.chunk(2, dim=1)

    def forward(self, query_value: torch.Tensor, read_value: torch.Tensor) -> torch.Tensor:
        w_query, w_memory = self.channel_weights(query_value, read_value)
        return torch.cat([query_value * w_query[:, :, None, None], read_value * w_memory[:, :, None, None]], dim=1)


class QueryMemoryAggregation(nn.Module):
    """One stage's aggregation: its own memory and query key/value projections, read and BCA.

    ``use_memory_read=False`` is the paper's ``w/o QMA``: no read, no BCA; the query value and the
    memory values (averaged over the T frames, so that any number of frames fits) are concatenated.
    ``use_bca=False`` is ``w/o BCA``: ``Vq ‖ Vm_a`` as in STM.
    """

    def __init__(
        self,
        in_channels: int,
        key_channels: int,
        value_channels: int,
        kernel_size: int,
        use_memory_read: bool = True,
        use_bca: bool = True,
        bca_reduction: int = 16,
    ) -> None:
        super().__init__()
        keys = key_channels if use_memory_read else None
        self.memory_projection = KeyValueProjection(in_channels, keys, value_channels, kernel_size)
        self.query_projection = KeyValueProjection(in_channels, keys, value_channels, kernel_size)
        self.bca = BidirectionalChannelAggregation(value_channels, bca_reduction) if use_memory_read and use_bca else None
        self.use_memory_read = use_memory_read
        self.out_channels = 2 * value_channels

    def project_memory(self, features: torch.Tensor) -> KeyValueMaps:
        """Memory-encoder features of one frame B×Cin×h×w → its memory key and value."""
        return self.memory_projection(features)

    def forward(self, query_features: torch.Tensor, memory: KeyValueMaps) -> torch.Tensor:
        """query_features: B×Cin×h×w (B = 1 is broadcast over the memory batch); memory: B×T×C×h×w.

        Returns the aggregated feature Fa, B×2Cv×h×w.
        """
        query = self.query_projection(query_features)
        batch = memory.value.shape[0]
        query_value = query.value.expand(batch, -1, -1, -1)
        if not self.use_memory_read:
            return torch.cat([query_value, memory.value.mean(dim=1)], dim=1)
        read = memory_read(query.key, memory.key, memory.value)  # type: ignore[arg-type]
        if self.bca is None:
            return torch.cat([query_value, read], dim=1)
        return self.bca(query_value, read)
