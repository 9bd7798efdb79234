"""How the network runs for one video: the execution choices, fixed once per session."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from qmra.inference.settings import InferenceSettings
from qmra.model import QMRA, BackboneFeatures, Memory, MemoryFrame, QMRAOutput
from qmra.model.crm import FoldedCRMInput
from qmra.model.preprocess import Padding


@dataclass(frozen=True)
class ModelRuntime:
    """A network with the choices that change how, not what, it computes: the Memory Read's kernel,
    the CRM's folded convolutions (made from the weights once), bf16 autocast and NHWC inputs.

    The session builds one when propagation starts (and again after test-time adaptation changes the
    weights) and calls the network through it, so no call site repeats these choices.
    """

    model: QMRA
    device: torch.device
    attention: str = "auto"
    folded_crm: FoldedCRMInput | None = None
    bf16: bool = False
    channels_last: bool = False

    @classmethod
    def create(cls, model: QMRA, device: torch.device, settings: InferenceSettings) -> "ModelRuntime":
        folded = None
        if settings.fold_crm and model.crm is not None:
            with torch.inference_mode():
                folded = model.crm.fold()
        return cls(model, device, settings.attention, folded, settings.precision == "bf16", settings.channels_last)

    @contextmanager
    def running(self) -> Iterator[None]:
        """No gradients, and bf16 autocast where asked for."""
        with ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16))
            yield

    def network_input(self, frame: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, Padding, torch.Tensor]:
        """H×W×3 uint8 frame → the prepared 1×3×h'×w' input at the working ``size`` (h, w), its
        padding, and the 1×3×h×w RGB image in [0, 1]."""
        with record_function("qmra/io"):
            image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
            image = image.permute(2, 0, 1)[None].float().div_(255)
            if size != tuple(frame.shape[:2]):
                image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
            prepared, padding = self.model.prepare(image)
            if self.channels_last:
                prepared = prepared.contiguous(memory_format=torch.channels_last)
        return prepared, padding, image

    def encode_query(self, prepared: torch.Tensor) -> BackboneFeatures:
        return self.model.encode_query(prepared)

    def start(self, prepared: torch.Tensor, padding: Padding, box_maps: torch.Tensor,
              query_features: BackboneFeatures | None) -> tuple[MemoryFrame, QMRAOutput]:
        """Objects' first frame given their B×1×h×w box maps: their memory entry and prediction."""
        return self.model.start(prepared, padding, box_maps, query_features, self.attention, self.folded_crm)

    def predict(self, prepared: torch.Tensor, padding: Padding, memory: Memory,
                query_features: BackboneFeatures | None) -> QMRAOutput:
        """A tracked frame against the objects' memory."""
        return self.model.predict(prepared, padding, memory, query_features, attention=self.attention,
                                  folded_crm=self.folded_crm)

    def memory_entry(self, prepared: torch.Tensor, padding: Padding, output: QMRAOutput) -> tuple[MemoryFrame, torch.Tensor]:
        """A predicted frame's memory entry and the B×1×h×w box maps it was encoded with."""
        box_maps = self.model.tracked_box_maps(output)
        return self.model.memory_entry(prepared, padding, box_maps, output), box_maps
