"""Greyscale video (infrared night cameras, microscopes, old film): recognised from a frame; whether
the weights learned from colour video alone, which follow objects far less well without colour
(their card says); and the warning a run gives (docs/results-history.md). Such weights adapt to a
greyscale video's first boxed frame (:meth:`qmra.inference.adapt.SessionNetworks.steps_for`)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qmra.inference.card import WeightsCard

#: Mean over a frame's pixels of the spread between a pixel's channels under which the frame is
#: greyscale: grey video through JPEG or H.264 keeps its channels within a level or two, while
#: even a dim, washed-out colour video differs by several.
GREY_SPREAD = 1.5


def is_greyscale(frame: np.ndarray) -> bool:
    """Whether an H×W×3 uint8 frame is greyscale: the spread of its pixels' three channels under
    :data:`GREY_SPREAD` levels on average (every 4th pixel of every 4th row is looked at), so that a
    small coloured overlay (a camera's timestamp) leaves it greyscale."""
    sample = frame[::4, ::4].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean()) < GREY_SPREAD


def training_recipe(card: WeightsCard | None) -> Mapping[str, Any] | None:
    """The ``qmra train`` settings the weights were trained with, where their file records them:
    a run's checkpoint (``"training"`` metadata) or a shipped card (its training record)."""
    if card is None:
        return None
    for record in (card.metadata.get("training"), _get(card.details.get("training"), "record")):
        train = _get(record, "train")
        if isinstance(train, Mapping):
            return train
    return None


def _get(mapping: object, key: str) -> object:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


def learned_from_colour_only(card: WeightsCard | None) -> bool:
    """Whether the weights' card records a training recipe without greyscale clips (False where it
    records none: weights of unknown making are not second-guessed)."""
    recipe = training_recipe(card)
    return recipe is not None and not recipe.get("grey_clips", 0)


def greyscale_warning(card: WeightsCard | None, frame: np.ndarray, adapted_steps: int = 0) -> str | None:
    """The warning for a greyscale ``frame`` run with weights that learned from colour video only
    (None: a colour frame, weights that saw greyscale clips, or weights that do not say);
    ``adapted_steps``: the steps the run adapted the network for (``grey_adapt_steps``)."""
    if not learned_from_colour_only(card) or not is_greyscale(frame):
        return None
    if adapted_steps:
        return (f"the video is greyscale, and these weights learned from colour video only: the network was first "
                f"adapted to the frame with the boxes ({adapted_steps} steps), which on greyscale copies of the "
                "validation videos won back most of what greyscale costs; check the overlay, and correct an object "
                "with a box where it goes astray")
    return ("the video is greyscale, and these weights learned from colour video only: masks may spread onto "
            "background of the object's shade (the shipped weights scored J&F 48.7 on greyscale copies of their "
            "real validation videos, 78.5 in colour, without --grey-adapt); check the overlay, and correct an object "
            "with a box where it goes astray")
