"""Reading weight files safely and loading torchvision ImageNet ResNets into the encoders."""

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
from qmra.model.resnet import RESNET_SPECS, ResNetTrunk

#: Keys of a torchvision ResNet file that stem..layer3 does not use.
UNUSED_PREFIXES = ("layer4.", "fc.")
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
    ignored: tuple[str, ...]  # keys of the file that stem..layer3 does not use (layer4.*, fc.*)

    def __str__(self) -> str:
        return (
            f"loaded {len(self.loaded)} backbone tensors into {', '.join(self.encoders)}; "
            f"ignored {len(self.ignored)} unused keys (layer4, fc)"
        )


def guess_resnet(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name the torchvision ResNet depth a state dict was made for, or None when it is none of ours."""
    bottleneck = "layer1.0.conv3.weight" in state
    layer3_blocks = len({k.split(".")[1] for k in state if k.startswith("layer3.")})
    for name, spec in RESNET_SPECS.items():
        if (spec.block == "bottleneck") == bottleneck and spec.layers[2] == layer3_blocks:
            return name
    return None


def load_backbone_weights(encoders: Mapping[str, ResNetTrunk], source: str | Path | Mapping[str, torch.Tensor]) -> BackboneLoadReport:
    """Load one torchvision ResNet state dict into several encoders (all of the same depth).

    Every stem..layer3 key must be present with the right shape; ``layer4.*`` and ``fc.*`` are
    ignored; anything else is an error naming the keys. An encoder with 4 input channels (RGB +
    box map) gets the RGB filters of ``conv1`` and a zero filter for the box channel, so it starts
    out computing exactly what the ImageNet network computes.
    """
    state = read_state_dict(source) if isinstance(source, (str, Path)) else _as_state_dict(source, "the given state dict")
    reference = next(iter(encoders.values()))
    expected = reference.state_dict()
    required = {k for k in expected if not k.endswith(_OPTIONAL_SUFFIX)}
    ignored = sorted(k for k in state if k.startswith(UNUSED_PREFIXES))
    missing = sorted(required - set(state))
    unexpected = sorted(set(state) - set(expected) - set(ignored))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and k != "conv1.weight" and state[k].shape != v.shape
    )
    conv1 = state.get("conv1.weight")
    if conv1 is not None and conv1.shape != (64, 3, 7, 7):
        wrong_shape.insert(0, f"conv1.weight {tuple(conv1.shape)} (expected (64, 3, 7, 7))")
    if missing or unexpected or wrong_shape:
        guessed = guess_resnet(state)
        hint = f"; it looks like a {guessed} file" if guessed and guessed != reference.name else ""
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
                problems.append(f"{label}: {shown}")
        raise WeightsError(f"these are not torchvision {reference.name} weights{hint} — {'; '.join(problems)}")

    for encoder in encoders.values():
        target = encoder.state_dict()
        values = {k: state.get(k, target[k]) for k in target}
        if encoder.in_channels != 3:
            filters = torch.zeros_like(target["conv1.weight"])
            filters[:, :3] = conv1
            values["conv1.weight"] = filters
        encoder.load_state_dict(values, strict=True)
    return BackboneLoadReport(tuple(encoders), tuple(sorted(required)), tuple(ignored))
