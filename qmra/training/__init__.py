"""Training: ``qmra train`` and the pieces behind it."""

from qmra.training.specs import DataSpec
from qmra.training.config import TrainConfig
from qmra.training.trainer import Trainer

__all__ = ["DataSpec", "TrainConfig", "Trainer"]
