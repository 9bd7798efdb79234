"""Query-Memory Aggregation (paper, Fig. 3): Memory Read + Bidirectional Channel Aggregation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class KeyValueMaps(NamedTuple):
    """Keys and values of one frame: ``key`` B×Ck×h×w, ``value`` B×Cv×h×w.

    ``key`` is None for the ``no-qma`` variant, which reads no memory.
    """

    key: torch.Tensor | None
    value: torch.Tensor

    def tokens(self) -> "MemoryTokens":
        """The same keys and values as tokens, B×h·w×C (row-major positions)."""

        def flat(maps: torch.Tensor) -> torch.Tensor:
            return maps.flatten(2).transpose(1, 2)

        return MemoryTokens(None if self.key is None else flat(self.key), flat(self.value))


class MemoryTokens(NamedTuple):
    """Keys and values of T memory frames as tokens: ``key`` B×N×Ck, ``value`` B×N×Cv, where the
    N = T·h·w positions run frame by frame, each frame's h·w row-major.

    This is the layout the Memory Read consumes, so inference stores memory frames in it once (in
    preallocated buffers) instead of stacking and permuting them on every frame.

    ``empty`` marks positions that hold no frame yet: None (every position is a frame) or a 1×1×N
    (or B×1×N) float tensor, 0 where a frame is stored and -inf where not, added to the Memory
    Read's scores. With it a memory of fixed shape (all its slots, filled or not) reads exactly like
    the memory of its filled slots, so one compiled graph serves every frame of a video.
    """

    key: torch.Tensor | None
    value: torch.Tensor
    empty: torch.Tensor | None = None

    @staticmethod
    def concat(parts: "list[MemoryTokens]", dim: int = 1) -> "MemoryTokens":
        """Join memories along the positions (``dim=1``: more frames) or the batch (``dim=0``: more objects)."""
        if not parts:
            raise ValueError("memory needs at least one frame")
        key = None if parts[0].key is None else torch.cat([p.key for p in parts], dim=dim)  # type: ignore[misc]
        empty = None
        if any(p.empty is not None for p in parts):
            masks = [(torch.zeros_like(p.value[:1, :, :1]).transpose(1, 2) if p.empty is None else p.empty)
                     .expand(p.value.shape[0], -1, -1) for p in parts]
            empty = torch.cat(masks, dim=0 if dim == 0 else 2)
        return MemoryTokens(key, torch.cat([p.value for p in parts], dim=dim), empty)

    @staticmethod
    def from_frames(frames: "list[KeyValueMaps]") -> "MemoryTokens":
        """T single-frame maps (B×C×h×w) → one memory (B×T·h·w×C)."""
        return MemoryTokens.concat([frame.tokens() for frame in frames])

    @staticmethod
    def from_maps(key: torch.Tensor | None, value: torch.Tensor) -> "MemoryTokens":
        """Maps stacked by frame, B×T×C×h×w → tokens B×T·h·w×C."""

        def flat(maps: torch.Tensor) -> torch.Tensor:
            return maps.permute(0, 1, 3, 4, 2).reshape(maps.shape[0], -1, maps.shape[2])

        return MemoryTokens(None if key is None else flat(key), flat(value))


class KeyValueProjection(nn.Module):
    """Two parallel convolutions: features B×Cin×h×w → key B×Ck×h×w and value B×Cv×h×w."""

    def __init__(self, in_channels: int, key_channels: int | None, value_channels: int, kernel_size: int) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.key = None if key_channels is None else nn.Conv2d(in_channels, key_channels, kernel_size, padding=padding)
        self.value = nn.Conv2d(in_channels, value_channels, kernel_size, padding=padding)

    def forward(self, features: torch.Tensor) -> KeyValueMaps:
        return KeyValueMaps(None if self.key is None else self.key(features), self.value(features))


#: The Memory Read splits its queries so that one attention block holds at most this many scores
#: (64 MiB in fp32): memory stays bounded at any frame size and memory length, and the result is
#: unchanged (each query position's softmax is its own).
ATTENTION_BLOCK = 1 << 24
#: How the Memory Read is computed: ``"sdpa"`` (PyTorch's fused scaled_dot_product_attention),
#: ``"matmul"`` (similarity, softmax, weighted sum, in blocks of query positions) or ``"auto"``
#: (matmul on CPU, where it measured faster with this project's shapes; sdpa elsewhere).
ATTENTION_KERNELS = ("auto", "sdpa", "matmul")


@dataclass(frozen=True)
class ReadMode:
    """How the Memory Read runs: ``kernel`` (:data:`ATTENTION_KERNELS`; changes how, not what, it
    computes) and ``top_k``: None for the paper's softmax over all memory positions, or K for a
    softmax over each query position's K best-matching memory positions only (STCN/XMem's top-k
    filter; a different result, chosen on validation for the shipped weights)."""

    kernel: str = "auto"
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.kernel not in ATTENTION_KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(ATTENTION_KERNELS)}, got {self.kernel!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be None or an integer >= 1, got {self.top_k!r}")


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """``"auto"`` → the kernel it means on ``device`` (matmul on CPU, sdpa elsewhere); others as given."""
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(ATTENTION_KERNELS)}, got {kernel!r}")
    if kernel == "auto":
        return "matmul" if device.type == "cpu" else "sdpa"
    return kernel


def memory_read(query_key: torch.Tensor, memory_key: torch.Tensor, memory_value: torch.Tensor,
                kernel: str = "auto", empty: torch.Tensor | None = None, top_k: int | None = None) -> torch.Tensor:
    """STM's Memory Read (paper, Eq. 6): softmax over all N = T·h'·w' memory positions of ``Kq·Km / √Ck``.

    query_key: B×Ck×h×w; memory_key: B×N×Ck; memory_value: B×N×Cv (:class:`MemoryTokens`) →
    B×Cv×h×w. A batch-1 query is broadcast over a memory batch of B objects. The sum over memory
    positions makes the result independent of the order of memory frames. ``empty``: 1×1×N or
    B×1×N, 0 at stored positions and -inf at empty ones (:attr:`MemoryTokens.empty`), which then
    get no weight. ``top_k``: each query position's softmax runs over its ``top_k`` highest scores
    only (the others get no weight); this needs every score, so it always takes the matmul path.
    """
    kernel = resolve_kernel(kernel, query_key.device)
    batch, positions, key_channels = memory_key.shape
    _, _, h, w = query_key.shape
    value_channels = memory_value.shape[2]
    scale = 1.0 / math.sqrt(key_channels)
    q = query_key.flatten(2).transpose(1, 2).expand(batch, -1, -1)  # B×hw×Ck
    if empty is not None:
        empty = empty.to(q.dtype)
    filtered = top_k is not None and top_k < positions  # else the top k are all positions: the paper's read
    fused = kernel == "sdpa" and not filtered
    if filtered:
        heads, read = 1, _top_k_read(memory_key, memory_value, empty, scale, top_k)  # type: ignore[arg-type]
    elif fused:
        heads = sdpa_heads(query_key.device, key_channels, value_channels)
        read = _fused_read(memory_key, memory_value, empty, scale, heads)
    else:
        heads, read = 1, _matmul_read(memory_key, memory_value, empty, scale)
    block = query_block(fused, query_key.device, batch * heads * positions, key_channels)
    if block is None or h * w <= block:
        out = read(q)
    else:
        out = torch.cat([read(q[:, i : i + block]) for i in range(0, h * w, block)], dim=1)
    return out.transpose(1, 2).reshape(batch, value_channels, h, w)


def query_block(fused: bool, device: torch.device, scores_per_query: int, key_channels: int) -> int | None:
    """How many query positions one attention call takes (None: all of them).

    Blocks bound the working memory wherever all B×L×N scores may be materialised at once: the
    matmul kernel, and SDPA off CUDA (its math path). On CUDA the fused kernels (memory-efficient
    attention takes any Ck that is a multiple of 8) tile internally; blocks there would only cut
    their parallelism.
    """
    if fused and device.type == "cuda" and key_channels % 8 == 0:
        return None
    return max(1, ATTENTION_BLOCK // max(1, scores_per_query))


def sdpa_heads(device: torch.device, key_channels: int, value_channels: int) -> int:
    """How many Ck-wide heads SDPA reads the Cv value channels in.

    On CUDA Cv/Ck (where it divides): flash attention takes only values as wide as keys. Elsewhere 1:
    on this project's CPU the 4 heads cost 3.5× the single 4-D call (each recomputes the scores).
    """
    if device.type == "cuda" and value_channels % key_channels == 0:
        return value_channels // key_channels
    return 1


def _matmul_read(memory_key: torch.Tensor, memory_value: torch.Tensor, empty: torch.Tensor | None,
                 scale: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """B×L×Ck queries → B×L×Cv: similarity, softmax and weighted sum as three plain ops.

    One object at a time: on a 2-core CPU with 3 objects, 16 memory frames at 384 px, the 2-D
    products took 0.8× the time of the batched ones, with the same result (and a third of the scores
    held at once).
    """
    keys_t = memory_key.transpose(1, 2)

    def read_object(queries: torch.Tensor, index: int) -> torch.Tensor:
        scores = (queries * scale) @ keys_t[index]
        if empty is not None:
            scores = scores + empty[index if empty.shape[0] > 1 else 0]
        return torch.softmax(scores, dim=-1) @ memory_value[index]

    def read(queries: torch.Tensor) -> torch.Tensor:
        return torch.stack([read_object(queries[b], b) for b in range(queries.shape[0])])

    return read


def _top_k_read(memory_key: torch.Tensor, memory_value: torch.Tensor, empty: torch.Tensor | None,
                scale: float, top_k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """B×L×Ck queries → B×L×Cv: like :func:`_matmul_read`, with each row's softmax over its ``top_k``
    highest scores.

    The weighted sum reads only those K values (``embedding_bag``: per query position, the sum of K
    memory values times their weights) rather than an L×N product of mostly zeros: with 16 memory
    frames at 384 px that is 2.6× less time for the read on a CPU.
    """
    keys_t = memory_key.transpose(1, 2)

    def read(queries: torch.Tensor) -> torch.Tensor:
        scores = torch.bmm(queries * scale, keys_t)
        if empty is not None:
            scores = scores + empty
        best, index = scores.topk(top_k, dim=-1)
        # Under autocast the softmax may come out in another precision than the stored values; the
        # sum takes the values' own.
        weights = torch.softmax(best, dim=-1).to(memory_value.dtype)
        # One object at a time: each object's values are a contiguous view of its memory buffer,
        # where the B×N×Cv whole may not be, so nothing is copied.
        return torch.stack([
            F.embedding_bag(index[b], memory_value[b], per_sample_weights=weights[b], mode="sum")
            for b in range(index.shape[0])])

    return read


def _fused_read(memory_key: torch.Tensor, memory_value: torch.Tensor, empty: torch.Tensor | None,
                scale: float, heads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """B×L×Ck queries → B×L×Cv through ``scaled_dot_product_attention`` in a shape its fused kernels take.

    They need 4-D inputs (a 3-D call always takes the math path, all scores at once) and, for flash
    attention, values as wide as keys: with ``heads`` > 1 the Cv channels are read as ``heads``
    slices that share the query and the keys. Each head's softmax is the same, so the result is the
    single-head read's.
    """
    batch, positions, key_channels = memory_key.shape
    keys = memory_key.unsqueeze(1).expand(batch, heads, positions, key_channels)
    values = memory_value.unflatten(2, (heads, -1)).transpose(1, 2)  # B×heads×N×Cv/heads
    mask = None if empty is None else empty.unsqueeze(1)  # B×1×1×N or 1×1×1×N

    def read(queries: torch.Tensor) -> torch.Tensor:
        length = queries.shape[1]
        q = queries.unsqueeze(1).expand(batch, heads, length, key_channels)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)  # B×heads×L×Cv/heads
        return out.transpose(1, 2).reshape(batch, length, -1)

    return read


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

    def keeps_features(self, read: ReadMode, device: torch.device) -> bool:
        """Whether memory frames read with ``read`` on ``device`` keep this stage's features (Cin
        channels) in place of their values (Cv), which are then made from the read-out features.

        Where the value projection is a 1×1 convolution onto more channels than it takes, projecting
        after the read gives the same result (each query position's weights over the memory sum to 1,
        so the bias passes through) from a weighted sum over fewer channels: on the matmul kernel
        (the CPU's) that sum is most of the read's time. The fused kernels keep the values, whose
        width flash attention splits into heads as wide as the keys.
        """
        values = self.memory_projection.value
        return (self.use_memory_read and values.kernel_size == (1, 1) and values.in_channels < values.out_channels
                and resolve_kernel(read.kernel, device) == "matmul")

    def project_memory(self, features: torch.Tensor, read: ReadMode = ReadMode()) -> KeyValueMaps:
        """Memory-encoder features of one frame B×Cin×h×w → its memory key and value (B×Cv×h×w), or
        the features themselves in place of the value where :meth:`keeps_features` says so."""
        if self.keeps_features(read, features.device):
            assert self.memory_projection.key is not None
            return KeyValueMaps(self.memory_projection.key(features), features)
        return self.memory_projection(features)

    def forward(self, query_features: torch.Tensor, memory: MemoryTokens, read: ReadMode = ReadMode()) -> torch.Tensor:
        """query_features: B×Cin×h×w (B = 1 is broadcast over the memory batch); memory: B×T·h·w×C
        tokens of frames of the query's size, C = Cv, or Cin where they were projected with
        :meth:`keeps_features`; read: the kernel and top-k of :func:`memory_read`.

        Returns the aggregated feature Fa, B×2Cv×h×w.
        """
        query = self.query_projection(query_features)
        batch = memory.value.shape[0]
        query_value = query.value.expand(batch, -1, -1, -1)
        if not self.use_memory_read:
            h, w = query_value.shape[-2:]
            frames = memory.value.unflatten(1, (-1, h * w))
            if memory.empty is None:
                averaged = frames.mean(dim=1)  # B×hw×Cv, averaged over the T frames
            else:  # over the stored frames only
                stored = (memory.empty == 0).to(frames.dtype).reshape(-1, frames.shape[1], h * w, 1)
                averaged = (frames * stored).sum(dim=1) / stored.sum(dim=1)
            return torch.cat([query_value, averaged.transpose(1, 2).reshape(batch, -1, h, w)], dim=1)
        read_value = memory_read(query.key, memory.key, memory.value, read.kernel, memory.empty,  # type: ignore[arg-type]
                                 read.top_k)
        values = self.memory_projection.value
        if memory.value.shape[-1] != values.out_channels:  # the memory keeps features (keeps_features)
            read_value = values(read_value)
        if self.bca is None:
            return torch.cat([query_value, read_value], dim=1)
        return self.bca(query_value, read_value)
