"""Per-object memory: the paper's schedule (first + every N-th + previous frame) under a size cap,
stored as Memory Read tokens in preallocated buffers.

A :class:`MemorySchedule` decides which frames are held and in which *slot* each one lies; a
:class:`MemoryBank` holds the keys and values of the objects that share one schedule (the objects
that started on the same frame) in buffers of B×slots·h·w×C. A frame's keys and values are written
once, into their slot, when the frame is predicted; reading the memory is a view of the filled
slots, with nothing stacked, permuted or copied per frame. Where both stages keep the encoder's
features in place of values (:meth:`qmra.model.QueryMemoryAggregation.keeps_features`), one buffer
holds them for both.

A *static* bank allocates all its slots at once and reads as all of them, with the empty ones
masked out of the Memory Read (:attr:`qmra.model.MemoryTokens.empty`): its tensors keep one shape
and one address for the whole video, which is what a compiled graph (and a CUDA graph) needs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from qmra.model import KeyValueMaps, Memory, MemoryFrame, MemoryTokens

#: Slots a bank starts with (at most the cap); it doubles when full, up to the cap.
INITIAL_SLOTS = 4


def frames_to_full_memory(mem_every: int, capacity: int) -> int:
    """How many frames an object started on the first one needs before its memory holds all it
    ever will: ``capacity`` frames (first, ``capacity - 2`` extras, previous), or first + previous
    without extra frames."""
    if mem_every <= 0:
        return 2
    return mem_every * (capacity - 2) + 2


class MemorySchedule:
    """Which frames an object's memory holds, and the slot of each.

    The object's first frame always stays (slot 0); every ``mem_every``-th frame since the first
    joins as an extra frame; the last frame that joined is the previous frame. A predicted frame
    joins when it is on the ``mem_every`` or the ``previous_every`` grid (:meth:`takes`; with
    ``previous_every`` 1, every frame). Beyond ``capacity`` frames the oldest extra goes. A frame's
    slot is reused when the frame leaves, so the held frames always occupy slots 0..n-1.
    """

    def __init__(self, first_frame: int, mem_every: int, capacity: int, previous_every: int = 1) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 (first + previous frame), got {capacity}")
        if previous_every < 1:
            raise ValueError(f"previous_every must be >= 1, got {previous_every}")
        self.first_frame = first_frame
        self.mem_every = mem_every
        self.previous_every = previous_every
        self.capacity = capacity
        self.extras: OrderedDict[int, None] = OrderedDict()
        self.previous: int | None = None
        self.slots: dict[int, int] = {first_frame: 0}

    def takes(self, frame: int) -> bool:
        """Whether a just-predicted ``frame`` joins the memory (as the previous frame, and maybe an extra)."""
        since = frame - self.first_frame
        return since % self.previous_every == 0 or (self.mem_every > 0 and since % self.mem_every == 0)

    def add(self, frame: int) -> int:
        """A just-predicted frame joins as the previous frame (and an extra one on the schedule);
        returns the slot its keys and values go to."""
        if frame <= self.first_frame or (self.previous is not None and frame <= self.previous):
            raise ValueError(f"frame {frame} is not after the frames already in memory")
        if self.mem_every > 0 and (frame - self.first_frame) % self.mem_every == 0:
            self.extras[frame] = None
        self.previous = frame
        while len(self._held()) > self.capacity and self.extras:
            self.extras.popitem(last=False)
        held = set(self._held())
        freed = sorted(slot for held_frame, slot in self.slots.items() if held_frame not in held)
        # One frame joins per call, so at most one leaves (the old previous frame or the oldest extra).
        assert len(freed) <= 1, f"memory schedule freed {len(freed)} slots at once"
        self.slots = {f: slot for f, slot in self.slots.items() if f in held}
        slot = freed[0] if freed else len(self.slots)
        self.slots[frame] = slot
        return slot

    def _held(self) -> list[int]:
        frames = [self.first_frame, *self.extras]
        if self.previous is not None and self.previous not in self.extras:
            frames.append(self.previous)
        return frames

    @property
    def frame_indices(self) -> list[int]:
        """The video frames held, in time order."""
        return self._held()

    @property
    def num_frames(self) -> int:
        return len(self.slots)


class MemoryBank:
    """Memory of B objects that share a :class:`MemorySchedule`, in token buffers B×slots·h·w×C.

    Created from the batched entry (B×C×h×w keys and values) of the objects' first frame. The
    buffers start with :data:`INITIAL_SLOTS` slots and double when full, up to the cap, so a long
    video allocates ``capacity`` slots once and nothing more. ``static``: all ``capacity`` slots
    from the start, zero-filled, and :meth:`memory` gives all of them with the empty ones masked.
    """

    def __init__(self, object_ids: list[int], first_frame: int, entry: MemoryFrame, mem_every: int, capacity: int,
                 static: bool = False, previous_every: int = 1) -> None:
        if entry.track.value.shape[0] != len(object_ids):
            raise ValueError(f"{len(object_ids)} objects but a memory entry of batch {entry.track.value.shape[0]}")
        self.object_ids = list(object_ids)
        self.schedule = MemorySchedule(first_frame, mem_every, capacity, previous_every)
        height, width = entry.track.value.shape[-2:]
        self.frame_tokens = height * width
        self.static = static
        slots = capacity if static else min(capacity, INITIAL_SLOTS)
        self._buffers: dict[str, torch.Tensor] = {}
        for name, tokens in _named_tokens(entry):
            # Zeros, not garbage: an empty slot gets no weight, but 0 × NaN would still be NaN.
            make = tokens.new_zeros if static else tokens.new_empty
            self._buffers[name] = make(tokens.shape[0], slots * self.frame_tokens, tokens.shape[2])
        value = entry.track.value  # the memory's dtype (bf16 under autocast): no cast per read
        self._empty = (torch.full((1, 1, slots * self.frame_tokens), float("-inf"), dtype=value.dtype, device=value.device)
                       if static else None)
        self._slots = slots
        if static:
            self._mark_static()
        self._write(0, _named_tokens(entry))

    @property
    def num_frames(self) -> int:
        return self.schedule.num_frames

    @property
    def shares_values(self) -> bool:
        """Whether both stages read one buffer of values (its entries' :func:`shares_values`)."""
        return "segment.key" in self._buffers and "segment.value" not in self._buffers

    @property
    def frame_indices(self) -> list[int]:
        return self.schedule.frame_indices

    def add(self, frame: int, entry: MemoryFrame) -> None:
        """Store the batched entry (B×C×h×w, the bank's objects in order) of a just-predicted frame, if
        the schedule :meth:`~MemorySchedule.takes` it."""
        if not self.schedule.takes(frame):
            return
        named = _named_tokens(entry)
        if [name for name, _ in named] != list(self._buffers):
            raise ValueError(f"a memory entry of {', '.join(name for name, _ in named)} cannot join a bank of "
                             f"{', '.join(self._buffers)}")
        slot = self.schedule.add(frame)
        if slot >= self._slots:
            self._grow(min(self.schedule.capacity, max(2 * self._slots, slot + 1)))
        self._write(slot, named)

    def memory(self) -> Memory:
        """The held frames as a :class:`Memory` (views of the filled slots, no copy; a static bank:
        all slots, the empty ones masked)."""
        used = self.num_frames * self.frame_tokens

        def tokens(stage: str) -> MemoryTokens | None:
            # Both stages read one buffer of features where the entries shared them.
            value = self._buffers.get("track.value" if stage == "segment" and self.shares_values else f"{stage}.value")
            if value is None:
                return None
            key = self._buffers.get(f"{stage}.key")
            if self.static:
                return MemoryTokens(key, value, self._empty)
            return MemoryTokens(None if key is None else key[:, :used], value[:, :used])

        track = tokens("track")
        assert track is not None
        return Memory(track, tokens("segment"), self.frame_tokens)

    def remove(self, object_id: int) -> None:
        """Forget one object's memory (its row of every buffer)."""
        row = self.object_ids.index(object_id)
        keep = [i for i in range(len(self.object_ids)) if i != row]
        self.object_ids.pop(row)
        index = torch.tensor(keep, dtype=torch.long, device=next(iter(self._buffers.values())).device)
        self._buffers = {name: buffer.index_select(0, index) for name, buffer in self._buffers.items()}
        if self.static:
            self._mark_static()

    def nbytes(self) -> int:
        """Bytes the buffers hold (allocated slots, filled or not)."""
        return sum(buffer.numel() * buffer.element_size() for buffer in self._tensors())

    def _tensors(self) -> list[torch.Tensor]:
        """Every tensor the bank holds: the token buffers and, when static, the empty-slot mask."""
        return [*self._buffers.values(), *([] if self._empty is None else [self._empty])]

    def _mark_static(self) -> None:
        # Compiled graphs then read these buffers where they lie instead of copying them in per call
        # (the whole memory, every frame, under CUDA graphs).
        for buffer in self._tensors():
            torch._dynamo.mark_static_address(buffer)

    def _write(self, slot: int, named: list[tuple[str, torch.Tensor]]) -> None:
        """Store an entry's tokens (:func:`_named_tokens`) in a slot."""
        span = slice(slot * self.frame_tokens, (slot + 1) * self.frame_tokens)
        for name, tokens in named:
            self._buffers[name][:, span] = tokens
        if self._empty is not None:
            self._empty[..., span] = 0

    def _grow(self, slots: int) -> None:
        filled = self._slots * self.frame_tokens
        for name, buffer in self._buffers.items():
            grown = buffer.new_empty(buffer.shape[0], slots * self.frame_tokens, buffer.shape[2])
            grown[:, :filled] = buffer
            self._buffers[name] = grown
        self._slots = slots


def shares_values(entry: MemoryFrame) -> bool:
    """Whether both stages' values of an entry are one tensor: the memory encoder's features, kept in
    place of values (:meth:`qmra.model.QueryMemoryAggregation.keeps_features`) for both stages."""
    if entry.segment is None:
        return False
    track, segment = entry.track.value, entry.segment.value
    # The same elements: one tensor, or the same view of it (an entry's rows for some objects).
    return (track.data_ptr() == segment.data_ptr() and track.shape == segment.shape
            and track.stride() == segment.stride() and track.dtype == segment.dtype)


def _named_tokens(entry: MemoryFrame) -> list[tuple[str, torch.Tensor]]:
    """An entry's keys and values as tokens (B×h·w×C, views) by buffer name: ``track.key``,
    ``track.value``, ``segment.key``, ``segment.value`` (those the variant has; no
    ``segment.value`` where it is ``track.value``'s tensor, :func:`shares_values`)."""
    named = []
    shared = shares_values(entry)
    for stage, maps in (("track", entry.track), ("segment", entry.segment)):
        if maps is not None:
            tokens = maps.tokens()
            if tokens.key is not None:
                named.append((f"{stage}.key", tokens.key))
            if not (stage == "segment" and shared):
                named.append((f"{stage}.value", tokens.value))
    return named


def object_rows(entry: MemoryFrame, rows: slice) -> MemoryFrame:
    """Some objects' part of a batched memory entry (views)."""

    def part(maps: KeyValueMaps) -> KeyValueMaps:
        return KeyValueMaps(None if maps.key is None else maps.key[rows], maps.value[rows])

    return MemoryFrame(part(entry.track), None if entry.segment is None else part(entry.segment))
