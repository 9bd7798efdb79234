"""ResNet stem..layer3 (output stride 16) with torchvision's parameter names.

torchvision cannot be imported with the CPU torch build used here, so this is our own
implementation. Its ``state_dict`` keys (``conv1.weight``, ``layer2.0.downsample.1.running_mean``,
...) are exactly torchvision's for the same depth, minus ``layer4`` and ``fc``, so an ImageNet
checkpoint file loads with :func:`qmra.model.weights.load_backbone_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from qmra.errors import ConfigError
from qmra.model.batchnorm_fold import conv_bn, running_affine
from qmra.model.features import BackboneFeatures


@dataclass(frozen=True)
class ResNetSpec:
    block: str  # "basic" or "bottleneck"
    layers: tuple[int, int, int]  # blocks in layer1..layer3

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def channels(self) -> tuple[int, int, int]:
        """Output channels of layer1 (r2), layer2 (r3), layer3 (r4)."""
        return (64 * self.expansion, 128 * self.expansion, 256 * self.expansion)


RESNET_SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2)),
    "resnet34": ResNetSpec("basic", (3, 4, 6)),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6)),
}


def resnet_spec(name: str) -> ResNetSpec:
    try:
        return RESNET_SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(RESNET_SPECS)}") from None


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = conv_bn(self.conv2, self.bn2, out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3×3 convolution."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * 4)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        return self.relu(out + identity)


class ResNetTrunk(nn.Module):
    """ResNet ``conv1 .. layer3`` taking ``in_channels`` inputs (3 for RGB, 4 for RGB + box map).

    Input: B×in_channels×H×W, already normalised (H, W multiples of 16).
    Output: :class:`BackboneFeatures` at strides 16, 8 and 4.
    """

    #: Keys of a torchvision ResNet file that stem..layer3 does not use; the stem's key.
    unused_prefixes: tuple[str, ...] = ("layer4.", "fc.")
    stem_key = "conv1.weight"

    def __init__(self, name: str, in_channels: int = 3) -> None:
        super().__init__()
        spec = resnet_spec(name)
        self.name = name
        self.spec = spec
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        block = Bottleneck if spec.block == "bottleneck" else BasicBlock
        cin = 64
        layers = []
        for index, (width, blocks) in enumerate(zip((64, 128, 256), spec.layers)):
            stride = 1 if index == 0 else 2
            layer, cin = _make_layer(block, cin, width, blocks, stride)
            layers.append(layer)
        self.layer1, self.layer2, self.layer3 = layers
        self._init_weights()

    @property
    def channels(self) -> tuple[int, int, int]:
        return self.spec.channels

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        return self._layers(conv_bn(self.conv1, self.bn1, x))

    def forward_shared_image(self, image: torch.Tensor, extra: torch.Tensor) -> BackboneFeatures:
        """The trunk on ``cat([image, extra[b]])`` for each b, where one image serves all B inputs.

        image: 1×3×H×W; extra: B×(in_channels − 3)×H×W (e.g. B objects' box maps of one frame).
        conv1 is linear, so its RGB part runs once and each input adds only the extra channels' part;
        equal to ``forward(cat([image.expand(B), extra]))`` up to float rounding. It pays for B > 1.
        """
        if image.shape[0] != 1 or image.shape[1] != 3 or extra.shape[1] != self.in_channels - 3:
            raise ValueError(f"expected a 1×3×H×W image and B×{self.in_channels - 3}×H×W extra channels, "
                             f"got {tuple(image.shape)} and {tuple(extra.shape)}")
        weight, affine = self.conv1.weight, running_affine(self.bn1)
        if affine is None:
            shared = F.conv2d(image, weight[:, :3], stride=2, padding=3)
            return self._layers(self.bn1(F.conv2d(extra, weight[:, 3:], stride=2, padding=3) + shared))
        weight = weight * affine[0].view(-1, 1, 1, 1)  # BN folded in, as in conv_bn
        shared = F.conv2d(image, weight[:, :3], affine[1], stride=2, padding=3)
        return self._layers(F.conv2d(extra, weight[:, 3:], stride=2, padding=3) + shared)

    def _layers(self, stem: torch.Tensor) -> BackboneFeatures:
        """The trunk from conv1 and bn1's output on."""
        x = self.maxpool(self.relu(stem))
        r2 = self.layer1(x)
        r3 = self.layer2(r2)
        r4 = self.layer3(r3)
        return BackboneFeatures(r4=r4, r3=r3, r2=r2)


def _make_layer(block: type[nn.Module], cin: int, width: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    cout = width * block.expansion  # type: ignore[attr-defined]
    downsample = None
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
    modules = [block(cin, width, stride, downsample)]
    modules += [block(cout, width) for _ in range(1, blocks)]
    return nn.Sequential(*modules), cout
