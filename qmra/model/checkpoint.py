"""qmra checkpoints: one safetensors file with the model config in its metadata.

A checkpoint ``NAME.safetensors`` holds the weights (fp32 or fp16) and, in the safetensors
metadata, ``{"format": "qmra", "config": <ModelConfig as JSON>, ...}``. A JSON file beside it
(``NAME.json``, written by training) may carry the config instead and anything else (step, data).
Loading never unpickles: safetensors only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from qmra.data.atomic import atomic_path
from qmra.errors import ConfigError, WeightsError
from qmra.model.config import ModelConfig
from qmra.model.network import QMRA
from qmra.model.weights import guess_backbone, read_state_dict

FORMAT = "qmra"


def save_checkpoint(path: str | Path, model: QMRA, metadata: Mapping[str, Any] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``model``'s weights (cast to ``dtype`` if given) and config, atomically."""
    path = Path(path)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
             for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "config": json.dumps(model.config.to_dict())}
    header.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    with atomic_path(path) as temporary:
        save_file(state, str(temporary), metadata=header)
    return path


def read_checkpoint_config(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The model config (and the other metadata) of a checkpoint, without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    metadata: dict[str, str] = {}
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
        except (SafetensorError, OSError) as error:
            raise WeightsError(f"cannot read weights file {path}: {error}") from None
    extra = {k: _json_or_text(v) for k, v in metadata.items() if k not in ("format", "config")}
    config_text = metadata.get("config")
    sidecar = path.with_suffix(".json")
    if config_text is None and sidecar.is_file():
        try:
            document = json.loads(sidecar.read_text())
            config_values = document["model"]
            extra.update({k: v for k, v in document.items() if k != "model"})
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise WeightsError(f"cannot read the model config in {sidecar}: {error!r}") from None
    elif config_text is not None:
        try:
            config_values = json.loads(config_text)
        except json.JSONDecodeError as error:
            raise WeightsError(f"{path}: the model config in its metadata is not JSON: {error}") from None
    else:
        hint = _what_it_is(path)
        raise WeightsError(f"{path} is not a qmra checkpoint (no model config in it or in {sidecar.name}){hint}")
    try:
        return ModelConfig.from_dict(config_values), extra
    except (ConfigError, TypeError) as error:
        raise WeightsError(f"{path}: its model config is not one this qmra knows: {error}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[QMRA, dict[str, Any]]:
    """Build the checkpoint's model, load and check every tensor, move it to ``device``; returns (model, metadata)."""
    config, extra = read_checkpoint_config(path)
    model = QMRA(config)
    load_weights_into(model, read_state_dict(path), str(path))
    return model.to(device).eval(), extra


def load_weights_into(model: QMRA, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Copy a full qmra state dict into ``model``, naming any missing, unexpected or misshaped tensor."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
                   if k in state and state[k].shape != v.shape)
    if missing or unexpected or wrong:
        config = model.config
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                problems.append(f"{label}: {', '.join(keys[:3])}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""))
        raise WeightsError(f"{origin} does not fit the QMRA {config.backbone} '{config.variant}' model it names — {'; '.join(problems)}")
    model.load_state_dict(dict(state), strict=True)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _what_it_is(path: Path) -> str:
    try:
        state = read_state_dict(path)
    except WeightsError:
        return ""
    guessed = guess_backbone(state)
    if guessed:
        source = "an ImageNet" if guessed.startswith("efficientnet") else "a torchvision"
        return f"; it looks like {source} {guessed} backbone, which initialises training (--backbone-weights)"
    return ""
