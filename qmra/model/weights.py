"""Reading weight files safely and loading ImageNet backbones (torchvision ResNets, EfficientNet-Lite) into the encoders."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from qmra.errors import WeightsError
from qmra.model.backbones import Trunk, make_trunk
from qmra.model.efficientnet import LITE_SPECS, stage_layout
from qmra.model.resnet import RESNET_SPECS
_OPTIONAL_SUFFIX = "num_batches_tracked"  # absent from torchvision's own checkpoint files
_WRAPPER_KEYS = ("state_dict", "model")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, never unpickling arbitrary objects.

    Accepts a plain state dict, one wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``, and
    strips DistributedDataParallel's ``module.`` prefix. Raises :class:`WeightsError` with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            loaded: object = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the weights-only unpickler's notes on pickle protocols
                loaded = torch.load(path, map_location="cpu", weights_only=True)
    # A file that cannot be read is a corrupt file to the user, whatever the reader raised.
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot read weights file {path}: {reason}") from None
    return _as_state_dict(loaded, str(path))


def _as_state_dict(loaded: object, origin: str) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for key in _WRAPPER_KEYS:
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and len(loaded) <= 3:
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise WeightsError(f"{origin} does not hold a state dict (a mapping of names to tensors)")
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{origin} is not a state dict: entry {key!r} is a {type(value).__name__}, not a tensor")
        state[key.removeprefix("module.")] = value
    return state


@dataclass(frozen=True)
class BackboneLoadReport:
    """What :func:`load_backbone_weights` did."""

    encoders: tuple[str, ...]  # the encoders that received the weights
    loaded: tuple[str, ...]  # backbone keys loaded into each of them
    ignored: tuple[str, ...]  # keys of the file that the stride-16 trunk does not use (its later stages, the classifier)

    def __str__(self) -> str:
        return (
            f"loaded {len(self.loaded)} backbone tensors into {', '.join(self.encoders)}; "
            f"ignored {len(self.ignored)} unused keys (classifier and later stages)"
        )


def guess_resnet(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name the torchvision ResNet depth a state dict was made for, or None when it is none of ours."""
    bottleneck = "layer1.0.conv3.weight" in state
    layer3_blocks = len({k.split(".")[1] for k in state if k.startswith("layer3.")})
    for name, spec in RESNET_SPECS.items():
        if (spec.block == "bottleneck") == bottleneck and spec.layers[2] == layer3_blocks:
            return name
    return None


def guess_backbone(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name the backbone (torchvision ResNet or EfficientNet-Lite) a state dict was made for, or None."""
    if "_conv_stem.weight" in state:
        blocks = len({k.split(".")[1] for k in state if k.startswith("_blocks.")})
        r4 = state.get(f"_blocks.{blocks - 1}._bn2.weight")
        for name in LITE_SPECS:
            trunk_blocks = sum(stage.repeats for stage in stage_layout(name))
            if trunk_blocks == blocks and r4 is not None and r4.shape[0] == stage_layout(name)[-1].channels:
                return name
        return None
    return guess_resnet(state) if "conv1.weight" in state else None


def load_backbone_weights(encoders: Mapping[str, Trunk], source: str | Path | Mapping[str, torch.Tensor]) -> BackboneLoadReport:
    """Load one ImageNet state dict (a torchvision ResNet's or an EfficientNet-Lite's) into several
    encoders, all of the same backbone.

    Every trunk key must be present with the right shape; the keys the stride-16 trunk does not use
    (``layer4.*``/``fc.*``, or the Lite head ``_conv_head.*``/``_bn1.*``/``_fc.*``) are ignored;
    anything else is an error naming the keys. An encoder with 4 input channels (RGB + box map)
    starts with a zero filter for the box channel, so it computes exactly what the ImageNet network
    computes until training teaches it the box.
    """
    state = read_state_dict(source) if isinstance(source, (str, Path)) else _as_state_dict(source, "the given state dict")
    reference = next(iter(encoders.values()))
    rgb = make_trunk(reference.name, in_channels=3)
    expected = rgb.state_dict()
    required = {k for k in expected if not k.endswith(_OPTIONAL_SUFFIX)}
    ignored = sorted(k for k in state if k.startswith(reference.unused_prefixes))
    missing = sorted(required - set(state))
    unexpected = sorted(set(state) - set(expected) - set(ignored))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    if missing or unexpected or wrong_shape:
        guessed = guess_backbone(state)
        hint = f"; it looks like a file of {guessed}" if guessed and guessed != reference.name else ""
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
                problems.append(f"{label}: {shown}")
        raise WeightsError(f"these are not {reference.name} ImageNet weights{hint} — {'; '.join(problems)}")

    for encoder in encoders.values():
        target = encoder.state_dict()
        values = {k: state.get(k, target[k]).to(target[k].dtype) for k in target}
        stem = target[encoder.stem_key]
        if stem.shape[1] != 3:  # ResNet: one conv1 over RGB + box map; its box filter starts at zero
            filters = torch.zeros_like(stem)
            filters[:, :3] = state[encoder.stem_key]
            values[encoder.stem_key] = filters
        elif encoder.in_channels != 3 and "box_conv.weight" in target:  # EfficientNet-Lite: a box stem of its own
            values["box_conv.weight"] = torch.zeros_like(target["box_conv.weight"])
        encoder.load_state_dict(values, strict=True)
    return BackboneLoadReport(tuple(encoders), tuple(sorted(required)), tuple(ignored))
