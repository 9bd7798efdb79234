"""The encoders a QMRA network can be built on, and what each expects of its input."""

from __future__ import annotations

from typing import Union

from qmra.errors import ConfigError
from qmra.model.efficientnet import LITE_SPECS, NORMALIZATION as LITE_NORMALIZATION, EfficientNetLiteTrunk
from qmra.model.preprocess import IMAGENET, Normalization
from qmra.model.resnet import RESNET_SPECS, ResNetTrunk

#: Every backbone name ``ModelConfig.backbone`` takes: the paper's ResNets, then EfficientNet-Lite.
BACKBONES: tuple[str, ...] = (*reversed(RESNET_SPECS), *LITE_SPECS)

#: One encoder trunk: features at strides 16, 8, 4 (``BackboneFeatures``), ``channels``, ``in_channels``.
Trunk = Union[ResNetTrunk, EfficientNetLiteTrunk]


def make_trunk(name: str, in_channels: int = 3) -> Trunk:
    """A freshly initialised stride-16 encoder ``name`` of ``in_channels`` inputs (3: RGB, 4: RGB + box map)."""
    if name in RESNET_SPECS:
        return ResNetTrunk(name, in_channels=in_channels)
    if name in LITE_SPECS:
        return EfficientNetLiteTrunk(name, in_channels=in_channels)
    raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def normalization(name: str) -> Normalization:
    """The (mean, std) the backbone's ImageNet weights were trained with, for RGB in [0, 1]
    (torchvision's ImageNet constants for the ResNets)."""
    return LITE_NORMALIZATION if name in LITE_SPECS else IMAGENET
