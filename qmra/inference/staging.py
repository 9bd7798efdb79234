"""Frames to the device through page-locked buffers that a session reuses frame after frame."""

from __future__ import annotations

import numpy as np
import torch

#: Buffers taken in turn: a buffer is written again only after the frames of the others were sent.
BUFFERS = 2


class FrameStaging:
    """Sends H×W×3 uint8 frames to ``device`` (a 3-D uint8 tensor there).

    On CUDA each frame is copied into one of :data:`BUFFERS` page-locked buffers of the frame's
    size, allocated once, and from there to the device asynchronously; a buffer is reused once the
    copy out of it is done (an event per buffer; it always is by then, one frame later). Pinning a
    new buffer per frame instead asks PyTorch's page-locked allocator, which may wait for the
    device, and this runs while the device is busy with the frame before (the session's lookahead).
    Elsewhere the frame is wrapped as it is.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: list[tuple[torch.Tensor, torch.cuda.Event] | None] = [None] * BUFFERS
        self._turn = 0

    def to_device(self, frame: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(np.ascontiguousarray(frame))
        if self.device.type != "cuda":
            return pixels.to(self.device)
        turn, self._turn = self._turn, (self._turn + 1) % BUFFERS
        held = self._buffers[turn]
        if held is None or held[0].shape != pixels.shape:
            buffer = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
        else:
            buffer, sent = held
            sent.synchronize()
        buffer.copy_(pixels)
        on_device = buffer.to(self.device, non_blocking=True)
        sent = torch.cuda.Event()
        sent.record(torch.cuda.current_stream(self.device))
        self._buffers[turn] = (buffer, sent)
        return on_device
