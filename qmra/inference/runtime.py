"""How the network runs for one video: the execution choices, fixed once per session."""

from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from qmra.inference.settings import InferenceSettings
from qmra.inference.staging import FrameStaging
from qmra.inference.threads import ThreadChoice
from qmra.model import QMRA, BackboneFeatures, Memory, MemoryFrame, QMRAOutput
from qmra.model.crm import FoldedCRMInput
from qmra.model.preprocess import Padding
from qmra.model.qma import ReadMode


@dataclass(frozen=True)
class ModelRuntime:
    """A network with the choices fixed for a video: the Memory Read's kernel and top-k,
    the CRM's folded convolutions (made from the weights once), bf16 autocast, NHWC inputs and
    :func:`torch.compile`.

    The session builds one when propagation starts (and again after test-time adaptation changes the
    weights) and calls the network through it, so no call site repeats these choices.

    Compiled (``compile`` is a :func:`torch.compile` mode, not ``"off"``), the two calls made on
    every frame, :meth:`encode_query` and :meth:`track`, each become one graph. Their inputs keep
    their shapes from frame to frame because the memory is then *static*
    (:attr:`static_memory`, :class:`qmra.inference.memory.MemoryBank`), so a video compiles once per
    object count; with ``"reduce-overhead"`` on a GPU each frame replays them as CUDA graphs.
    """

    model: QMRA
    device: torch.device
    read: ReadMode = ReadMode()
    folded_crm: FoldedCRMInput | None = None
    bf16: bool = False
    channels_last: bool = False
    compile: str = "off"
    stage2_box: str = "all"

    @classmethod
    def create(cls, model: QMRA, device: torch.device, settings: InferenceSettings) -> "ModelRuntime":
        folded = None
        if settings.fold_crm and model.crm is not None:
            with torch.inference_mode():
                folded = model.crm.fold()
        return cls(model, device, settings.read_mode, folded, settings.precision == "bf16", settings.channels_last,
                   settings.compile, settings.stage2_box)

    @property
    def static_memory(self) -> bool:
        """Whether memory banks should keep one shape for the whole video (needed by compiled graphs)."""
        return self.compile != "off"

    @contextmanager
    def running(self) -> Iterator[None]:
        """No gradients, bf16 autocast where asked for, and on CUDA cuDNN's measured choice of
        convolution algorithms (a video's shapes repeat frame after frame, so the first frames'
        trials pay back), restored afterwards."""
        with ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16))
            stack.enter_context(cudnn_benchmark(self.device))
            yield

    def network_input(self, frame: np.ndarray, size: tuple[int, int],
                      staging: FrameStaging | None = None) -> tuple[torch.Tensor, Padding, torch.Tensor]:
        """H×W×3 uint8 frame → the prepared 1×3×h'×w' input at the working ``size`` (h, w), its
        padding, and the 1×3×h×w RGB image in [0, 1]. ``staging``: the session's buffers the frame
        goes to the device through (default: new ones for this call)."""
        with record_function("qmra/io"):
            image = (staging or FrameStaging(self.device)).to_device(frame)
            image = image.permute(2, 0, 1)[None].float().div_(255)
            if size != tuple(frame.shape[:2]):
                image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
            prepared, padding = self.model.prepare(image)
            if self.channels_last:
                prepared = prepared.contiguous(memory_format=torch.channels_last)
        return prepared, padding, image

    def encode_query(self, prepared: torch.Tensor) -> BackboneFeatures:
        if self.compile == "reduce-overhead" and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # a new frame: the last frame's graph outputs are done with
        return self._compiled_encode_query(prepared)

    def start(self, prepared: torch.Tensor, padding: Padding, box_maps: torch.Tensor,
              query_features: BackboneFeatures | None) -> tuple[MemoryFrame, QMRAOutput]:
        """Objects' first frame given their B×1×h×w box maps: their memory entry and prediction."""
        return self.model.start(prepared, padding, box_maps, query_features, self.read, self.folded_crm)

    def track(self, prepared: torch.Tensor, padding: Padding, memory: Memory, query_features: BackboneFeatures,
              prior: torch.Tensor | None = None) -> tuple[QMRAOutput, MemoryFrame, torch.Tensor]:
        """A tracked frame against the objects' memory: its prediction, its memory entry and the
        B×1×h×w box maps that entry was encoded with. ``prior``: B×1×h×w box maps for stage 2 in
        place of stage 1's (a lost object found again: :mod:`qmra.inference.redetect`), run eagerly."""
        if prior is not None:
            return self._track(prepared, padding, memory, query_features, prior)
        return self._compiled_track(prepared, padding, memory, query_features)

    def _track(self, prepared: torch.Tensor, padding: Padding, memory: Memory, query_features: BackboneFeatures,
               prior: torch.Tensor | None = None) -> tuple[QMRAOutput, MemoryFrame, torch.Tensor]:
        output = self.model.predict(prepared, padding, memory, query_features, query_prior=prior, read=self.read,
                                    folded_crm=self.folded_crm, stage2_box=self.stage2_box)
        box_maps = self.model.tracked_box_maps(output)
        return output, self.model.memory_entry(prepared, padding, box_maps, output, self.read), box_maps

    @cached_property
    def _compiled_encode_query(self) -> Callable[[torch.Tensor], BackboneFeatures]:
        return self._compiled(self.model.encode_query)

    @cached_property
    def _compiled_track(self) -> Callable[..., tuple[QMRAOutput, MemoryFrame, torch.Tensor]]:
        return self._compiled(self._track)

    def _compiled(self, function: Callable) -> Callable:
        if self.compile == "off":
            return function
        # The profiler labels inside the network mean nothing in a compiled graph, and Dynamo says so
        # on stderr in a line users cannot act on.
        dynamo_log = logging.getLogger("torch._dynamo.variables.ctx_manager")
        if _PROFILER_LABELS_IGNORED not in dynamo_log.filters:
            dynamo_log.addFilter(_PROFILER_LABELS_IGNORED)
        # Shapes do not change within a video (static memory), so no dynamic-shape graphs: a new
        # object count or frame size compiles anew.
        return torch.compile(function, mode=self.compile, dynamic=False)


@contextmanager
def cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """On CUDA, cuDNN's measured choice of convolution algorithms for the work inside, the process's
    own choice restored after it; elsewhere nothing."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@contextmanager
def switches_held(device: torch.device, threads: ThreadChoice) -> Iterator[None]:
    """The process-wide switches a session sets while it runs (the CPU thread count, cuDNN's
    measured algorithms), set once around sessions that run in several threads at once. Each
    session's own setting and restoring then changes nothing; without this, the first session to
    end would restore the process's values under the others, and the last would leave its own."""
    with threads.applied(), cudnn_benchmark(device):
        yield


class _ProfilerLabelsIgnored(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "will be ignored" not in record.getMessage()


_PROFILER_LABELS_IGNORED = _ProfilerLabelsIgnored()
