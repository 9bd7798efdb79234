"""Run checkpoints that never lose work.

``RUN_DIR/NAME.safetensors`` (weights + model config, loadable by ``qmra segment --weights``),
``NAME.json`` (model config, step, training and data settings, metrics) and ``NAME.state.pt``
(optimizer state and RNG state, read back with ``torch.load(weights_only=True)``). Each file is
written to a temporary name and renamed, weights last-but-one and the JSON last, so a crash
mid-save leaves the previous checkpoint readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qmra.data.atomic import atomic_path, write_text_atomic
from qmra.errors import QmraError
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import load_weights_into, save_checkpoint
from qmra.model.config import config_differences
from qmra.model.weights import read_state_dict


@dataclass
class RunState:
    step: int
    optimizer: dict
    rng: torch.Tensor
    record: dict[str, Any]


def save_run_checkpoint(run_dir: Path, name: str, model: QMRA, optimizer: torch.optim.Optimizer, step: int,
                        record: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / f"{name}.state.pt") as temporary:
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, temporary)
    described = {"model": model.config.to_dict(), "step": step, **record}
    # The weights carry their recipe too: a file copied away from its run still says how it was made.
    metadata: dict[str, Any] = {"step": step, "training": described}
    inherited = record.get("inherited_inference")
    if inherited:  # a run from --init recommends what its starting weights recommend (their working size, ...)
        metadata["inference"] = inherited["settings"]
    weights = save_checkpoint(run_dir / f"{name}.safetensors", model, metadata)
    write_text_atomic(run_dir / f"{name}.json", json.dumps(described, indent=2))
    return weights


def load_run_checkpoint(run_dir: Path, name: str, model: QMRA) -> RunState:
    """Load ``name`` into ``model`` (which must have the run's config) and return the rest."""
    record_path = run_dir / f"{name}.json"
    if not record_path.is_file():
        raise QmraError(f"nothing to resume: {record_path} does not exist")
    try:
        record = json.loads(record_path.read_text())
        saved = ModelConfig.from_dict(record["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise QmraError(f"cannot read {record_path}: {error}") from None
    if saved != model.config:
        raise QmraError(f"{run_dir} was trained with another network than asked for "
                        f"({config_differences(saved, model.config)}); give the options that match it")
    load_weights_into(model, read_state_dict(run_dir / f"{name}.safetensors"), str(run_dir / f"{name}.safetensors"))
    try:
        state = torch.load(run_dir / f"{name}.state.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise QmraError(f"cannot read {run_dir / f'{name}.state.pt'}: {error}") from None
    if state["step"] != record["step"]:
        raise QmraError(f"{run_dir}: {name}.json (step {record['step']}) and {name}.state.pt (step {state['step']}) disagree")
    return RunState(int(state["step"]), state["optimizer"], state["rng"], record)
