"""One frame of a run: the objects boxed on it start, the others are tracked from their memory, and
all of them are merged into the frame's labels."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.profiler import record_function

from qmra.data.boxes import Box
from qmra.inference.adapt import SessionNetworks, mask_at
from qmra.inference.boxed import boxed_frame
from qmra.inference.ensemble import Runtime
from qmra.inference.features import FeatureStore, FrameInputs
from qmra.inference.memory import MemoryBank, object_rows
from qmra.inference.merge import merge_frame
from qmra.inference.objects import ObjectTable
from qmra.inference.prompts import Prompt
from qmra.inference.redetect import Redetector, stride16_features
from qmra.inference.results import FrameResult
from qmra.inference.settings import InferenceSettings
from qmra.model import Memory

#: Each object's h×w probability at the working size, and its box: a :class:`Box`, or stage 2's h×w
#: box map on the device until the frame's results reach the host.
Probabilities = dict[int, torch.Tensor]
Boxes = dict[int, Box | torch.Tensor | None]


class FramePredictor:
    """Predicts frames for a session's objects (:class:`ObjectTable`), with its networks and its
    feature store; the session decides which frame, in which run, and what starts there.

    ``time``: the frame's time in the run (frames since it began), which memory schedules count.
    ``name``: the frame's name in the results (``source.frame_name``).
    """

    def __init__(self, objects: ObjectTable, networks: SessionNetworks, features: FeatureStore,
                 settings: InferenceSettings, name: Callable[[int], str]) -> None:
        self.objects = objects
        self.networks = networks
        self.features = features
        self.settings = settings
        self.name = name
        #: Each object's look on its boxed frame, to find it again where lost (``settings.redetect``).
        self.redetector = Redetector() if settings.redetect else None
        #: The objects found again by their look on the frame just predicted (``settings.redetect``).
        self.found: set[int] = set()

    def frame(self, index: int, time: int, frame: np.ndarray, starting: list[Prompt],
              before_wait: Callable[[], None] | None = None) -> tuple[FrameResult, Probabilities, Boxes]:
        """Frame ``index`` (H×W×3 uint8): ``starting`` objects (re)start from their boxes, the
        tracked ones go on; the result, and each object's probability and box for a later redo.
        ``before_wait``: work to queue once the results are on their way to the host."""
        for prompt in starting:
            self.objects.remove(prompt.object_id)  # a correction: the object restarts from its new box
        batches = self.objects.batches()  # before this frame's new objects get their banks
        self.found = set()
        probabilities: Probabilities = {}
        boxes: Boxes = {}
        if starting or batches:
            inputs = self.features.inputs(index, frame, self.networks.runtime)
            if starting:
                # Before the query is encoded: the run's first objects adapt the session's own network.
                runtime = self.networks.for_start(index, starting, inputs, frame, bool(batches))
                self._start(index, time, starting, runtime, inputs, probabilities, boxes, frame.shape[:2])
            for banks in batches:
                for runtime, group in self.networks.by_network(banks):
                    self._track(index, time, group, runtime, inputs, probabilities, boxes)
        with record_function("qmra/merge"):
            result = merge_frame(index, self.name(index), frame, probabilities, boxes, before_wait,
                                 boxed=[prompt.object_id for prompt in starting], min_piece=self.settings.min_piece,
                                 given=given_masks(starting))
        # The boxes as the host has them: the box maps on the device may be a compiled graph's
        # outputs, which its next replay overwrites.
        return result, probabilities, {i: result.boxes[i] for i in boxes}

    def forget(self, object_id: int) -> None:
        """An object removed from the session: what is kept of it here (its look) goes too."""
        if self.redetector is not None:
            self.redetector.forget(object_id)

    def encode_ahead(self, index: int, frame: np.ndarray, starting: bool) -> None:
        """Queue frame ``index``'s input and query encoding on the device, where the next frame will
        surely use them: objects are tracked and none ``starting`` there (a start may adapt the
        network first)."""
        if self.objects.banks and not starting:
            self.features.inputs(index, frame, self.networks.runtime)
            self.features.query(index, self.networks.runtime)

    def restart(self, index: int, time: int, frame: np.ndarray, prompt: Prompt, probabilities: Probabilities,
                boxes: Boxes) -> FrameResult:
        """A box added on the frame just done: (re)start that object there; ``probabilities`` and
        ``boxes`` hold the other objects' (and get the object's)."""
        self.objects.remove(prompt.object_id)
        inputs = self.features.inputs(index, frame, self.networks.runtime)
        runtime = self.networks.for_start(index, [prompt], inputs, frame, bool(self.objects.banks))
        self._start(index, time, [prompt], runtime, inputs, probabilities, boxes, frame.shape[:2])
        with record_function("qmra/merge"):
            return merge_frame(index, self.name(index), frame, probabilities, boxes, boxed=[prompt.object_id],
                               min_piece=self.settings.min_piece, given=given_masks([prompt]))

    def preview(self, index: int, frame: np.ndarray, prompts: list[Prompt]) -> FrameResult:
        """Frame ``index`` with the objects of ``prompts``, from their boxes alone (no memory is kept)."""
        probabilities: Probabilities = {}
        boxes: Boxes = {}
        inputs = self.features.inputs(index, frame, self.networks.runtime)
        _, object_probabilities = boxed_frame(self.networks.runtime, prompts, inputs, None, frame.shape[:2])
        for slot, prompt in enumerate(prompts):
            probabilities[prompt.object_id] = object_probabilities[slot]
            boxes[prompt.object_id] = prompt.box
        with record_function("qmra/merge"):
            return merge_frame(index, self.name(index), frame, probabilities, boxes,
                               boxed=[prompt.object_id for prompt in prompts], min_piece=self.settings.min_piece,
                               given=given_masks(prompts))

    def _start(self, index: int, time: int, prompts: list[Prompt], runtime: Runtime, inputs: FrameInputs,
               probabilities: Probabilities, boxes: Boxes, frame_size: tuple[int, int]) -> None:
        """Encode each new object's first frame with its box (once: it is both memory and stage-2 query)
        on the network they run with (``runtime``), and give them a memory bank."""
        query = self.features.query(index, runtime)
        entry, object_probabilities = boxed_frame(runtime, prompts, inputs, query, frame_size)
        if self.redetector is not None:
            self.redetector.remember([p.object_id for p in prompts], stride16_features(query),
                                     first_masks(prompts, object_probabilities), inputs.padding)
        bank = MemoryBank([p.object_id for p in prompts], time, entry, self.settings.mem_every,
                          self.settings.max_memory_frames, static=runtime.static_memory,
                          previous_every=self.settings.previous_every)
        self.objects.add(bank)
        self.networks.assign(bank, runtime)
        for slot, prompt in enumerate(prompts):
            probabilities[prompt.object_id] = object_probabilities[slot]
            boxes[prompt.object_id] = prompt.box

    def _track(self, index: int, time: int, banks: list[MemoryBank], runtime: Runtime, inputs: FrameInputs,
               probabilities: Probabilities, boxes: Boxes) -> None:
        """Predict the objects of ``banks`` (equally many memory frames, one network: one batch)."""
        with record_function("qmra/memory_read"):
            memory = Memory.concat_objects([bank.memory() for bank in banks])
        query = self.features.query(index, runtime)
        output, entry, box_maps = runtime.track(inputs.prepared, inputs.padding, memory, query)
        object_probabilities = output.probability()[:, 0]
        if self.redetector is not None:
            ids = [object_id for bank in banks for object_id in bank.object_ids]
            found = self.redetector.priors(ids, object_probabilities, box_maps, stride16_features(query), inputs.padding)
            if found is not None:  # lost objects found again: stage 2 runs again with their boxes
                priors, slots = found
                self.found.update(ids[slot] for slot in slots)
                output, entry, box_maps = runtime.track(inputs.prepared, inputs.padding, memory, query, priors)
                object_probabilities = output.probability()[:, 0]
        row = 0
        for bank in banks:
            rows = slice(row, row + len(bank.object_ids))
            with record_function("qmra/memory_read"):
                bank.add(time, object_rows(entry, rows))
            for slot, object_id in enumerate(bank.object_ids, start=row):
                probabilities[object_id] = object_probabilities[slot]
                boxes[object_id] = box_maps[slot, 0]  # turned into a Box after the one transfer to the host
            row = rows.stop


def first_masks(prompts: list[Prompt], probabilities: torch.Tensor) -> torch.Tensor:
    """The objects' B×h×w masks (0/1) on the frame they start on, at the working size of their B×h×w
    ``probabilities``: the given mask where there is one, else the network's (p > 0.5)."""
    masks = (probabilities > 0.5).float()
    for slot, prompt in enumerate(prompts):
        if prompt.mask is not None:
            resized = mask_at(prompt.mask, masks.shape[-2:], masks) > 0.5
            if bool(resized.any()):  # a mask too small to keep a pixel at the working size: the network's
                masks[slot] = resized.float()
    return masks


def given_masks(prompts: list[Prompt]) -> dict[int, np.ndarray]:
    """The masks given with ``prompts`` (H×W bool), by object id."""
    return {prompt.object_id: prompt.mask for prompt in prompts if prompt.mask is not None}
