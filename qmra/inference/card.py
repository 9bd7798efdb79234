"""A weights file's card: the network it holds, the inference settings it recommends, its scores.

Read once per file and checked when read (:func:`read_card`): a recommended setting this qmra does
not know, or a value it refuses, is a :class:`WeightsError` naming the file, never dropped.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from qmra.errors import ConfigError, WeightsError
from qmra.inference.settings import InferenceSettings
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import load_weights_into, read_checkpoint_config
from qmra.model.weights import read_state_dict

#: The trained weights that ship with qmra (their card: qmra-default.json beside them).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "qmra-default.safetensors"


@dataclass(frozen=True)
class WeightsCard:
    """What a qmra checkpoint says about itself.

    - ``config``: the network;
    - ``recommended``: the inference settings its ``"inference"`` metadata recommends (e.g. the
      working size it was chosen at), as field → value of :class:`InferenceSettings`;
    - ``name``: what the card calls the weights (None: no card);
    - ``scores``: its recorded scores by set (``"validation_scores"``, ``"test_scores"``,
      ``"test_box_baselines"``, ...), each a mapping such as ``{"J&F-Mean": 0.51, ...}``;
    - ``details``: the rest of the card (architecture, training, data split, adaptation seeds, note);
    - ``metadata``: anything else the file's header carries.
    """

    path: Path
    config: ModelConfig
    recommended: Mapping[str, Any]
    name: str | None
    scores: Mapping[str, Mapping[str, Any]]
    details: Mapping[str, Any]
    metadata: Mapping[str, Any]

    @property
    def settings(self) -> InferenceSettings:
        """The reference settings with the recommended ones in place: what these weights run with
        unless told otherwise."""
        return replace(InferenceSettings(), **self.recommended)

    def load_model(self) -> QMRA:
        """The network with these weights, on the CPU, in eval mode (every tensor checked)."""
        model = QMRA(self.config)
        load_weights_into(model, read_state_dict(self.path), str(self.path))
        return model.eval()


def shipped_card() -> WeightsCard:
    """The card of the weights qmra ships, or a :class:`WeightsError` saying they are missing."""
    if not DEFAULT_WEIGHTS.is_file():
        raise WeightsError(f"qmra's shipped weights are missing from this installation ({DEFAULT_WEIGHTS}); "
                           "reinstall qmra, or give other weights (--weights FILE, Segmenter.from_checkpoint(FILE))")
    return read_card(DEFAULT_WEIGHTS)


def read_card(path: str | Path) -> WeightsCard:
    """The card of the weights at ``path``, read once per file version (its header is read again
    only if the file changed)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise WeightsError(f"weights file not found: {path}") from None
    return _read_card(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_card(path: Path, mtime_ns: int, size: int) -> WeightsCard:
    config, metadata = read_checkpoint_config(path)
    recommended = _recommended(path, metadata.get("inference"))
    card = metadata.get("card")
    card = card if isinstance(card, dict) else {}
    scores = {k: v for k, v in card.items() if k.endswith(("_scores", "_baselines")) and isinstance(v, dict)}
    details = {k: v for k, v in card.items() if k not in scores and k not in ("name", "inference")}
    rest = {k: v for k, v in metadata.items() if k not in ("inference", "card")}
    name = card.get("name")
    return WeightsCard(path, config, recommended, name if isinstance(name, str) else None, scores, details, rest)


def _recommended(path: Path, values: object) -> dict[str, Any]:
    """The ``"inference"`` metadata, checked: known fields of :class:`InferenceSettings`, valid values."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise WeightsError(f"{path}: its recommended inference settings are not a mapping: {values!r}")
    known = {f.name for f in fields(InferenceSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise WeightsError(f"{path} recommends inference settings this qmra does not know: {', '.join(unknown)}; "
                           "update qmra, or remove them from the file's \"inference\" metadata")
    try:
        replace(InferenceSettings(), **values)
    except (ConfigError, TypeError) as error:
        raise WeightsError(f"{path}: its recommended inference settings are refused: {error}") from None
    return dict(values)
