"""Several videos' frames through the query encoder as one batch (``qmra batch --videos-per-worker``).

Sessions that run in threads of one process, on one network, each encode one frame at a time. On a
GPU one frame leaves the device mostly idle: the host's work between two network calls (reading
and resizing the frame, the memory's bookkeeping, writing the results) takes as long as the calls.
A :class:`QueryBatcher` shared by those sessions gathers their requests for a query encoding and
runs the encoder once on all that share a network and a working size: the first request waits up to
``window`` seconds for the other running sessions, then encodes what has come (never longer, so a
session busy elsewhere delays no one by more than that). The rest of each frame's work (the memory
read, the decoders, the object's own encodings) stays with its session.

On a GPU, cuDNN measures its convolution algorithms anew for every input shape it meets, which
costs about as much as many frames; so there batches are padded up to a power of two (repeating
their last frame), and a worker meets a handful of batch sizes instead of one per count of waiting
sessions.

Only the query encoding is shared: it is the same for every object of a frame and the one encoder
pass of a ``--memory-encoder shared`` network, so it is the largest single call. Results equal the
frame's own encoding up to the floating-point rounding of a larger batch. Sessions adapted to their
video (``--adapt`` > 0) each run their own copy of the network and share nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

from qmra.model import BackboneFeatures

#: Seconds the first request of a batch waits for the other running sessions' frames.
DEFAULT_WINDOW = 0.02


@dataclass(eq=False)  # compared by identity: the queue holds each request once
class _Request:
    runtime: object
    prepared: torch.Tensor
    done: threading.Event = field(default_factory=threading.Event)
    features: object = None
    error: BaseException | None = None

    @property
    def group(self) -> tuple:
        """Requests batched together: the same network, input shape, dtype, layout and device."""
        prepared = self.prepared
        return (_network_key(self.runtime), tuple(prepared.shape), prepared.dtype, prepared.device,
                prepared.is_contiguous(memory_format=torch.channels_last))


class QueryBatcher:
    """Query encodings of frames from sessions in several threads, made as one batch per network and
    input size. :meth:`joined` marks a thread's session as running (the batch waits for it)."""

    def __init__(self, window: float = DEFAULT_WINDOW, pad: bool | None = None) -> None:
        """``pad``: batches padded to a power of two (None: on CUDA devices, where cuDNN measures
        its algorithms once per input shape; elsewhere the padding would be work for nothing)."""
        self.window = window
        self.pad = pad
        self._lock = threading.Condition()
        self._pending: list[_Request] = []
        self._members = 0
        #: How many frames each batch held: {batch size: batches}.
        self.batch_sizes: Counter[int] = Counter()

    @contextmanager
    def joined(self) -> Iterator[None]:
        """``with batcher.joined(): ...``: a session in this thread runs, and batches wait for it."""
        self._member(+1)
        try:
            yield
        finally:
            self._member(-1)

    def encode(self, runtime, prepared: torch.Tensor):
        """``runtime.encode_query(prepared)`` (prepared: 1×3×H'×W'), made in a batch with the other
        sessions' frames where they match; the features (or tuple of them, for an ensemble) are
        this frame's alone (batch dimension 1)."""
        request = _Request(runtime, prepared)
        with self._lock:
            self._pending.append(request)
            self._lock.notify_all()
            deadline = time.monotonic() + self.window
            while not request.done.is_set() and request in self._pending:
                mates = [r for r in self._pending if r.group == request.group]
                if len(self._pending) >= max(1, self._members) or time.monotonic() >= deadline:
                    for mate in mates:
                        self._pending.remove(mate)
                    break
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))
            else:
                mates = []
        if mates:  # this thread leads the batch: the encoder runs outside the lock
            self._run(runtime, mates)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.features

    def _run(self, runtime, batch: list[_Request]) -> None:
        try:
            parts = [r.prepared for r in batch]
            pad = self.pad if self.pad is not None else parts[0].device.type == "cuda"
            if pad:
                parts += parts[-1:] * (_power_of_two(len(parts)) - len(parts))
            # torch.cat keeps the inputs' layout (channels-last when the network was set for it).
            inputs = parts[0] if len(parts) == 1 else torch.cat(parts)
            features = runtime.encode_query(inputs)
            compiled = getattr(runtime, "compile", "off") != "off"
            for position, request in enumerate(batch):
                request.features = _item(features, position, copy=len(batch) > 1 and compiled)
        except BaseException as error:  # every waiting session sees the failure, not only the leader
            for request in batch:
                request.error = error
        finally:
            with self._lock:
                self.batch_sizes[len(batch)] += 1
            for request in batch:
                request.done.set()

    def _member(self, change: int) -> None:
        with self._lock:
            self._members += change
            self._lock.notify_all()


def _power_of_two(count: int) -> int:
    """The smallest power of two that is at least ``count`` (>= 1)."""
    return 1 << max(0, count - 1).bit_length()


def _network_key(runtime) -> tuple:
    """What makes two sessions' runtimes encode alike: the same network object(s) (each session wraps
    the segmenter's network in a runtime of its own; an adapted copy is another network), precision
    and compilation."""
    members = getattr(runtime, "members", None)
    if members is not None:  # an ensemble: its copies, in order
        return tuple(_network_key(member) for member in members)
    return (id(runtime.model), getattr(runtime, "bf16", False), getattr(runtime, "compile", "off"))


def _item(features, position: int, copy: bool):
    """Batch item ``position`` of ``features`` (BackboneFeatures, or a tuple of them), 1×C×h×w each;
    ``copy``: its own storage (a compiled graph's outputs are overwritten by its next call)."""
    if isinstance(features, BackboneFeatures):
        return BackboneFeatures(*(_slice(t, position, copy) for t in features))
    return tuple(_item(f, position, copy) for f in features)


def _slice(tensor: torch.Tensor, position: int, copy: bool) -> torch.Tensor:
    part = tensor[position:position + 1]
    return part.clone(memory_format=torch.preserve_format) if copy else part
