"""Video inference: ``Segmenter`` → ``session = segmenter.start(video)`` → ``session.add_box`` → ``session.propagate()``."""

from qmra.inference.memory import MemoryBank, MemorySchedule
from qmra.inference.merge import soft_aggregate
from qmra.inference.segmenter import Segmenter, random_model, resolve_device
from qmra.inference.results import FrameResult
from qmra.inference.session import InferenceSession
from qmra.inference.settings import InferenceSettings

__all__ = ["FrameResult", "InferenceSession", "InferenceSettings", "MemoryBank", "MemorySchedule", "Segmenter",
           "random_model", "resolve_device", "soft_aggregate"]
