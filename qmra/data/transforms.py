"""Geometric and photometric augmentation for training clips.

A *view* maps every output pixel to a source position: a thin-plate-spline warp in the output's
own coordinates, then a rotation, scale and crop window in the source image. Image and mask go
through the same sampling grid (images bilinearly, masks nearest), so they stay aligned exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def thin_plate_spline(points: np.ndarray, control: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Evaluate the TPS f with f(control_i) = targets_i at ``points``.

    points: N×2, control and targets: K×2 (same coordinate frame) → N×2.
    """
    def kernel(d2: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d2 > 0, d2 * np.log(d2), 0.0)

    k = control.shape[0]
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = kernel(((control[:, None] - control[None]) ** 2).sum(-1))
    system[:k, k] = 1.0
    system[:k, k + 1 :] = control
    system[k, :k] = 1.0
    system[k + 1 :, :k] = control.T
    rhs = np.zeros((k + 3, 2))
    rhs[:k] = targets
    coefficients = np.linalg.solve(system, rhs)
    weights, affine = coefficients[:k], coefficients[k:]
    d2 = ((points[:, None] - control[None]) ** 2).sum(-1)
    return kernel(d2) @ weights + affine[0] + points @ affine[1:]


def random_tps(points: np.ndarray, magnitude: float, rng: np.random.Generator, grid: int = 4) -> np.ndarray:
    """Displace ``points`` (N×2 in [-1, 1]) by a smooth random TPS whose control points move up to ``magnitude``."""
    if magnitude <= 0:
        return points
    axis = np.linspace(-1.0, 1.0, grid)
    control = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    targets = control + rng.uniform(-magnitude, magnitude, control.shape)
    return thin_plate_spline(points, control, targets)


def _tps_displacement(h: int, w: int, magnitude: float, rng: np.random.Generator, linear: torch.Tensor | None = None,
                      step: int = 8) -> torch.Tensor:
    """A random TPS displacement for an h×w grid (h×w×2, output coordinates; with ``linear``, a 2×2
    map, mapped by it), evaluated every ``step`` pixels and interpolated bilinearly: the field is
    smooth, and the full-resolution solve costs 60× more. Interpolation is linear, so the map is
    applied to the coarse field, before it."""
    ch, cw = max(2, h // step + 1), max(2, w // step + 1)
    coarse = np.stack(np.meshgrid(np.linspace(-1, 1, cw), np.linspace(-1, 1, ch)), axis=-1).reshape(-1, 2)
    displacement = (random_tps(coarse, magnitude, rng) - coarse).reshape(1, ch, cw, 2)
    field = torch.from_numpy(displacement.astype(np.float32))
    if linear is not None:
        field = field @ linear.T
    return F.interpolate(field.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True)[0].permute(1, 2, 0)


@dataclass(frozen=True)
class View:
    """Where an output window looks in the source image.

    centre: (x, y) source pixels; extent: (width, height) of the window in source pixels before
    rotation; angle in radians (counter-clockwise on screen); flip mirrors left-right; tps: the
    magnitude of the thin-plate-spline warp in output coordinates ([-1, 1] across the window).
    """

    centre: tuple[float, float]
    extent: tuple[float, float]
    angle: float = 0.0
    flip: bool = False
    tps: float = 0.0


def sampling_grid(view: View, output_size: tuple[int, int], source_size: tuple[int, int],
                  rng: np.random.Generator | None = None) -> torch.Tensor:
    """1×h×w×2 grid for ``grid_sample`` (align_corners=False) that renders ``view`` at ``output_size``."""
    h, w = output_size
    height, width = source_size
    # The view is affine in output coordinates (pixel centres in [-1, 1]) → source coordinates in
    # [-1, 1]; an outer sum evaluates it (5× cheaper than affine_grid's matrix product).
    fx = (-1.0 if view.flip else 1.0) * view.extent[0] / 2
    fy = view.extent[1] / 2
    c, s = math.cos(view.angle), math.sin(view.angle)
    linear = torch.tensor([[c * fx * 2 / width, s * fy * 2 / width], [-s * fx * 2 / height, c * fy * 2 / height]], dtype=torch.float32)
    a = (2 * torch.arange(w, dtype=torch.float32) + 1) / w - 1
    b = (2 * torch.arange(h, dtype=torch.float32) + 1) / h - 1
    grid = torch.empty(1, h, w, 2, dtype=torch.float32)
    torch.add((a * linear[0, 0])[None, :], (b * linear[0, 1] + (2 * view.centre[0] / width - 1))[:, None], out=grid[0, ..., 0])
    torch.add((a * linear[1, 0])[None, :], (b * linear[1, 1] + (2 * view.centre[1] / height - 1))[:, None], out=grid[0, ..., 1])
    if view.tps > 0:
        grid[0] += _tps_displacement(h, w, view.tps, rng if rng is not None else np.random.default_rng(), linear)
    return grid


def warp_image(image: np.ndarray | torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """H×W×3 uint8 (or 3×H×W float in [0, 1]) → 3×h×w float in [0, 1], bilinear, black outside."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0].clamp_(0, 1)


def warp_mask(mask: np.ndarray | torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """H×W mask (bool or ids) → 1×h×w float, nearest neighbour, 0 outside."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask).astype(np.float32))
    return F.grid_sample(mask[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]


def colour_jitter(images: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation changes shared by a clip (T×3×h×w in [0, 1]), plus a
    quarter-strength change per frame. ``strength`` 0 returns the images unchanged.

    Per frame, with brightness b, contrast c and saturation s: ``x ← b·x``; ``x ← (x − mean) c + mean``
    (the frame's mean); ``x ← (x − grey) s + grey`` (each pixel's mean over the channels); clamped
    to [0, 1]. The first two are one multiply-add, and the last one is written ``s·x + (1 − s)·grey``:
    a training clip's colours in a third of the passes over its frames.
    """
    if strength <= 0:
        return images
    out = torch.empty_like(images)
    shared = rng.uniform(1 - strength, 1 + strength, 3)
    for frame, result in zip(images, out):
        brightness, contrast, saturation = shared * rng.uniform(1 - strength / 4, 1 + strength / 4, 3)
        mean = brightness * float(frame.mean())
        torch.mul(frame, brightness * contrast, out=result).add_(mean * (1 - contrast))
        grey = result.mean(dim=0, keepdim=True).mul_(1 - saturation)
        result.mul_(saturation).add_(grey).clamp_(0, 1)
    return out


#: ITU-R BT.601 luma weights of R, G and B: what Pillow's ``convert("L")`` and most cameras use.
LUMA = (0.299, 0.587, 0.114)


def greyscale(images: torch.Tensor) -> torch.Tensor:
    """T×3×h×w RGB in [0, 1] → the same frames in greyscale (each channel the pixel's luma, :data:`LUMA`)."""
    luma = torch.tensordot(torch.tensor(LUMA, dtype=images.dtype), images, dims=([0], [-3]))
    return luma.unsqueeze(-3).expand_as(images).contiguous()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """T×3×h×w images blurred by a Gaussian of ``sigma`` pixels (a soft focus), borders reflected."""
    radius, channels = max(1, int(math.ceil(3 * sigma))), images.shape[-3]
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(channels, 1)[:, None]  # C×1×K: each channel alone
    rows = F.conv2d(F.pad(images, (0, 0, radius, radius), mode="reflect"), kernel[..., None], groups=channels)
    return F.conv2d(F.pad(rows, (radius, radius, 0, 0), mode="reflect"), kernel[:, :, None], groups=channels)
