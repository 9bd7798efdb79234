"""A frame's network input and query encodings, made once and shared by every object on the frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from qmra.inference.encode_batch import QueryBatcher
from qmra.inference.ensemble import Runtime
from qmra.inference.settings import InferenceSettings
from qmra.inference.staging import FrameStaging
from qmra.model.preprocess import Padding


@dataclass(frozen=True)
class FrameInputs:
    """A frame as the networks take it: ``prepared`` (1×3×h'×w', normalised and padded), its
    ``padding``, and ``image``, the 1×3×h×w RGB frame in [0, 1] at the working size."""

    prepared: torch.Tensor
    padding: Padding
    image: torch.Tensor


@dataclass
class _Entry:
    index: int
    inputs: FrameInputs
    encodings: dict[int, tuple[Runtime, object]] = field(default_factory=dict)  # id(runtime) → (runtime, features)


class FeatureStore:
    """The input and the query encoding (one per network: the session's, an adapted copy's) of the
    frame a session works on, keyed by (frame, network). With a ``batcher``, the query encoding is
    made together with other sessions' frames (:mod:`qmra.inference.encode_batch`).

    Only the latest frame is held: a compiled network's outputs and the device's staging buffers are
    overwritten by the next frame's, so holding more would hand back stale tensors. A session that
    encodes the next frame ahead (on CUDA, while the host finishes this one) therefore drops this
    one's; a box added on it later encodes it again, to the same values.
    """

    def __init__(self, settings: InferenceSettings, device: torch.device, batcher: QueryBatcher | None = None) -> None:
        self.settings = settings
        self._batcher = batcher
        self._staging = FrameStaging(device)
        self._entry: _Entry | None = None

    def inputs(self, index: int, frame: np.ndarray, runtime: Runtime) -> FrameInputs:
        """Frame ``index`` (H×W×3 uint8 ``frame``) at the working size, made with ``runtime``'s
        normalisation the first time it is asked for."""
        if self._entry is None or self._entry.index != index:
            prepared, padding, image = runtime.network_input(frame, self.settings.working_size(*frame.shape[:2]),
                                                             self._staging)
            self._entry = _Entry(index, FrameInputs(prepared, padding, image))
        assert self._entry is not None
        return self._entry.inputs

    def query(self, index: int, runtime: Runtime):
        """Frame ``index``'s query encoding on ``runtime``'s network (its input must be held)."""
        entry = self._entry
        assert entry is not None and entry.index == index, "query() needs the frame's inputs() first"
        if id(runtime) not in entry.encodings:
            prepared = entry.inputs.prepared
            encoded = self._batcher.encode(runtime, prepared) if self._batcher else runtime.encode_query(prepared)
            entry.encodings[id(runtime)] = (runtime, encoded)
        return entry.encodings[id(runtime)][1]

    def clear(self) -> None:
        self._entry = None
