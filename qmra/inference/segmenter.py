"""The entry point users hold: a model on a device with inference settings."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from qmra.data.frames import FrameSource, open_frames
from qmra.errors import QmraError
from qmra.inference.adapt import adaptable, check_adaptable
from qmra.inference.card import WeightsCard, read_card, shipped_card
from qmra.inference.encode_batch import QueryBatcher
from qmra.inference.greyscale import learned_from_colour_only
from qmra.inference.progress import ProgressStyle
from qmra.inference.prompts import PromptsGiven
from qmra.inference.session import InferenceSession
from qmra.inference.settings import InferenceSettings
from qmra.inference.threads import ThreadChoice
from qmra.model import QMRA, ModelConfig

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


class Segmenter:
    """A QMRA model on a device, with inference settings; :meth:`start` opens a video.

    ``Segmenter()`` uses the weights that ship with qmra (a :class:`WeightsError` if the
    installation lacks them), :meth:`from_checkpoint` other weights. Without ``settings``, the
    weights' recommended settings apply (their card: :class:`WeightsCard`); a ``model`` given
    without a card runs with the reference settings. A ``model`` given is never changed: where it
    must move to the device, leave training mode or change memory layout, a copy is used.
    """

    def __init__(self, model: QMRA | None = None, device: str | torch.device = "cpu",
                 settings: InferenceSettings | None = None, progress: ProgressStyle = False,
                 card: WeightsCard | None = None) -> None:
        self.device = resolve_device(device)
        loaded = model is None
        if model is None:
            card = card or shipped_card()
            model = card.load_model()
        #: The weights' card (None for a model given without one).
        self.card = card
        self.settings = settings or (card.settings if card is not None else InferenceSettings())
        if self.settings.adapt_steps:
            check_adaptable(model.config, self.settings.adapt_mask_weight)  # before any frame is read
        #: Whether the weights learned from colour video only (their card says so, and they can adapt):
        #: greyscale videos then adapt them first (``settings.grey_adapt_steps``).
        self.colour_only = learned_from_colour_only(card) and adaptable(model.config, self.settings.adapt_mask_weight)
        self.model = _ready(model, self.device, self.settings.channels_last, copy=not loaded)  # ours: readied in place
        self.progress = progress
        #: The CPU thread count the network's work runs with (set only while it runs).
        self.threads = ThreadChoice(self.settings.threads, self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path | WeightsCard, device: str | torch.device = "cpu",
                        settings: InferenceSettings | None = None, progress: ProgressStyle = False) -> "Segmenter":
        """Load a qmra checkpoint (``.safetensors`` with its config, or its card); wrong files raise
        :class:`WeightsError`."""
        card = path if isinstance(path, WeightsCard) else read_card(path)
        return cls(None, device, settings, progress, card)

    def start(self, source: str | Path | np.ndarray | Iterable[np.ndarray] | FrameSource,
              prompts: PromptsGiven = (), batcher: QueryBatcher | None = None) -> InferenceSession:
        """Open a video file, a frame folder, or frames in memory (H×W×3 uint8); frames are streamed.
        ``prompts``: the boxes to start with, as :meth:`InferenceSession.add_box` takes them (without
        predicting): ``{object_id: box}`` on frame 0, or ``(object_id, box[, frame])`` tuples, or
        :class:`Prompt` objects; a box is four numbers x0, y0, x1, y1 (pixels) or a :class:`Box`.
        ``batcher``: a :class:`QueryBatcher` shared by sessions run in several threads, whose frames
        then go through the query encoder together (:mod:`qmra.inference.encode_batch`)."""
        return InferenceSession(self.model, open_frames(source), self.device, self.settings, self.progress,
                                self.threads, prompts, batcher, self.colour_only)


def is_channels_last(model: nn.Module) -> bool | None:
    """Whether ``model``'s convolution weights are in NHWC layout (None: it has no k×k convolution)."""
    # A k×k convolution's weight (k > 1, more than one input channel) is contiguous in exactly one of
    # the two layouts.
    conv = next((p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1 and p.shape[1] > 1), None)
    return None if conv is None else not conv.is_contiguous()


def _ready(model: QMRA, device: torch.device, channels_last: bool, copy: bool = True) -> QMRA:
    """``model`` in eval mode on ``device`` (NHWC weights if ``channels_last``): the model itself if it
    is so already, else a copy (``copy``), so that the caller's model is never changed; without
    ``copy``, ``model`` itself is changed (one loaded here)."""
    parameter = next(model.parameters())
    layout_ok = is_channels_last(model) in (None, channels_last)
    on_device = parameter.device.type == device.type and device.index in (None, parameter.device.index)
    if on_device and not model.training and layout_ok:
        return model
    model = (deepcopy(model) if copy else model).to(device).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model
