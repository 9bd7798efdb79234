"""The entry point users hold: a model on a device with inference settings."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from qmra.data.frames import FrameSource, open_frames
from qmra.errors import QmraError
from qmra.inference.session import InferenceSession
from qmra.inference.settings import InferenceSettings
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import load_model

#: Where the package's trained weights live once they ship.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "qmra-default.safetensors"
#: The network used when no trained weights are available (random initialisation, seed 0).
FALLBACK_CONFIG = ModelConfig(backbone="resnet18")


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


def random_model(config: ModelConfig = FALLBACK_CONFIG, seed: int = 0) -> QMRA:
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

    ``Segmenter()`` uses the weights that ship with qmra; until they exist it uses random weights,
    warns, and sets ``random_weights``. Without ``settings``, the weights' recommended settings apply
    (their ``"inference"`` metadata; see :func:`recommended_settings`).
    """

    def __init__(self, model: QMRA | None = None, device: str | torch.device = "cpu",
                 settings: InferenceSettings | None = None, progress: bool = False) -> None:
        self.device = resolve_device(device)
        self.random_weights = False
        self.metadata: dict = {}
        if model is None:
            if DEFAULT_WEIGHTS.is_file():
                model, self.metadata = load_model(DEFAULT_WEIGHTS)
            else:
                warnings.warn("qmra has no trained weights yet: using RANDOM weights, masks will be meaningless", stacklevel=2)
                model = random_model()
                self.random_weights = True
        self.settings = settings or recommended_settings(self.metadata)
        model = model.to(self.device).eval()
        if self.settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.progress = progress

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", settings: InferenceSettings | None = None,
                        progress: bool = False) -> "Segmenter":
        """Load a qmra checkpoint (``.safetensors`` with its config); wrong files raise :class:`WeightsError`."""
        resolve_device(device)
        model, metadata = load_model(path)
        segmenter = cls(model, device, settings or recommended_settings(metadata), progress)
        segmenter.metadata = metadata
        return segmenter

    def start(self, source: str | Path | np.ndarray | Iterable[np.ndarray] | FrameSource) -> InferenceSession:
        """Open a video file, a frame folder, or frames in memory (H×W×3 uint8); frames are streamed."""
        return InferenceSession(self, open_frames(source))
