"""The entry point users hold: a model on a device with inference settings."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from qmra.data.frames import FrameSource, open_frames
from qmra.errors import QmraError, WeightsError
from qmra.inference.adapt import check_adaptable
from qmra.inference.session import InferenceSession
from qmra.inference.settings import InferenceSettings
from qmra.inference.threads import choose_threads
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import load_model, read_checkpoint_config

#: The trained weights that ship with qmra (card: qmra-default.json beside them).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "qmra-default.safetensors"
#: How long a thread-count choice stands before a new run looks at the machine's load again.
THREADS_CHOICE_SECONDS = 30.0
#: The network :func:`random_model` builds by default (benchmarks and tests).
RANDOM_MODEL_CONFIG = ModelConfig(backbone="resnet18")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... → a device this machine has, or a clear error."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise QmraError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise QmraError("device cuda was asked for, but CUDA is not available here; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise QmraError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return resolved


def random_model(config: ModelConfig = RANDOM_MODEL_CONFIG, seed: int = 0) -> QMRA:
    """A model with reproducible random weights, without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return QMRA(config)


def recommended_settings(metadata: dict, base: InferenceSettings | None = None) -> InferenceSettings:
    """``base`` (default: the reference settings) with what a checkpoint's ``"inference"`` metadata
    recommends, e.g. ``{"resolution": 224}`` for weights trained on small crops, which see objects at
    that scale best."""
    from dataclasses import fields, replace

    recommended = metadata.get("inference")
    if not isinstance(recommended, dict):
        recommended = {}
    names = {f.name for f in fields(InferenceSettings)}
    return replace(base or InferenceSettings(), **{k: v for k, v in recommended.items() if k in names})


class Segmenter:
    """A QMRA model on a device, with inference settings; :meth:`start` opens a video.

    ``Segmenter()`` uses the weights that ship with qmra (a :class:`WeightsError` if the
    installation lacks them). Without ``settings``, the weights' recommended settings apply (their
    ``"inference"`` metadata; see :func:`recommended_settings`). A ``model`` given is never changed:
    where it must move to the device, leave training mode or change memory layout, a copy is used.
    """

    def __init__(self, model: QMRA | None = None, device: str | torch.device = "cpu",
                 settings: InferenceSettings | None = None, progress: bool = False) -> None:
        self.device = resolve_device(device)
        self.metadata: dict = {}
        if model is None:
            if not DEFAULT_WEIGHTS.is_file():
                raise WeightsError(f"qmra's shipped weights are missing from this installation ({DEFAULT_WEIGHTS}); "
                                   "reinstall qmra, or give a model or Segmenter.from_checkpoint(FILE)")
            model, self.metadata = load_model(DEFAULT_WEIGHTS)
        self.settings = settings or recommended_settings(self.metadata)
        if self.settings.adapt_steps:
            check_adaptable(model.config, self.settings.adapt_mask_weight)  # before any frame is read
        self.model = _ready(model, self.device, self.settings.channels_last)
        self.progress = progress
        self._threads_chosen_at = -float("inf")
        self.threads = self.refresh_threads()

    def refresh_threads(self) -> int:
        """Choose the CPU thread count again (see :mod:`qmra.inference.threads`) when the last choice is
        older than :data:`THREADS_CHOICE_SECONDS`: the machine's load changes, looking costs ~0.1 s."""
        now = time.monotonic()
        if self.settings.threads is None and now - self._threads_chosen_at < THREADS_CHOICE_SECONDS:
            return self.threads
        self._threads_chosen_at = now
        self.threads = choose_threads(self.settings.threads, self.device)
        return self.threads

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", settings: InferenceSettings | None = None,
                        progress: bool = False) -> "Segmenter":
        """Load a qmra checkpoint (``.safetensors`` with its config); wrong files raise :class:`WeightsError`."""
        settings = settings or recommended_settings(read_checkpoint_config(path)[1])
        model, metadata = load_model(path)
        model = model.to(resolve_device(device)).eval()  # ours: ready it in place rather than copy it
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        segmenter = cls(model, device, settings, progress)
        segmenter.metadata = metadata
        return segmenter

    def start(self, source: str | Path | np.ndarray | Iterable[np.ndarray] | FrameSource) -> InferenceSession:
        """Open a video file, a frame folder, or frames in memory (H×W×3 uint8); frames are streamed."""
        return InferenceSession(self, open_frames(source))


def _ready(model: QMRA, device: torch.device, channels_last: bool) -> QMRA:
    """``model`` in eval mode on ``device`` (NHWC weights if ``channels_last``): the model itself if it
    is so already, else a copy, so that the caller's model is never changed."""
    parameter = next(model.parameters())
    # A 7×7 convolution's weight is contiguous in exactly one of the two layouts.
    conv = next((p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1 and p.shape[1] > 1), None)
    layout_ok = conv is None or (not conv.is_contiguous()) == channels_last
    on_device = parameter.device.type == device.type and device.index in (None, parameter.device.index)
    if on_device and not model.training and layout_ok:
        return model
    model = copy.deepcopy(model).to(device).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model
