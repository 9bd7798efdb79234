"""One video being segmented: prompts, per-object memory, and frame-by-frame propagation."""

from __future__ import annotations

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from qmra.data.boxes import Box, box_from_mask
from qmra.data.frames import FrameInfo, FrameSource
from qmra.data.prefetch import prefetch
from qmra.errors import BoxError, QmraError
from qmra.inference.adapt import AdaptationReport, SessionNetworks
from qmra.inference.encode_batch import QueryBatcher
from qmra.inference.ensemble import Runtime
from qmra.inference.features import FeatureStore
from qmra.inference.objects import ObjectTable
from qmra.inference.passes import Pass
from qmra.inference.predict import FramePredictor
from qmra.inference.progress import ProgressStyle, RunProgress
from qmra.inference.prompts import Prompt, PromptBook, PromptsGiven, check_on_grid, prompt_items
from qmra.inference.quality import QualityWatch
from qmra.inference.results import FrameResult
from qmra.inference.settings import InferenceSettings
from qmra.inference.threads import ThreadChoice
from qmra.model import QMRA


@dataclass
class _Frame:
    """The frame just predicted, kept so that a box added on it redoes only that object."""

    index: int
    image: np.ndarray
    probabilities: dict[int, torch.Tensor]
    boxes: dict[int, Box | torch.Tensor | None]


class InferenceSession:
    """One video on one network (made by :meth:`Segmenter.start`). Add boxes, then iterate
    :meth:`propagate` (forwards or backwards from any frame), or drive the loop yourself with :meth:`step`.

    - :meth:`add_box` marks an object on a frame and returns that frame's prediction; a box for an
      object already tracked corrects it from that frame on.
    - Per-object memory holds keys and values of at most ``settings.max_memory_frames`` frames,
      each encoded once; :attr:`objects` maps object ids to their memory's tensor rows.
    - Sources that can seek (files, folders, frames in a list or array) can be run from any frame
      and backwards; one-pass streams run forwards once and say so otherwise.

    ``model`` (eval mode, on ``device``) is never changed: test-time adaptation works on copies
    (:attr:`networks`). ``progress``: the default of :meth:`propagate`'s bar; ``threads``: the CPU
    thread count the network's work runs with (default: chosen for the free cores); ``prompts``:
    boxes to start with (see :meth:`Segmenter.start`); ``batcher``: query encodings shared with
    sessions in other threads (:mod:`qmra.inference.encode_batch`); ``colour_only``: the weights
    learned from colour video only, so that a greyscale video adapts them (``settings.grey_adapt_steps``).
    """

    def __init__(self, model: QMRA, source: FrameSource, device: torch.device, settings: InferenceSettings,
                 progress: ProgressStyle = False, threads: ThreadChoice | None = None, prompts: PromptsGiven = (),
                 batcher: QueryBatcher | None = None, colour_only: bool = False) -> None:
        self.device = device
        self.settings = settings
        self.source = source
        self.info: FrameInfo = source.info
        self.progress = progress
        self.threads = threads or ThreadChoice(settings.threads, device)
        self._prompts = PromptBook()
        self.objects = ObjectTable()
        #: The networks the objects run with: the given one and its adapted copies.
        self.networks = SessionNetworks(model, device, settings, colour_only)
        self.features = FeatureStore(settings, device, batcher)
        #: Signs that a mask went wrong (FrameResult.doubts), against each object's boxed frame.
        self.quality = QualityWatch()
        self.predictor = FramePredictor(self.objects, self.networks, self.features, settings, source.frame_name)
        self._pass: Pass | None = None
        self._last: _Frame | None = None
        self._propagating = False
        #: Seconds spent in the model (not reading frames) during the last propagate().
        self.model_seconds = 0.0
        #: Whether :meth:`propagate` queues each next frame's query encoding before waiting for a
        #: frame's results: on devices that run asynchronously (CUDA), where the host's work between
        #: two frames would otherwise leave the device idle. Results are the same either way.
        self.lookahead = self.device.type == "cuda"
        for object_id, box, frame, mask in prompt_items(prompts):
            self._add(Prompt.on_video(object_id, box, frame, self.info, mask), predict=False)

    # ------------------------------------------------------------------ the networks

    @property
    def model(self) -> QMRA:
        """The network following the run's first objects: the given one, or its adapted copy."""
        return self.networks.model

    @property
    def models(self) -> tuple[QMRA, ...]:
        """:attr:`model` and the other copies of an ensemble."""
        return self.networks.models

    @property
    def runtime(self) -> Runtime:
        return self.networks.runtime

    @property
    def adaptation(self) -> AdaptationReport | None:
        """The run's first adaptation (settings.adapt_steps > 0): its cost and losses."""
        return self.networks.report

    @property
    def adaptations(self) -> dict[int, AdaptationReport]:
        """Every adaptation of the run, by frame: the first, and one per later frame where objects start."""
        return self.networks.reports

    # ------------------------------------------------------------------ prompts

    @property
    def object_ids(self) -> list[int]:
        return self._prompts.object_ids

    def prompts(self, object_id: int) -> list[Prompt]:
        """The boxes given for ``object_id``, by frame."""
        return self._prompts.of(object_id)

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
        return self._add(Prompt.on_video(object_id, box, frame, self.info), predict)

    def add_mask(self, object_id: int, mask: np.ndarray, frame: int = 0, predict: bool = True) -> FrameResult | None:
        """:meth:`add_box` with ``mask`` (H×W at the frames' size, nonzero: the object) and its tight
        box: that frame's result is the mask, and test-time adaptation with mask losses, where it runs,
        learns its shape (:class:`Prompt`). An empty mask, or one of another size, is a :class:`BoxError`."""
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise BoxError(f"object {object_id}: expected an H×W mask, got an array of shape {mask.shape}")
        box = box_from_mask(mask)
        if box is None:
            raise BoxError(f"object {object_id}: its mask on frame {frame} is empty")
        return self._add(Prompt.on_video(object_id, box, frame, self.info, mask), predict)

    def _add(self, prompt: Prompt, predict: bool) -> FrameResult | None:
        """:meth:`add_box`'s work, for a prompt made for this video."""
        object_id, frame = prompt.object_id, prompt.frame
        run = self._pass
        redo = run is not None and self._last is not None and frame == self._last.index and not self._propagating
        if run is not None and run.done(frame) and not redo:
            raise QmraError(f"object {object_id}: frame {frame} was already segmented in this run; add boxes on the "
                            "frame just done or later ones, or propagate again")
        self._prompts.add(prompt)
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
        self._prompts.remove(object_id)
        self.objects.remove(object_id)
        self.predictor.forget(object_id)

    def reset(self) -> None:
        """Forget every object and all memory; the next :meth:`propagate` or :meth:`step` starts over."""
        if self._propagating:
            raise QmraError("cannot reset while propagate() is running; finish or close it first")
        for object_id in self._prompts.object_ids:
            self.predictor.forget(object_id)
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

    def propagate(self, start: int | None = None, reverse: bool = False, progress: ProgressStyle | None = None,
                  stop: int | None = None, step: int = 1) -> Iterator[tuple[int, FrameResult]]:
        """Segment the video from frame ``start`` (default: the first frame, or the last one with
        ``reverse``) to frame ``stop`` (default: its end, or frame 0 in reverse), yielding
        ``(frame_index, FrameResult)`` per frame; with ``step``, only every ``step``-th frame from
        ``start`` (``start``, ``start + step``, ...; the others are read but not segmented), which must
        include every boxed frame. Memory schedules then count the frames segmented.

        Each call starts over with empty memory (boxes are kept). Objects start on their box's frame
        in the run's direction; an object boxed only before ``start`` (after it, in reverse) is
        followed from its box without yielding the frames before ``start``; a box beyond ``stop`` is
        an error. ``progress``: a bar, or "lines" for logs (default: the session's setting;
        :mod:`qmra.inference.progress`). Gradients are never tracked.
        """
        if self._propagating:
            raise QmraError("propagate() is already running on this session")
        first, start, indices = self._run_frames(start, reverse, stop, step)
        self._begin(Pass(first, reverse, step=step))
        self._propagating = True
        shown = RunProgress(self.progress if progress is None else progress, self._yielded(start, reverse, stop, step))
        self.networks.on_step = shown.adapting
        if reverse:
            source: Iterable[np.ndarray] = self.source.frames(indices)
        else:  # one pass from the run's first frame, to the end or until ``stop``
            source = self.source.frames_from(first, step) if first or step > 1 else self.source
        frames = prefetch(source) if self.settings.pipeline else iter(source)
        try:
            for index, result in self._predicted(zip(indices, frames)):
                if (index <= start) if reverse else (index >= start):
                    shown.frame()
                    yield index, result
            self._check_late_prompts()
            if not shown.done:  # a video that ended before ``start`` (its count was unknown or estimated)
                ended = self._pass.cursor if self._pass is not None else None
                raise QmraError(f"start frame {start} is past the end of the video"
                                f"{f' ({ended + 1} frames)' if ended is not None else ''}")
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # stops the reading thread when the caller leaves early
            shown.close()
            self.networks.on_step = None
            self._propagating = False

    def _run_frames(self, start: int | None, reverse: bool, stop: int | None,
                    step: int = 1) -> tuple[int, int, Sequence[int]]:
        """A run from ``start`` to ``stop`` through every ``step``-th frame: the frame it begins on (the
        earliest box, if before ``start``), the first frame it yields, and the frames it goes through,
        in order."""
        if not self._prompts:
            raise QmraError("no objects: call add_box first")
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise QmraError(f"step must be an integer of 1 or more, got {step!r}")
        count = self.info.num_frames
        if reverse:
            if not self.source.seekable:
                raise QmraError(f"{self.source.description} is read once, front to back (a stream): it cannot be "
                                "propagated backwards")
            if count is None:
                raise QmraError(f"{self.source.description} does not say how many frames it has: it can only be "
                                "propagated forwards")
        boxed = self._prompts.frames()
        if reverse:
            start = count - 1 if start is None else start  # type: ignore[operator]
            self._check_on_grid(start, step)
            first = max(start, max(boxed))
            stop = 0 if stop is None else stop
            indices: Sequence[int] = range(first, stop - 1, -step)
            beyond = self._prompts.before(stop)
        else:
            start = 0 if start is None else start
            self._check_on_grid(start, step)
            first = min(start, min(boxed))
            # As many frames as the source really has: a count from its header can be an estimate.
            indices = itertools.count(first, step) if stop is None else range(first, stop + 1, step)  # type: ignore[assignment]
            beyond = [] if stop is None else self._prompts.after(stop)
        if start < 0 or (count is not None and not self.info.estimated and start >= count):
            raise QmraError(f"start frame {start} is outside the video (frames 0..{count - 1 if count else '?'})")
        if stop is not None and (stop > start if reverse else stop < start):
            raise QmraError(f"the run cannot end on frame {stop}: it starts on frame {start}, going "
                            f"{'backwards' if reverse else 'forwards'}")
        if beyond:
            raise QmraError(f"object {beyond[0].object_id} is boxed on frame {beyond[0].frame}, beyond frame {stop} "
                            "where the run ends")
        return first, start, indices

    def _check_on_grid(self, start: int, step: int) -> None:
        """Every box lies on a frame a run from ``start`` through every ``step``-th frame segments."""
        boxes = [p for object_id in self._prompts.object_ids for p in self._prompts.of(object_id)]
        check_on_grid(boxes, start, step, f"a run through one frame in {step} from frame {start}")

    def _yielded(self, start: int, reverse: bool, stop: int | None, step: int = 1) -> int | None:
        """How many frames a run from ``start`` to ``stop`` through every ``step``-th frame yields,
        where that is known."""
        if reverse:
            return len(range(start, (stop or 0) - 1, -step))
        count = None if self.info.estimated else self.info.num_frames
        if stop is None:
            end = self.info.num_frames  # an estimate is still worth showing; it is dropped if it falls short
        else:
            end = stop + 1 if count is None else min(count, stop + 1)
        return None if end is None else len(range(start, end, step))

    def _predicted(self, pairs: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, FrameResult]]:
        """Each (index, frame) of the run predicted, in order; with :attr:`lookahead`, the next frame
        is read before a frame's results are waited for, so its encoding can be queued."""
        upcoming = next(pairs, None)
        while upcoming is not None:
            index, frame = upcoming
            upcoming, unreadable = None, None
            if self.lookahead:
                try:
                    upcoming = next(pairs, None)
                except Exception as error:  # raised once this frame, which could be read, is handed back
                    upcoming, unreadable = None, error
            yield index, self._advance(index, frame, upcoming)
            if unreadable is not None:
                raise unreadable
            if not self.lookahead:
                upcoming = next(pairs, None)

    def step(self, image: np.ndarray) -> FrameResult:
        """Segment the next frame of a forward run, for callers that own the frame loop (a stream, a
        GUI): the first call starts a run at frame 0 with empty memory, each call is one frame.
        ``image``: H×W×3 uint8, the frame's pixels."""
        if self._propagating:
            raise QmraError("step() cannot run while propagate() is running")
        if self._pass is None or self._pass.reverse:
            self._begin(Pass(0))
        assert self._pass is not None
        image = np.asarray(image)
        if image.shape != (self.info.height, self.info.width, 3) or image.dtype != np.uint8:
            raise QmraError(f"step() takes the video's {self.info.width}x{self.info.height} frames as H×W×3 uint8 arrays, "
                            f"got {image.dtype} {image.shape}")
        return self._advance(self._pass.next, image)

    def _begin(self, run: Pass) -> None:
        """A new run: empty memory, the given network (adapted again where objects start), the thread
        count for the machine's load now."""
        self.objects.clear()
        self._pass = run
        self._last = None
        self.features.clear()
        self.quality.clear()
        self.model_seconds = 0.0
        self.networks.begin_run()
        self.threads.refresh()  # the machine's load may have changed

    @contextmanager
    def _working(self) -> Iterator[None]:
        """The network's work: the run's thread count, no gradients, its precision."""
        with self.threads.applied(), self.runtime.running():
            yield

    def _advance(self, index: int, frame: np.ndarray, upcoming: tuple[int, np.ndarray] | None = None) -> FrameResult:
        """Predict frame ``index`` of the current run and move the run on to it; ``upcoming``: the
        next frame (index, pixels), whose query encoding is queued before this frame's results are
        waited for."""
        assert self._pass is not None
        started = time.perf_counter()
        with self._working():
            result = self._predict_frame(index, frame, upcoming)
        self.model_seconds += time.perf_counter() - started
        self._pass.cursor = index
        return result

    def _check_late_prompts(self) -> None:
        """Boxes on frames a forward run never reached: past the end of the video."""
        run = self._pass
        if run is not None and not run.reverse and run.cursor is not None:
            self._prompts.check_reached(run.cursor)

    def _predict_frame(self, index: int, frame: np.ndarray, upcoming: tuple[int, np.ndarray] | None = None) -> FrameResult:
        assert self._pass is not None
        before_wait = None
        if upcoming is not None:
            ahead_index, ahead_frame = upcoming
            starts_there = bool(self._prompts.starting(ahead_index))
            before_wait = lambda: self.predictor.encode_ahead(ahead_index, ahead_frame, starts_there)  # noqa: E731
        starting = self._prompts.starting(index)
        result, probabilities, boxes = self.predictor.frame(index, self._pass.time(index), frame, starting, before_wait)
        result.doubts = self.quality.check(result, {p.object_id for p in starting}, self.predictor.found)
        self._last = _Frame(index, frame, probabilities, boxes)
        return result

    def _redo_last(self, object_id: int) -> FrameResult:
        """A box added on the frame just done: (re)start that object there, keep the others' results."""
        last, run = self._last, self._pass
        assert last is not None and run is not None
        last.probabilities = {i: p for i, p in last.probabilities.items() if i != object_id}
        last.boxes = {i: b for i, b in last.boxes.items() if i != object_id}
        with self._working():
            result = self.predictor.restart(last.index, run.time(last.index), last.image,
                                            self._prompts.get(object_id, last.index), last.probabilities, last.boxes)
        self.quality.measure(result, {object_id})  # the corrected object's new reference
        return result

    def _preview(self, index: int) -> FrameResult:
        """Frame ``index`` with the objects boxed on it, from their boxes alone (the run is not moved)."""
        frame = self.source.read(index)
        with self._working():
            return self.predictor.preview(index, frame, self._prompts.starting(index))
