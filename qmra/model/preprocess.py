"""Input conventions: the backbone's normalisation and STM's padding to multiples of 16."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: (mean, std) per RGB channel, for input in [0, 1].
Normalization = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET: Normalization = (IMAGENET_MEAN, IMAGENET_STD)

#: The encoders' output stride: padded inputs are multiples of it.
STRIDE = 16


def normalize_image(image: torch.Tensor, normalization: Normalization = IMAGENET) -> torch.Tensor:
    """RGB in [0, 1], ...×3×H×W → (image − mean) / std per channel (ImageNet's by default), same shape and dtype."""
    if image.shape[-3] != 3:
        raise ValueError(f"expected RGB images with 3 channels, got shape {tuple(image.shape)}")
    # Channel by channel with the constants as scalars: a tensor made from them would be copied to
    # the device on every call, and that copy waits for the device to finish its queued work.
    channels = [(image.narrow(-3, c, 1) - mean) / std for c, (mean, std) in enumerate(zip(*normalization))]
    return torch.cat(channels, dim=-3)


@dataclass(frozen=True)
class Padding:
    """Pixels added on each side to reach a multiple of :data:`STRIDE`, split evenly (STM).

    ``height``/``width`` are the original size; the padded size is ``padded_height``×``padded_width``.
    """

    height: int
    width: int
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def for_size(cls, height: int, width: int, multiple: int = STRIDE) -> "Padding":
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        pad_h = -height % multiple
        pad_w = -width % multiple
        return cls(height, width, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)

    @property
    def padded_height(self) -> int:
        return self.height + self.top + self.bottom

    @property
    def padded_width(self) -> int:
        return self.width + self.left + self.right

    def pad(self, x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
        """...×H×W → ...×H'×W' with constant ``value`` in the border."""
        if (x.shape[-2], x.shape[-1]) != (self.height, self.width):
            raise ValueError(f"expected size {self.height}x{self.width}, got {x.shape[-2]}x{x.shape[-1]}")
        if self.top == self.bottom == self.left == self.right == 0:
            return x
        return F.pad(x, (self.left, self.right, self.top, self.bottom), value=value)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """...×H'×W' → ...×H×W (a view)."""
        if (x.shape[-2], x.shape[-1]) != (self.padded_height, self.padded_width):
            raise ValueError(
                f"expected padded size {self.padded_height}x{self.padded_width}, got {x.shape[-2]}x{x.shape[-1]}"
            )
        return x[..., self.top : self.top + self.height, self.left : self.left + self.width]


def prepare_image(image: torch.Tensor, padding: Padding, normalization: Normalization = IMAGENET) -> torch.Tensor:
    """RGB in [0, 1] (...×3×H×W) → normalised and padded (...×3×H'×W').

    Padding after normalisation with zeros fills the border with the mean colour, as STM does.
    """
    return padding.pad(normalize_image(image, normalization), 0.0)
