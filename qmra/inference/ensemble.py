"""Several adapted copies of the network following the same objects (``--ensemble N``).

Test-time adaptation draws random views of the first frame, and which views it draws moves a
video's result by several points (docs/results-history.md): the adapted network either holds the object
or loses it. N copies adapted with different seeds each follow the objects on their own — their
own stage-1 box, their own memory — and the prediction of every frame is the mean of their
probabilities, so one copy that loses the object is outvoted by the others.

The copies do not share a box. Making them agree on one stage-2 box per frame (the tight box of
their mean stage-1 map) scored lower on validation: 54.6 / 48.6 / 46.9 (50.0) against
56.7 / 49.6 / 45.1 (50.5) for copies left alone, on the same adaptation draws (docs/results-history.md):
a shared box carries one copy's drift into all of them.

A copy's keys and values mean something only to that copy, so each keeps its own memory. The
session's memory banks hold them side by side along the channels (an entry of N·C channels): the
banks, their schedule and their cap work unchanged; the memory is N times as large, and so is the
work per frame.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch

from qmra.inference.memory import shares_values
from qmra.inference.runtime import ModelRuntime
from qmra.inference.staging import FrameStaging
from qmra.model import BackboneFeatures, KeyValueMaps, Memory, MemoryFrame, QMRAOutput
from qmra.model.preprocess import Padding
from qmra.model.prior import rectangle_prior
from qmra.model.qma import MemoryTokens

#: Probabilities are kept this far from 0 and 1 when written back as logits.
_EPSILON = 1e-6


@dataclass(frozen=True)
class EnsembleRuntime:
    """N :class:`ModelRuntime` s of the same architecture (copies of one network adapted with
    different seeds) that the session calls as one: the same methods, their mean prediction.

    Query features are a tuple (one per copy); memory entries carry the copies' keys and values
    side by side along the channels (see the module docstring). Not compiled: ``--compile`` takes
    one network.
    """

    members: tuple[ModelRuntime, ...]

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"an ensemble needs at least 2 networks, got {len(self.members)}")

    @property
    def static_memory(self) -> bool:
        return False

    def running(self) -> AbstractContextManager[None]:
        return self.members[0].running()  # the same device and precision for every copy

    def network_input(self, frame: np.ndarray, size: tuple[int, int],
                      staging: FrameStaging | None = None) -> tuple[torch.Tensor, Padding, torch.Tensor]:
        return self.members[0].network_input(frame, size, staging)

    def encode_query(self, prepared: torch.Tensor) -> tuple[BackboneFeatures, ...]:
        return tuple(member.encode_query(prepared) for member in self.members)

    def start(self, prepared: torch.Tensor, padding: Padding, box_maps: torch.Tensor,
              query_features: tuple[BackboneFeatures, ...] | None) -> tuple[MemoryFrame, QMRAOutput]:
        """Objects' first frame given their B×1×h×w box maps: every copy starts from the user's box."""
        features = query_features or (None,) * len(self.members)
        started = [member.start(prepared, padding, box_maps, f) for member, f in zip(self.members, features)]
        outputs = [output for _, output in started]
        return join_entries([entry for entry, _ in started]), mean_output(outputs)

    def track(self, prepared: torch.Tensor, padding: Padding, memory: Memory,
              query_features: tuple[BackboneFeatures, ...],
              prior: torch.Tensor | None = None) -> tuple[QMRAOutput, MemoryFrame, torch.Tensor]:
        """A tracked frame: the copies' mean prediction, their memory entries (side by side, each
        encoded with the copy's own box, or all with ``prior``'s B×1×h×w box maps where given) and the
        B×1×h×w tight boxes of the mean mask (p > 0.5)."""
        tracked = [member.track(prepared, padding, own, f, prior)
                   for member, own, f in zip(self.members, split_memory(memory, len(self.members)), query_features)]
        output = mean_output([output for output, _, _ in tracked])
        return output, join_entries([entry for _, entry, _ in tracked]), rectangle_prior(output.probability())


def as_logits(probability: torch.Tensor) -> torch.Tensor:
    """B×1×H×W object probability → B×2×H×W logits (background, object) whose softmax gives it back."""
    p = probability.float().clamp(_EPSILON, 1 - _EPSILON)
    return torch.cat([torch.log1p(-p), torch.log(p)], dim=1)


def mean_output(outputs: list[QMRAOutput]) -> QMRAOutput:
    """The copies' predictions → one whose :meth:`QMRAOutput.probability` is their mean."""
    probability = torch.stack([o.probability().float() for o in outputs]).mean(0)
    return QMRAOutput(mask_logits=as_logits(probability), track_target=outputs[0].track_target)


def join_entries(entries: list[MemoryFrame]) -> MemoryFrame:
    """The copies' entries of one frame (B×C×h×w each) → one entry of B×N·C×h×w, copy by copy; where
    every copy's stages share their values (the encoder's features), the joined stages share theirs."""

    def join(maps: list[KeyValueMaps]) -> KeyValueMaps:
        key = None if maps[0].key is None else torch.cat([m.key for m in maps], dim=1)  # type: ignore[misc]
        return KeyValueMaps(key, torch.cat([m.value for m in maps], dim=1))

    track = join([e.track for e in entries])
    segment = None if entries[0].segment is None else join([e.segment for e in entries])  # type: ignore[misc]
    if segment is not None and all(shares_values(e) for e in entries):
        # Each copy keeps its encoder's features once for both stages: so do the copies side by side.
        segment = KeyValueMaps(segment.key, track.value)
    return MemoryFrame(track, segment)


def split_memory(memory: Memory, copies: int) -> list[Memory]:
    """A memory whose tokens hold ``copies`` copies' channels side by side → one memory per copy (views)."""

    def split(tokens: MemoryTokens) -> list[MemoryTokens]:
        keys = [None] * copies if tokens.key is None else list(tokens.key.chunk(copies, dim=-1))
        return [MemoryTokens(k, v, tokens.empty) for k, v in zip(keys, tokens.value.chunk(copies, dim=-1))]

    tracks = split(memory.track)
    segments = [None] * copies if memory.segment is None else split(memory.segment)
    return [Memory(t, s, memory.frame_tokens) for t, s in zip(tracks, segments)]


#: What the session runs objects with: one network, or an ensemble of adapted copies.
Runtime = ModelRuntime | EnsembleRuntime
