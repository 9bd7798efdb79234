"""Small, fast segmenters and synthetic clips for the inference tests (imported by them)."""

from __future__ import annotations

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.inference import InferenceSettings, Segmenter, random_model
from qmra.model import ModelConfig
from tests.tiny import TINY


def tiny_segmenter(settings: InferenceSettings | None = None, variant: str = "full") -> Segmenter:
    return Segmenter(random_model(ModelConfig(**{**TINY.to_dict(), "variant": variant})), settings=settings)


def clip(frames: int = 8, objects: int = 2, height: int = 48, width: int = 64, seed: int = 0) -> SyntheticVideo:
    return SyntheticVideo(SyntheticConfig(height=height, width=width, num_frames=frames, num_objects=objects, seed=seed))
