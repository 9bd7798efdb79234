"""One video being segmented: prompts, per-object memory, and frame-by-frame propagation."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from qmra.data.boxes import Box, render_box_map
from qmra.data.frames import FrameInfo, FrameSource
from qmra.data.prefetch import prefetch
from qmra.errors import BoxError, QmraError
from qmra.inference.adapt import AdaptationReport, adapt, adapted_copy
from qmra.inference.memory import MemoryBank
from qmra.inference.merge import label_map, soft_aggregate
from qmra.inference.runtime import ModelRuntime
from qmra.inference.threads import choose_threads
from qmra.model import KeyValueMaps, Memory, MemoryFrame, QMRAOutput
from qmra.model.preprocess import Padding

if TYPE_CHECKING:
    from qmra.inference.segmenter import Segmenter

MAX_OBJECT_ID = 255  # label maps are written as 8-bit palette PNGs


@dataclass(frozen=True)
class Prompt:
    """Object ``object_id`` (1..255) starts on frame ``frame`` (>= 0) inside ``box`` (pixels, xyxy)."""

    object_id: int
    frame: int
    box: Box

    def __post_init__(self) -> None:
        object_id, frame = self.object_id, self.frame
        if isinstance(object_id, bool) or not isinstance(object_id, (int, np.integer)) or not 1 <= object_id <= MAX_OBJECT_ID:
            raise QmraError(f"object ids are integers 1..{MAX_OBJECT_ID}, got {object_id!r}")
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
            raise QmraError(f"frame must be an integer >= 0, got {frame!r}")
        if not isinstance(self.box, Box):
            raise QmraError(f"expected a Box, got {self.box!r}")
        object.__setattr__(self, "object_id", int(object_id))
        object.__setattr__(self, "frame", int(frame))


class ProbabilityMaps:
    """One frame's probabilities at the network's working size, on its device; scaled to the
    frame's size and copied to the host only when asked for (most callers need labels only)."""

    def __init__(self, object_ids: list[int], merged: torch.Tensor, own: torch.Tensor, frame_size: tuple[int, int]) -> None:
        self.object_ids = object_ids
        self._merged = merged  # (K+1)×h×w, background first
        self._own = own  # K×h×w
        self.frame_size = frame_size

    def _at_frame_size(self, maps: torch.Tensor) -> np.ndarray:
        if tuple(maps.shape[-2:]) != self.frame_size:
            maps = F.interpolate(maps[None], size=self.frame_size, mode="bilinear", align_corners=False)[0]
        return maps.cpu().numpy()

    def merged(self) -> dict[int, np.ndarray]:
        maps = self._at_frame_size(self._merged[1:])
        return {object_id: maps[slot] for slot, object_id in enumerate(self.object_ids)}

    def own(self) -> dict[int, np.ndarray]:
        maps = self._at_frame_size(self._own)
        return {object_id: maps[slot] for slot, object_id in enumerate(self.object_ids)}


@dataclass
class FrameResult:
    """What :meth:`InferenceSession.propagate` yields for one frame.

    - ``labels``: H×W uint8 map of object ids (0 = background), after merging all objects;
    - ``boxes``: object id → the box the object was tracked to (its given box on its first frame;
      None where it was lost). Only objects started on or before this frame appear.
    - ``image``: the H×W×3 uint8 frame itself (no copy), for overlays;
    - ``confidence``: object id → its mean own probability over the pixels where it exceeds 0.5
      (0.0 where there are none): near 1 for a crisp mask, low for a doubtful one;
    - ``lost``: object id → True where its mask on this frame is empty (lost, or out of view).

    Computed when first used:

    - ``masks``: object id → H×W bool (``labels == id``);
    - ``probabilities``: object id → H×W float32, the merged (softmax) probability of each object;
    - ``object_probabilities``: object id → H×W float32, each object's own probability before merging.
    """

    index: int
    name: str
    labels: np.ndarray
    boxes: dict[int, Box | None]
    image: np.ndarray
    maps: ProbabilityMaps | None = field(default=None, repr=False)
    confidence: dict[int, float] = field(default_factory=dict)
    lost: dict[int, bool] = field(default_factory=dict)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.boxes)

    @cached_property
    def masks(self) -> dict[int, np.ndarray]:
        return {object_id: self.labels == object_id for object_id in self.object_ids}

    @cached_property
    def probabilities(self) -> dict[int, np.ndarray]:
        return {} if self.maps is None else self.maps.merged()

    @cached_property
    def object_probabilities(self) -> dict[int, np.ndarray]:
        return {} if self.maps is None else self.maps.own()


class InferenceSession:
    """Created by :meth:`Segmenter.start`. Add boxes, then iterate :meth:`propagate`.

    Frames are streamed from the source; per-object memory holds keys and values of at most
    ``settings.max_memory_frames`` frames, each encoded once.
    """

    def __init__(self, segmenter: "Segmenter", source: FrameSource) -> None:
        self.segmenter = segmenter
        self.model = segmenter.model
        self.device = segmenter.device
        self.settings = segmenter.settings
        self.source = source
        self.info: FrameInfo = source.info
        self._prompts: dict[int, Prompt] = {}
        self._banks: list[MemoryBank] = []  # one per group of objects that started on the same frame
        self._current_frame = -1  # the last frame propagate() finished, -1 before it starts
        self._propagating = False
        #: Seconds spent in the model (not reading frames) during the last propagate().
        self.model_seconds = 0.0
        self.runtime = ModelRuntime.create(self.model, self.device, self.settings)  # remade when the weights change
        #: Set when test-time adaptation ran (settings.adapt_steps > 0): its cost and losses.
        self.adaptation: AdaptationReport | None = None

    # ------------------------------------------------------------------ prompts

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._prompts)

    def add_box(self, object_id: int, box: Box | Sequence[float] | str, frame: int = 0) -> Box:
        """Mark object ``object_id`` (1..255) with ``box`` (pixels x0, y0, x1, y1) on frame ``frame``.

        The box is clipped to the frame; a box of zero area, not finite, or wholly outside the frame
        is a :class:`BoxError`. Objects may start on any frame. Returns the clipped box.
        """
        if isinstance(box, str):
            box = Box.parse(box)
        elif not isinstance(box, Box):
            box = Box.from_sequence(list(box))
        prompt = Prompt(object_id, frame, box)  # checks the id and the frame
        object_id, frame = prompt.object_id, prompt.frame
        if self.info.num_frames is not None and frame >= self.info.num_frames:
            raise QmraError(f"object {object_id}: frame {frame} is past the end of the video ({self.info.num_frames} frames)")
        if self._propagating and frame <= self._current_frame:
            raise QmraError(f"object {object_id}: frame {frame} was already segmented; add boxes for later frames only")
        if self._bank_of(object_id) is not None:
            raise QmraError(f"object {object_id} is already being tracked; remove it first to give it a new box")
        try:
            box = box.clip(self.info.width, self.info.height)
        except BoxError as error:
            raise BoxError(f"object {object_id}: {error}") from None
        self._prompts[object_id] = Prompt(object_id, frame, box)
        return box

    def remove_object(self, object_id: int) -> None:
        """Forget an object: its box and its memory. It takes no part from the next frame on."""
        if object_id not in self._prompts:
            known = ", ".join(map(str, self.object_ids)) or "none"
            raise QmraError(f"unknown object id {object_id!r} (known: {known})")
        del self._prompts[object_id]
        bank = self._bank_of(object_id)
        if bank is not None:
            bank.remove(object_id)
            if not bank.object_ids:
                self._banks.remove(bank)

    def reset(self) -> None:
        """Forget every object and all memory; the next :meth:`propagate` starts from frame 0."""
        if self._propagating:
            raise QmraError("cannot reset while propagate() is running; finish or close it first")
        self._prompts.clear()
        self._banks.clear()
        self._current_frame = -1

    # ------------------------------------------------------------------ memory introspection

    def memory_frames(self, object_id: int) -> list[int]:
        """The frame indices in ``object_id``'s memory now."""
        bank = self._bank_of(object_id)
        return [] if bank is None else bank.frame_indices

    def memory_nbytes(self) -> int:
        """Bytes of the memory buffers (all objects, allocated slots)."""
        return sum(bank.nbytes() for bank in self._banks)

    def _bank_of(self, object_id: int) -> MemoryBank | None:
        return next((bank for bank in self._banks if object_id in bank.object_ids), None)

    # ------------------------------------------------------------------ propagation

    def propagate(self, progress: bool | None = None) -> Iterator[tuple[int, FrameResult]]:
        """Segment the video from frame 0, yielding ``(frame_index, FrameResult)`` per frame.

        Each call starts over with empty memory (boxes are kept). ``progress`` shows a tqdm bar
        (default: the segmenter's setting). Gradients are never tracked.
        """
        if self._propagating:
            raise QmraError("propagate() is already running on this session")
        if not self._prompts:
            raise QmraError("no objects: call add_box first")
        self._banks.clear()
        self._current_frame = -1
        self._propagating = True
        self.model_seconds = 0.0
        self.model = self.segmenter.model  # an adapted copy from an earlier run is dropped
        self.adaptation = None
        self.runtime = ModelRuntime.create(self.model, self.device, self.settings)
        self.segmenter.threads = choose_threads(self.settings.threads, self.device)  # the machine's load may have changed
        show = self.segmenter.progress if progress is None else progress
        from tqdm import tqdm

        bar = tqdm(total=self.info.num_frames, unit="frame", disable=not show, dynamic_ncols=True, leave=False)
        frames = prefetch(self.source) if self.settings.pipeline else iter(self.source)
        try:
            for index, frame in enumerate(frames):
                started = time.perf_counter()
                result = self._step(index, frame)
                self.model_seconds += time.perf_counter() - started
                self._current_frame = index
                bar.update(1)
                yield index, result
            late = [p for p in self._prompts.values() if p.frame > self._current_frame]
            if late:
                p = late[0]
                raise QmraError(f"object {p.object_id}: frame {p.frame} is past the end of the video ({self._current_frame + 1} frames)")
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # stops the reading thread when the caller leaves early
            bar.close()
            self._propagating = False

    def _step(self, index: int, frame: np.ndarray) -> FrameResult:
        with self.runtime.running():
            return self._predict_frame(index, frame)

    def _predict_frame(self, index: int, frame: np.ndarray) -> FrameResult:
        starting = [p for p in self._prompts.values() if p.frame == index]
        tracked = list(self._banks)  # remove_object drops an object's memory with its prompt
        probabilities: dict[int, torch.Tensor] = {}
        boxes: dict[int, Box | torch.Tensor] = {}
        if starting or tracked:
            prepared, padding, image = self.runtime.network_input(frame, self.settings.working_size(*frame.shape[:2]))
            if starting and self.settings.adapt_steps > 0 and self.adaptation is None and not tracked:
                self._adapt(starting, prepared, padding, image, frame.shape[:2])
            query_features = self.runtime.encode_query(prepared)  # shared by every object of this frame
            if starting:
                self._start_objects(starting, prepared, padding, query_features, probabilities, boxes, frame.shape[:2])
            # Banks holding equally many frames run as one batch (objects that started on the same
            # frame share a bank, so usually one bank is one batch and its memory is read in place).
            groups: dict[int, list[MemoryBank]] = defaultdict(list)
            for bank in tracked:
                groups[bank.num_frames].append(bank)
            for banks in groups.values():
                with record_function("qmra/memory_read"):
                    memory = Memory.concat_objects([bank.memory() for bank in banks])
                output = self.runtime.predict(prepared, padding, memory, query_features)
                entry, box_maps = self.runtime.memory_entry(prepared, padding, output)
                object_probabilities = output.probability()[:, 0]
                row = 0
                for bank in banks:
                    rows = slice(row, row + len(bank.object_ids))
                    with record_function("qmra/memory_read"):
                        bank.add(index, _rows(entry, rows))
                    for slot, object_id in enumerate(bank.object_ids, start=row):
                        probabilities[object_id] = object_probabilities[slot]
                        boxes[object_id] = box_maps[slot, 0]  # turned into a Box after the one transfer to the host
                    row = rows.stop
        with record_function("qmra/merge"):
            return self._merge(index, frame, probabilities, boxes)

    def _adapt(self, prompts: list[Prompt], prepared: torch.Tensor, padding: Padding, image: torch.Tensor,
               frame_size: tuple[int, int]) -> None:
        """Fine-tune a copy of the network on this frame's boxes (the first frame with objects only:
        memories already encoded would not match new weights). Its own first-frame masks inside
        the boxes are the stage-2 pseudo-labels."""
        box_maps, _, output = self._first_frame(prompts, prepared, padding, None, frame_size)
        masks = (output.probability() > 0.5).float() * box_maps
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(self.device.type, enabled=False):
            self.model = adapted_copy(self.model)  # made outside inference mode, so that it can learn
            self.adaptation = adapt(self.model, image[0].clone(), box_maps.clone(), masks.clone(), self.settings.adapt_steps,
                                    self.settings.adapt_lr)
        self.model.eval()
        self.runtime = ModelRuntime.create(self.model, self.device, self.settings)

    def _start_objects(self, prompts: list[Prompt], prepared: torch.Tensor, padding, query_features, probabilities, boxes,
                       frame_size: tuple[int, int]) -> None:
        """Encode each new object's first frame with its box (once: it is both memory and stage-2 query)."""
        _, entry, output = self._first_frame(prompts, prepared, padding, query_features, frame_size)
        object_probabilities = output.probability()[:, 0]
        self._banks.append(MemoryBank([p.object_id for p in prompts], prompts[0].frame, entry, self.settings.mem_every,
                                      self.settings.max_memory_frames))
        for slot, prompt in enumerate(prompts):
            probabilities[prompt.object_id] = object_probabilities[slot]
            boxes[prompt.object_id] = prompt.box

    def _first_frame(self, prompts: list[Prompt], prepared: torch.Tensor, padding: Padding, query_features,
                     frame_size: tuple[int, int]) -> tuple[torch.Tensor, MemoryFrame, QMRAOutput]:
        """The objects' box maps (B×1×h×w at the working size), their first memory entry, and the
        prediction of the frame they start on, given their boxes."""
        size = (padding.height, padding.width)
        box_maps = torch.from_numpy(np.stack([render_box_map(p.box, frame_size, size) for p in prompts]))[:, None].to(self.device)
        entry, output = self.runtime.start(prepared, padding, box_maps, query_features)
        return box_maps, entry, output

    def _merge(self, index: int, frame: np.ndarray, probabilities: dict[int, torch.Tensor],
               boxes: dict[int, Box | torch.Tensor]) -> FrameResult:
        """Merge the objects at the frame's size; everything the host needs crosses over in one go."""
        object_ids = sorted(probabilities)
        name = self.source.frame_name(index)
        if not object_ids:
            return FrameResult(index, name, np.zeros(frame.shape[:2], np.uint8), {}, frame)
        own = torch.stack([probabilities[i] for i in object_ids]).float()
        height, width = frame.shape[:2]
        working = tuple(own.shape[-2:])
        merged = soft_aggregate(own)  # at the working size: a quarter of the pixels at resolution 240
        full = merged if working == (height, width) else F.interpolate(merged[None], size=(height, width), mode="bilinear",
                                                                        align_corners=False)[0]
        labels = label_map(full, object_ids)
        # Confidence: each object's mean own probability where it is confident (p > 0.5), at the working size.
        confident = own > 0.5
        confidence = (own * confident).flatten(1).sum(1) / confident.flatten(1).sum(1).clamp(min=1)
        areas = torch.bincount(labels.flatten().long(), minlength=MAX_OBJECT_ID + 1)
        # A tracked box map's extent: which rows and columns it covers (a few hundred booleans each).
        tracked = [i for i in object_ids if isinstance(boxes[i], torch.Tensor)]
        extents = [(boxes[i].bool().any(dim=1), boxes[i].bool().any(dim=0)) for i in tracked]  # type: ignore[union-attr]
        host = [t.cpu() for t in (labels, confidence, areas, *(e for pair in extents for e in pair))]
        scale = (width / working[1], height / working[0])
        final_boxes = {i: b for i, b in boxes.items() if isinstance(b, Box)}
        for slot, object_id in enumerate(tracked):
            final_boxes[object_id] = _extent_box(host[3 + 2 * slot].numpy(), host[4 + 2 * slot].numpy(), scale)
        maps = ProbabilityMaps(object_ids, merged, own, (height, width))
        scores, area = host[1].tolist(), host[2].numpy()
        return FrameResult(index, name, host[0].numpy(), {i: final_boxes[i] for i in object_ids}, frame, maps,
                           confidence={i: float(scores[slot]) for slot, i in enumerate(object_ids)},
                           lost={i: bool(area[i] == 0) for i in object_ids})


def _rows(entry: MemoryFrame, rows: slice) -> MemoryFrame:
    """Some objects' part of a batched memory entry (views)."""

    def part(maps: KeyValueMaps) -> KeyValueMaps:
        return KeyValueMaps(None if maps.key is None else maps.key[rows], maps.value[rows])

    return MemoryFrame(part(entry.track), None if entry.segment is None else part(entry.segment))


def _extent_box(rows: np.ndarray, cols: np.ndarray, scale: tuple[float, float]) -> Box | None:
    """The box covered by a box map's occupied rows and columns, in frame pixels (None: empty)."""
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    if ys.size == 0 or xs.size == 0:
        return None
    sx, sy = scale
    return Box(xs[0] * sx, ys[0] * sy, (xs[-1] + 1) * sx, (ys[-1] + 1) * sy)
