"""Per-object memory: the paper's schedule (first + every N-th + previous frame) under a size cap."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch

from qmra.model import KeyValueMaps, Memory, MemoryFrame


class ObjectMemory:
    """The memory frames of one object: keys and values (batch 1) of each stored frame.

    Each entry is computed once, when its frame is predicted, and never recomputed.
    """

    def __init__(self, first_frame: int, entry: MemoryFrame, mem_every: int, capacity: int) -> None:
        self.first_frame = first_frame
        self.first = entry
        self.mem_every = mem_every
        self.capacity = capacity
        self.extras: OrderedDict[int, MemoryFrame] = OrderedDict()
        self.previous: tuple[int, MemoryFrame] | None = None

    def add(self, frame: int, entry: MemoryFrame) -> None:
        """Store the entry of a just-predicted frame: it becomes the previous frame, and an extra
        frame when it falls on the schedule; drop the oldest extras beyond the cap."""
        if frame <= self.first_frame:
            raise ValueError(f"frame {frame} is not after the object's first frame {self.first_frame}")
        if self.mem_every > 0 and (frame - self.first_frame) % self.mem_every == 0:
            self.extras[frame] = entry
        self.previous = (frame, entry)
        while self.num_frames > self.capacity and self.extras:
            self.extras.popitem(last=False)

    @property
    def frame_indices(self) -> list[int]:
        """Which video frames are in memory, in the order :meth:`entries` gives them."""
        indices = [self.first_frame, *self.extras]
        if self.previous is not None and self.previous[0] not in self.extras:
            indices.append(self.previous[0])
        return indices

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    def entries(self) -> list[MemoryFrame]:
        entries = [self.first, *self.extras.values()]
        if self.previous is not None and self.previous[0] not in self.extras:
            entries.append(self.previous[1])
        return entries

    def nbytes(self) -> int:
        total = 0
        for entry in self.entries():
            for maps in (entry.track, entry.segment):
                if maps is not None:
                    total += sum(t.numel() * t.element_size() for t in maps if t is not None)
        return total


def stack_memories(memories: Sequence[ObjectMemory]) -> Memory:
    """B objects with the same number T of memory frames → one batched Memory (B×T×C×h×w)."""
    per_object = [Memory.stack(m.entries()) for m in memories]
    if len(per_object) == 1:
        return per_object[0]

    def cat(parts: list[KeyValueMaps]) -> KeyValueMaps:
        key = None if parts[0].key is None else torch.cat([p.key for p in parts])  # type: ignore[misc]
        return KeyValueMaps(key, torch.cat([p.value for p in parts]))

    segment = None if per_object[0].segment is None else cat([m.segment for m in per_object])  # type: ignore[misc]
    return Memory(cat([m.track for m in per_object]), segment)


def select(entry: MemoryFrame, index: int) -> MemoryFrame:
    """Object ``index`` of a batched entry, copied so that it does not keep the whole batch alive."""

    def one(maps: KeyValueMaps) -> KeyValueMaps:
        key = None if maps.key is None else maps.key[index : index + 1].clone()
        return KeyValueMaps(key, maps.value[index : index + 1].clone())

    return MemoryFrame(one(entry.track), None if entry.segment is None else one(entry.segment))
