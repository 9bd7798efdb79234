"""One video being segmented: prompts, per-object memory, and frame-by-frame propagation."""

from __future__ import annotations

import itertools
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

from qmra.data.boxes import Box, render_box_map
from qmra.data.frames import FrameInfo, FrameSource
from qmra.data.prefetch import prefetch
from qmra.errors import BoxError, QmraError
from qmra.inference.adapt import AdaptationReport, adapt, adapted_copy, average_weights
from qmra.inference.boxed import hold_to_box
from qmra.inference.ensemble import EnsembleRuntime, Runtime
from qmra.inference.memory import MemoryBank
from qmra.inference.merge import label_map, soft_aggregate
from qmra.inference.objects import ObjectTable
from qmra.inference.results import FrameResult, ProbabilityMaps
from qmra.inference.runtime import ModelRuntime
from qmra.inference.staging import FrameStaging
from qmra.model import QMRA, KeyValueMaps, Memory, MemoryFrame, QMRAOutput
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


@dataclass
class _Pass:
    """One run over the video, forwards or backwards, from frame ``first``. Memory schedules count
    time in frames since the pass began, so a backward pass keeps the paper's schedule."""

    first: int
    reverse: bool = False
    cursor: int | None = None  # the last frame done in this pass

    def time(self, index: int) -> int:
        return self.first - index if self.reverse else index - self.first

    def frame(self, time: int) -> int:
        return self.first - time if self.reverse else self.first + time

    def done(self, index: int) -> bool:
        """Whether ``index`` was already passed (frames are done in pass order)."""
        if self.cursor is None:
            return False
        return index >= self.cursor if self.reverse else index <= self.cursor

    @property
    def next(self) -> int:
        if self.cursor is None:
            return self.first
        return self.cursor - 1 if self.reverse else self.cursor + 1


@dataclass
class _Frame:
    """The frame just predicted, kept so that a box added on it redoes only that object."""

    index: int
    image: np.ndarray
    inputs: tuple[torch.Tensor, Padding, torch.Tensor] | None  # None: no object was on it
    query_features: object
    probabilities: dict[int, torch.Tensor]
    boxes: dict[int, Box | torch.Tensor | None]


@dataclass
class _Ahead:
    """The next frame's query encoding, queued on the device before the frame before it was
    handed back (so the device works while the host finishes that frame)."""

    index: int
    runtime: Runtime
    inputs: tuple[torch.Tensor, Padding, torch.Tensor]
    query_features: object


class InferenceSession:
    """Created by :meth:`Segmenter.start`. Add boxes, then iterate :meth:`propagate` (forwards or
    backwards from any frame), or drive the loop yourself with :meth:`step`.

    - :meth:`add_box` marks an object on a frame and returns that frame's prediction; a box for an
      object already tracked corrects it from that frame on.
    - Per-object memory holds keys and values of at most ``settings.max_memory_frames`` frames,
      each encoded once; :attr:`objects` maps object ids to their memory's tensor rows.
    - Sources that can seek (files, folders, frames in a list or array) can be run from any frame
      and backwards; one-pass streams run forwards once and say so otherwise.
    """

    def __init__(self, segmenter: "Segmenter", source: FrameSource) -> None:
        self.segmenter = segmenter
        self.model = segmenter.model
        self.device = segmenter.device
        self.settings = segmenter.settings
        self.source = source
        self.info: FrameInfo = source.info
        self._prompts: dict[int, dict[int, Prompt]] = {}  # object id → frame → its box there
        self.objects = ObjectTable()
        self._pass: _Pass | None = None
        self._last: _Frame | None = None
        self._propagating = False
        #: Seconds spent in the model (not reading frames) during the last propagate().
        self.model_seconds = 0.0
        #: The networks following the first frame's objects: the segmenter's own, or its adapted copies
        #: (``settings.copies`` of them; :attr:`model` is the first).
        self.models: tuple[QMRA, ...] = (self.model,)
        self.runtime: Runtime = ModelRuntime.create(self.model, self.device, self.settings)
        #: Set when test-time adaptation ran (settings.adapt_steps > 0): its cost and losses on the run's
        #: first frame with objects (whose adapted network is :attr:`model`).
        self.adaptation: AdaptationReport | None = None
        #: Every adaptation of the run, by the frame it adapted to: the first, and one per later frame
        #: where objects start (each such group gets its own adapted copy of the segmenter's network).
        self.adaptations: dict[int, AdaptationReport] = {}
        # The network a memory bank's objects run with, where it is not :attr:`runtime` (objects
        # that started after the first adaptation, each group on a copy adapted to its own frame).
        self._bank_runtimes: weakref.WeakKeyDictionary[MemoryBank, Runtime] = weakref.WeakKeyDictionary()
        #: Whether :meth:`propagate` queues each next frame's query encoding before waiting for a
        #: frame's results: on devices that run asynchronously (CUDA), where the host's work between
        #: two frames would otherwise leave the device idle. Results are the same either way.
        self.lookahead = self.device.type == "cuda"
        self._ahead: _Ahead | None = None
        self._staging = FrameStaging(self.device)

    # ------------------------------------------------------------------ prompts

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._prompts)

    def prompts(self, object_id: int) -> list[Prompt]:
        """The boxes given for ``object_id``, by frame."""
        return [self._prompts[object_id][f] for f in sorted(self._prompts.get(object_id, {}))]

    def add_box(self, object_id: int, box: Box | Sequence[float] | str, frame: int = 0,
                predict: bool = True) -> FrameResult | None:
        """Mark object ``object_id`` (1..255) with ``box`` (pixels x0, y0, x1, y1) on frame ``frame``,
        and return that frame's prediction (None with ``predict=False``, or where the frame cannot be
        read now: a one-pass stream not yet there).

        The box is clipped to the frame; a box of zero area, not finite, or wholly outside the frame
        is a :class:`BoxError`. Objects may start on any frame. A box for an object that already has
        one *corrects* it: from that frame on (in the direction of the run) the object restarts from
        the new box, its earlier memory dropped.

        The prediction holds every object the session can place on that frame at once: all objects
        when the frame is the one :meth:`step` or :meth:`propagate` just did, or the next one (it is
        then done, and stepping goes on after it); otherwise the objects boxed on that frame.
        """
        if isinstance(box, str):
            box = Box.parse(box)
        elif not isinstance(box, Box):
            box = Box.from_sequence(list(box))
        prompt = Prompt(object_id, frame, box)  # checks the id and the frame
        object_id, frame = prompt.object_id, prompt.frame
        if self.info.num_frames is not None and frame >= self.info.num_frames:
            raise QmraError(f"object {object_id}: frame {frame} is past the end of the video ({self.info.num_frames} frames)")
        run = self._pass
        redo = run is not None and self._last is not None and frame == self._last.index and not self._propagating
        if run is not None and run.done(frame) and not redo:
            raise QmraError(f"object {object_id}: frame {frame} was already segmented in this run; add boxes on the "
                            "frame just done or later ones, or propagate again")
        try:
            box = box.clip(self.info.width, self.info.height)
        except BoxError as error:
            raise BoxError(f"object {object_id}: {error}") from None
        self._prompts.setdefault(object_id, {})[frame] = Prompt(object_id, frame, box)
        if not predict or self._propagating:
            return None
        if redo:
            return self._redo_last(object_id)
        if run is not None and not run.reverse and frame == run.next and self.source.seekable:
            return self.step(self.source.read(frame))
        if not self.source.seekable:
            return None
        return self._preview(frame)

    def remove_object(self, object_id: int) -> None:
        """Forget an object: its boxes and its memory. It takes no part from the next frame on."""
        if object_id not in self._prompts:
            known = ", ".join(map(str, self.object_ids)) or "none"
            raise QmraError(f"unknown object id {object_id!r} (known: {known})")
        del self._prompts[object_id]
        self.objects.remove(object_id)

    def reset(self) -> None:
        """Forget every object and all memory; the next :meth:`propagate` or :meth:`step` starts over."""
        if self._propagating:
            raise QmraError("cannot reset while propagate() is running; finish or close it first")
        self._prompts.clear()
        self.objects.clear()
        self._pass = None
        self._last = None

    # ------------------------------------------------------------------ memory introspection

    def memory_frames(self, object_id: int) -> list[int]:
        """The frame indices in ``object_id``'s memory now."""
        bank = self.objects.bank_of(object_id)
        if bank is None or self._pass is None:
            return []
        return sorted(self._pass.frame(t) for t in bank.frame_indices)

    def memory_nbytes(self) -> int:
        """Bytes of the memory buffers (all objects, allocated slots)."""
        return self.objects.nbytes()

    # ------------------------------------------------------------------ propagation

    def propagate(self, start: int | None = None, reverse: bool = False,
                  progress: bool | None = None) -> Iterator[tuple[int, FrameResult]]:
        """Segment the video from frame ``start`` (default: the first frame, or the last one with
        ``reverse``) to its end (or back to frame 0), yielding ``(frame_index, FrameResult)`` per frame.

        Each call starts over with empty memory (boxes are kept). Objects start on their box's frame
        in the run's direction; an object boxed only before ``start`` (after it, in reverse) is
        followed from its box without yielding the frames before ``start``. ``progress`` shows a tqdm
        bar (default: the segmenter's setting). Gradients are never tracked.
        """
        if self._propagating:
            raise QmraError("propagate() is already running on this session")
        if not self._prompts:
            raise QmraError("no objects: call add_box first")
        count = self.info.num_frames
        if reverse or start:
            if not self.source.seekable:
                raise QmraError(f"{self.source.description} is read once, front to back (a stream): it cannot be "
                                f"propagated {'backwards' if reverse else f'from frame {start}'}")
            if count is None:
                raise QmraError(f"{self.source.description} does not say how many frames it has: it can only be "
                                "propagated from the start, forwards")
        boxed = [f for frames in self._prompts.values() for f in frames]
        if reverse:
            start = count - 1 if start is None else start  # type: ignore[operator]
            first = max(start, max(boxed))
            indices: Sequence[int] = range(first, -1, -1)
        else:
            start = 0 if start is None else start
            first = min(start, min(boxed))
            # From frame 0 the source streams (as many frames as it really has); from later, it seeks.
            indices = range(first, count) if first else itertools.count()  # type: ignore[arg-type]
        if count is not None and not 0 <= start < count:
            raise QmraError(f"start frame {start} is outside the video (frames 0..{count - 1})")
        self._begin(_Pass(first, reverse))
        self._propagating = True
        show = self.segmenter.progress if progress is None else progress
        from tqdm import tqdm

        yielded = (start + 1) if reverse else (count - start if count is not None else None)
        bar = tqdm(total=yielded, unit="frame", disable=not show, dynamic_ncols=True, leave=False)
        source: Iterable[np.ndarray] = self.source.frames(indices) if (reverse or first) else self.source
        frames = prefetch(source) if self.settings.pipeline else iter(source)
        pairs = zip(indices, frames)
        try:
            upcoming = next(pairs, None)
            while upcoming is not None:
                index, frame = upcoming
                upcoming, unreadable = None, None
                if self.lookahead:
                    try:
                        upcoming = next(pairs, None)
                    except Exception as error:  # raised once this frame, which could be read, is handed back
                        upcoming, unreadable = None, error
                result = self._advance(index, frame, upcoming)
                if (index <= start) if reverse else (index >= start):
                    bar.update(1)
                    yield index, result
                if unreadable is not None:
                    raise unreadable
                if not self.lookahead:
                    upcoming = next(pairs, None)
            self._check_late_prompts()
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # stops the reading thread when the caller leaves early
            bar.close()
            self._propagating = False
            self._drop_ahead()

    def step(self, image: np.ndarray) -> FrameResult:
        """Segment the next frame of a forward run, for callers that own the frame loop (a stream, a
        GUI): the first call starts a run at frame 0 with empty memory, each call is one frame.
        ``image``: H×W×3 uint8, the frame's pixels."""
        if self._propagating:
            raise QmraError("step() cannot run while propagate() is running")
        if self._pass is None or self._pass.reverse:
            self._begin(_Pass(0))
        assert self._pass is not None
        image = np.asarray(image)
        if image.shape != (self.info.height, self.info.width, 3) or image.dtype != np.uint8:
            raise QmraError(f"step() takes the video's {self.info.width}x{self.info.height} frames as H×W×3 uint8 arrays, "
                            f"got {image.dtype} {image.shape}")
        return self._advance(self._pass.next, image)

    def _begin(self, run: _Pass) -> None:
        """A new run: empty memory, the segmenter's own network (an adapted copy is remade), the thread
        count for the machine's load now."""
        self.objects.clear()
        self._pass = run
        self._last = None
        self._ahead = None
        self.model_seconds = 0.0
        self.model = self.segmenter.model
        self.models = (self.model,)
        self.adaptation = None
        self.adaptations = {}
        self._bank_runtimes = weakref.WeakKeyDictionary()
        self.runtime = ModelRuntime.create(self.model, self.device, self.settings)
        self.segmenter.refresh_threads()  # the machine's load may have changed

    def _advance(self, index: int, frame: np.ndarray, upcoming: tuple[int, np.ndarray] | None = None) -> FrameResult:
        """Predict frame ``index`` of the current run and move the run on to it; ``upcoming``: the
        next frame (index, pixels), whose query encoding is queued before this frame's results are
        waited for."""
        assert self._pass is not None
        started = time.perf_counter()
        with self.runtime.running():
            result = self._predict_frame(index, frame, upcoming)
        self.model_seconds += time.perf_counter() - started
        self._pass.cursor = index
        return result

    def _check_late_prompts(self) -> None:
        """Boxes on frames a forward run never reached: past the end of the video."""
        run = self._pass
        if run is None or run.reverse or run.cursor is None:
            return
        late = [p for frames in self._prompts.values() for p in frames.values() if p.frame > run.cursor]
        if late:
            p = late[0]
            raise QmraError(f"object {p.object_id}: frame {p.frame} is past the end of the video ({run.cursor + 1} frames)")

    def _starting(self, index: int) -> list[Prompt]:
        """The boxes on frame ``index``: objects that start there, or restart (a correction)."""
        return [frames[index] for _, frames in sorted(self._prompts.items()) if index in frames]

    def _predict_frame(self, index: int, frame: np.ndarray, upcoming: tuple[int, np.ndarray] | None = None) -> FrameResult:
        assert self._pass is not None
        starting = self._starting(index)
        for prompt in starting:
            self.objects.remove(prompt.object_id)  # a correction: the object restarts from its new box
        batches = self.objects.batches()  # before this frame's new objects get their banks
        probabilities: dict[int, torch.Tensor] = {}
        boxes: dict[int, Box | torch.Tensor] = {}
        inputs, query_features = None, None
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.index != index:
            ahead = None
        if starting or batches:
            inputs = ahead.inputs if ahead is not None else self.runtime.network_input(
                frame, self.settings.working_size(*frame.shape[:2]), self._staging)
            prepared, padding, image = inputs
            # Before the query is encoded: the run's first objects adapt the session's own network.
            start_runtime = self._network_for(index, starting, inputs, frame.shape[:2], bool(batches)) if starting else None
            # Shared by every object of this frame on that network.
            query_features = (ahead.query_features if ahead is not None and ahead.runtime is self.runtime
                              else self.runtime.encode_query(prepared))
            features = {id(self.runtime): query_features}
            if starting:
                assert start_runtime is not None
                start_features = self._features(start_runtime, prepared, features)
                self._start_objects(index, starting, start_runtime, prepared, padding, start_features, probabilities, boxes,
                                    frame.shape[:2])
            for banks in batches:
                for runtime, group in self._by_network(banks):
                    self._track(index, group, runtime, prepared, padding, self._features(runtime, prepared, features),
                                probabilities, boxes)
        self._last = _Frame(index, frame, inputs, query_features, probabilities, boxes)
        with record_function("qmra/merge"):
            result = self._merge(index, frame, probabilities, boxes,
                                 before_wait=None if upcoming is None else lambda: self._encode_ahead(*upcoming))
        # The boxes as the host has them: the box maps on the device may be a compiled graph's
        # outputs, which its next replay overwrites.
        self._last.boxes = {i: result.boxes[i] for i in boxes}
        return result

    def _encode_ahead(self, index: int, frame: np.ndarray) -> None:
        """Queue frame ``index``'s input and query encoding on the device (:attr:`lookahead`), where
        the next frame will surely use them: objects are tracked and none starts there (a start
        may adapt the network first)."""
        if not self.objects.banks or self._starting(index):
            return
        inputs = self.runtime.network_input(frame, self.settings.working_size(*frame.shape[:2]), self._staging)
        self._ahead = _Ahead(index, self.runtime, inputs, self.runtime.encode_query(inputs[0]))

    def _drop_ahead(self) -> None:
        """A run left with the next frame's encoding queued (the caller stopped early): the last
        frame's own encoding may be overwritten by it (a compiled graph's outputs), so a box added
        on that frame encodes it again."""
        if self._ahead is not None and self._last is not None:
            self._last.inputs, self._last.query_features = None, None
        self._ahead = None

    def _features(self, runtime: Runtime, prepared: torch.Tensor, done: dict[int, object]):
        """The query encoding of this frame on ``runtime``'s network, made once per network per frame."""
        if id(runtime) not in done:
            done[id(runtime)] = runtime.encode_query(prepared)
        return done[id(runtime)]

    def _by_network(self, banks: list[MemoryBank]) -> list[tuple[Runtime, list[MemoryBank]]]:
        """A batch of banks split by the network their objects run with (one group unless objects
        started on frames after the first adaptation)."""
        groups: dict[int, tuple[Runtime, list[MemoryBank]]] = {}
        for bank in banks:
            runtime = self._bank_runtimes.get(bank, self.runtime)
            groups.setdefault(id(runtime), (runtime, []))[1].append(bank)
        return list(groups.values())

    def _track(self, index: int, banks: list[MemoryBank], runtime: Runtime, prepared: torch.Tensor, padding: Padding,
               query_features, probabilities: dict[int, torch.Tensor], boxes: dict[int, Box | torch.Tensor]) -> None:
        """Predict the objects of ``banks`` (equally many memory frames, one network: one batch) and store the frame."""
        assert self._pass is not None
        with record_function("qmra/memory_read"):
            memory = Memory.concat_objects([bank.memory() for bank in banks])
        output, entry, box_maps = runtime.track(prepared, padding, memory, query_features)
        object_probabilities = output.probability()[:, 0]
        row = 0
        for bank in banks:
            rows = slice(row, row + len(bank.object_ids))
            with record_function("qmra/memory_read"):
                bank.add(self._pass.time(index), _rows(entry, rows))
            for slot, object_id in enumerate(bank.object_ids, start=row):
                probabilities[object_id] = object_probabilities[slot]
                boxes[object_id] = box_maps[slot, 0]  # turned into a Box after the one transfer to the host
            row = rows.stop

    def _redo_last(self, object_id: int) -> FrameResult:
        """A box added on the frame just done: (re)start that object there, keep the others' results."""
        last, run = self._last, self._pass
        assert last is not None and run is not None
        self.objects.remove(object_id)
        prompt = self._prompts[object_id][last.index]
        probabilities = {i: p for i, p in last.probabilities.items() if i != object_id}
        boxes = {i: b for i, b in last.boxes.items() if i != object_id}
        with self.runtime.running():
            if last.inputs is None:
                last.inputs = self.runtime.network_input(last.image, self.settings.working_size(*last.image.shape[:2]),
                                                         self._staging)
                last.query_features = self.runtime.encode_query(last.inputs[0])
            prepared, padding, _ = last.inputs
            main = self.runtime
            runtime = self._network_for(last.index, [prompt], last.inputs, last.image.shape[:2], bool(self.objects.banks))
            if runtime is self.runtime and runtime is not main:  # the session's network was adapted just now
                last.query_features = runtime.encode_query(prepared)
            features = last.query_features if runtime is self.runtime else runtime.encode_query(prepared)
            self._start_objects(last.index, [prompt], runtime, prepared, padding, features, probabilities, boxes,
                                last.image.shape[:2])
            last.probabilities, last.boxes = probabilities, boxes
            with record_function("qmra/merge"):
                return self._merge(last.index, last.image, probabilities, boxes)

    def _preview(self, index: int) -> FrameResult:
        """Frame ``index`` with the objects boxed on it, from their boxes alone (the run is not moved)."""
        frame = self.source.read(index)
        prompts = self._starting(index)
        probabilities: dict[int, torch.Tensor] = {}
        boxes: dict[int, Box | torch.Tensor] = {}
        with self.runtime.running():
            prepared, padding, _ = self.runtime.network_input(frame, self.settings.working_size(*frame.shape[:2]),
                                                              self._staging)
            _, object_probabilities = self._boxed_frame(self.runtime, prompts, prepared, padding, None, frame.shape[:2])
            for slot, prompt in enumerate(prompts):
                probabilities[prompt.object_id] = object_probabilities[slot]
                boxes[prompt.object_id] = prompt.box
            with record_function("qmra/merge"):
                return self._merge(index, frame, probabilities, boxes)

    def _network_for(self, index: int, prompts: list[Prompt], inputs: tuple[torch.Tensor, Padding, torch.Tensor],
                     frame_size: tuple[int, int], tracking: bool) -> Runtime:
        """The network the objects starting on frame ``index`` run with. Without adaptation, the
        session's. With it, the run's first objects (none ``tracking`` yet) adapt the session's own
        network (:attr:`model`, or :attr:`models` for an ensemble); objects that start later get
        copies of the segmenter's network adapted to their own frame (the session's cannot change:
        the memories already stored were encoded with it)."""
        if self.settings.adapt_steps == 0:
            return self.runtime
        prepared, padding, image = inputs
        unadapted = self.model is self.segmenter.model
        base = self.runtime if unadapted else ModelRuntime.create(self.segmenter.model, self.device, self.settings)
        models, report = self._adapted(base, prompts, prepared, padding, image, frame_size)
        self.adaptations[index] = report
        members = tuple(ModelRuntime.create(model, self.device, self.settings) for model in models)
        runtime = members[0] if len(members) == 1 else EnsembleRuntime(members)
        if self.adaptation is None and not tracking:
            self.models, self.runtime, self.adaptation = models, runtime, report
            self.model = models[0]
        return runtime

    def _adapted(self, base: ModelRuntime, prompts: list[Prompt], prepared: torch.Tensor, padding: Padding,
                 image: torch.Tensor, frame_size: tuple[int, int]) -> tuple[tuple[QMRA, ...], AdaptationReport]:
        """``settings.copies`` copies of ``base``'s network fine-tuned on this frame's boxes, each the
        weight average of ``adapt_average`` adaptations (copy i, adaptation j: seed
        ``(adapt_seed·copies + i)·adapt_average + j``), and one report for all adaptations (their
        seconds summed, their losses averaged). Its own first-frame masks inside the boxes are the
        stage-2 pseudo-labels (weighted by ``adapt_mask_weight``)."""
        box_maps, _, output = self._first_frame(base, prompts, prepared, padding, None, frame_size)
        masks = (output.probability() > 0.5).float() * box_maps
        copies, average = self.settings.copies, self.settings.adapt_average
        models, reports = [], []
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(self.device.type, enabled=False):
            for copy in range(copies):
                soup = []
                for part in range(average):
                    model = adapted_copy(base.model)  # made outside inference mode, so that it can learn
                    reports.append(adapt(model, image[0].clone(), box_maps.clone(), masks.clone(), self.settings.adapt_steps,
                                         self.settings.adapt_lr, mask_weight=self.settings.adapt_mask_weight,
                                         seed=(self.settings.adapt_seed * copies + copy) * average + part))
                    soup.append(model)
                models.append(average_weights(soup).eval())
        report = reports[0] if len(reports) == 1 else AdaptationReport(
            reports[0].steps, sum(r.seconds for r in reports), float(np.mean([r.first_loss for r in reports])),
            float(np.mean([r.last_loss for r in reports])), len(reports))
        return tuple(models), report

    def _start_objects(self, index: int, prompts: list[Prompt], runtime: Runtime, prepared: torch.Tensor, padding,
                       query_features, probabilities, boxes, frame_size: tuple[int, int]) -> None:
        """Encode each new object's first frame with its box (once: it is both memory and stage-2 query)
        on the network they run with (``runtime``; ``query_features`` made by it)."""
        assert self._pass is not None
        entry, object_probabilities = self._boxed_frame(runtime, prompts, prepared, padding, query_features, frame_size)
        bank = MemoryBank([p.object_id for p in prompts], self._pass.time(index), entry, self.settings.mem_every,
                          self.settings.max_memory_frames, static=runtime.static_memory)
        self.objects.add(bank)
        if runtime is not self.runtime:
            self._bank_runtimes[bank] = runtime
        for slot, prompt in enumerate(prompts):
            probabilities[prompt.object_id] = object_probabilities[slot]
            boxes[prompt.object_id] = prompt.box

    def _first_frame(self, runtime: Runtime, prompts: list[Prompt], prepared: torch.Tensor, padding: Padding,
                     query_features, frame_size: tuple[int, int]) -> tuple[torch.Tensor, MemoryFrame, QMRAOutput]:
        """The objects' box maps (B×1×h×w at the working size), their first memory entry, and the
        prediction of the frame they start on, given their boxes."""
        size = (padding.height, padding.width)
        box_maps = torch.from_numpy(np.stack([render_box_map(p.box, frame_size, size) for p in prompts]))[:, None].to(self.device)
        entry, output = runtime.start(prepared, padding, box_maps, query_features)
        return box_maps, entry, output

    def _boxed_frame(self, runtime: Runtime, prompts: list[Prompt], prepared: torch.Tensor, padding: Padding,
                     query_features, frame_size: tuple[int, int]) -> tuple[MemoryFrame, torch.Tensor]:
        """:meth:`_first_frame`'s memory entry and the objects' B×h×w probabilities on the frame they
        were boxed on, held to their boxes (:func:`hold_to_box`)."""
        box_maps, entry, output = self._first_frame(runtime, prompts, prepared, padding, query_features, frame_size)
        return entry, hold_to_box(output.probability()[:, 0], box_maps[:, 0].to(output.logits.dtype))

    def _merge(self, index: int, frame: np.ndarray, probabilities: dict[int, torch.Tensor],
               boxes: dict[int, Box | torch.Tensor | None], before_wait: Callable[[], None] | None = None) -> FrameResult:
        """Merge the objects at the frame's size; everything the host needs crosses over in one go.
        ``before_wait``: work to queue on the device once the copies to the host are queued, before
        waiting for them."""
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
        # Pixels per label. Not torch.bincount: on CUDA it reads the largest label back to size its
        # output, a wait for the device in the middle of the frame.
        flat = labels.flatten().long()
        areas = torch.zeros(MAX_OBJECT_ID + 1, dtype=torch.long, device=labels.device).scatter_add_(0, flat, torch.ones_like(flat))
        # A tracked box map's extent: which rows and columns it covers (a few hundred booleans each).
        tracked = [i for i in object_ids if isinstance(boxes[i], torch.Tensor)]
        extents = [(boxes[i].bool().any(dim=1), boxes[i].bool().any(dim=0)) for i in tracked]  # type: ignore[union-attr]
        copies = _HostCopies([labels, confidence, areas, *(e for pair in extents for e in pair)])
        if before_wait is not None:
            before_wait()
        host = copies.wait()
        scale = (width / working[1], height / working[0])
        final_boxes = {i: b for i, b in boxes.items() if not isinstance(b, torch.Tensor)}
        for slot, object_id in enumerate(tracked):
            final_boxes[object_id] = _extent_box(host[3 + 2 * slot].numpy(), host[4 + 2 * slot].numpy(), scale)
        maps = ProbabilityMaps(object_ids, merged, own, (height, width))
        scores, area = host[1].tolist(), host[2].numpy()
        return FrameResult(index, name, host[0].numpy(), {i: final_boxes[i] for i in object_ids}, frame, maps,
                           confidence={i: float(scores[slot]) for slot, i in enumerate(object_ids)},
                           lost={i: bool(area[i] == 0) for i in object_ids})


class _HostCopies:
    """A frame's results on their way to the host: on CUDA, copied into page-locked memory
    asynchronously, with one wait for all of them (not one per tensor) that does not wait for work
    queued after them."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self._event: torch.cuda.Event | None = None
        if not tensors or tensors[0].device.type != "cuda":
            self._tensors = [t.cpu() for t in tensors]  # on the CPU these are the tensors themselves
            return
        self._tensors = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True) for t in tensors]
        self._event = torch.cuda.Event()
        self._event.record(torch.cuda.current_stream(tensors[0].device))

    def wait(self) -> list[torch.Tensor]:
        if self._event is not None:
            self._event.synchronize()
        return self._tensors


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
