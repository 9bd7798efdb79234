"""Training: ``qmra train`` and the pieces behind it."""

from qmra.training.specs import DataSpec
from qmra.training.trainer import TrainConfig, Trainer

__all__ = ["DataSpec", "TrainConfig", "Trainer"]
