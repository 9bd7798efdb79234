"""The QMRA network: ``from qmra.model import QMRA, ModelConfig``."""

from qmra.model.config import BACKBONES, VARIANTS, ModelConfig
from qmra.model.features import BackboneFeatures
from qmra.model.losses import LossParts, QMRALoss, dice_loss, segmentation_loss
from qmra.model.network import QMRA, Memory, MemoryFrame, QMRAOutput
from qmra.model.preprocess import Padding, normalize_image, prepare_image
from qmra.model.qma import KeyValueMaps, MemoryTokens, ReadMode, memory_read
from qmra.model.resnet import ResNetTrunk
from qmra.model.weights import BackboneLoadReport, read_state_dict

__all__ = [
    "BACKBONES",
    "VARIANTS",
    "BackboneFeatures",
    "BackboneLoadReport",
    "KeyValueMaps",
    "LossParts",
    "Memory",
    "MemoryFrame",
    "MemoryTokens",
    "ModelConfig",
    "Padding",
    "QMRA",
    "QMRALoss",
    "QMRAOutput",
    "ReadMode",
    "ResNetTrunk",
    "dice_loss",
    "memory_read",
    "normalize_image",
    "prepare_image",
    "read_state_dict",
    "segmentation_loss",
]
