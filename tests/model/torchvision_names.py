"""torchvision's ResNet state-dict layout, written out independently of qmra's ResNet.

It lists the keys and shapes that ``torchvision.models.resnetXX().state_dict()`` has (layer4 and fc
included), so the tests can build a torchvision-style checkpoint without torchvision.
"""

from __future__ import annotations

import torch

LAYOUT = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet34": ("basic", [3, 4, 6, 3]), "resnet50": ("bottleneck", [3, 4, 6, 3])}


def _bn(prefix: str, channels: int, with_counter: bool) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    if with_counter:
        shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def torchvision_resnet_shapes(name: str, with_counter: bool = True) -> dict[str, tuple[int, ...]]:
    block, counts = LAYOUT[name]
    expansion = 4 if block == "bottleneck" else 1
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64, with_counter)}
    inplanes = 64
    for layer_index, (width, count) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        for block_index in range(count):
            p = f"layer{layer_index}.{block_index}"
            if block == "bottleneck":
                shapes[f"{p}.conv1.weight"] = (width, inplanes, 1, 1)
                shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
                shapes[f"{p}.conv3.weight"] = (width * 4, width, 1, 1)
                for i, c in ((1, width), (2, width), (3, width * 4)):
                    shapes.update(_bn(f"{p}.bn{i}", c, with_counter))
            else:
                shapes[f"{p}.conv1.weight"] = (width, inplanes, 3, 3)
                shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
                shapes.update(_bn(f"{p}.bn1", width, with_counter))
                shapes.update(_bn(f"{p}.bn2", width, with_counter))
            out = width * expansion
            if block_index == 0 and (layer_index > 1 or inplanes != out):
                shapes[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
                shapes.update(_bn(f"{p}.downsample.1", out, with_counter))
            inplanes = out
    shapes["fc.weight"] = (1000, inplanes)
    shapes["fc.bias"] = (1000,)
    return shapes


def random_torchvision_state_dict(name: str, with_counter: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet_shapes(name, with_counter).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state
