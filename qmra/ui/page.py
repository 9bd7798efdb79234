"""One page's work: its video, the boxes drawn, the masks computed so far, runs and exports.

A page's masks lie in its own temporary folder, never in RAM (:mod:`qmra.ui.masks`); a video's
frames are decoded when needed, a bounded number kept (:mod:`qmra.ui.frames`). The network is the
:class:`~qmra.ui.engine.Engine` all pages share.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from qmra.data.boxes import Box, box_from_mask
from qmra.data.redaction import Redaction
from qmra.data.video_writer import object_colour
from qmra.errors import QmraError
from qmra.inference.mask_prompts import MASK_SUFFIX, mask_labels
from qmra.inference.prompts import Prompt, check_mask_size
from qmra.ui.engine import Engine
from qmra.ui.export import export_results, zip_folder
from qmra.ui.frames import FrameStore
from qmra.ui.jobs import Busy, Gone, Job
from qmra.ui.masks import MaskFiles
from qmra.ui.plan import BACKWARD, FORWARD, Member, Plan, Task

#: The mark of a frame where an object's mask is empty, beside the quality signals of its doubtful masks.
LOST = "lost"


class Page:
    """The state behind one open page (see the module docstring)."""

    def __init__(self, session_id: str, folder: Path, engine: Engine) -> None:
        self.id = session_id
        self.folder = folder
        self.folder.mkdir(parents=True)
        self.engine = engine
        self.store: FrameStore | None = None
        self.plan: Plan | None = None
        self.masks: MaskFiles | None = None
        self.doubts: dict[int, dict[int, tuple[str, ...]]] = {}  # frame → object → the signs its mask went wrong
        self.job: Job | None = None
        self.last_seen = time.monotonic()
        self.version = 0  # grows with every change of a stored label map
        self.preview_seconds: float | None = None
        self.download: Path | None = None  # the last zip export, until the next one or the end of the session
        self._generation = 0  # a new video gets new folders, so late writes of the old one go nowhere
        self._state = threading.RLock()  # the plan and the stored files
        self._work = threading.Lock()  # one computation of this page at a time
        self._closed = False

    # ------------------------------------------------------------------ lifetime

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.status == "running"

    def idle_for(self) -> float:
        return 0.0 if self.running else time.monotonic() - self.last_seen

    def close(self) -> None:
        self._closed = True
        if self.job is not None:
            self.job.cancel.set()
        if self.store is not None:
            self.store.close()
        self.engine.forget(self.id)
        with self._work:  # a preview or run in flight finishes its frame first
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ opening

    def open(self, path: Path) -> dict:
        """Open a video file or frame folder (already allowed by the server's path policy)."""
        self._refuse_while_running("open another video")
        with self._work, self._state:
            generation = self._generation + 1
            store = FrameStore(path)  # a bad file stops here: the old video stays
            old, old_dir = self.store, self._work_dir
            self.store, self._generation = store, generation
            self.plan = Plan(max(1, store.info.num_frames or 1))
            self.masks = MaskFiles(self._work_dir, store.info.height, store.info.width)
            self.doubts = {}
            self.job = None
            self.download = None
            self.version += 1
            self.engine.forget(self.id)
            if old is not None:
                old.close()
                shutil.rmtree(old_dir, ignore_errors=True)  # its frames and masks: one video's files at a time
                if old.path.is_relative_to(self.folder / "uploads") and old.path != path:
                    shutil.rmtree(old.path.parent, ignore_errors=True)  # an uploaded file, in a folder of its own
        return self.state()

    @property
    def _work_dir(self) -> Path:
        return self.folder / f"video{self._generation}"

    def _require(self) -> tuple[FrameStore, Plan]:
        if self.store is None or self.plan is None:
            raise QmraError("no video is open: open a video file or a frame folder first")
        self._sync_plan()
        return self.store, self.plan

    def _sync_plan(self) -> None:
        """Fit the plan to the frames the video really has, once it is decoded."""
        assert self.store is not None and self.plan is not None
        if self.store.finished and self.store.count and self.plan.num_frames != self.store.count:
            with self._state:
                self.plan.resize(self.store.count)
                self.version += 1

    def _refuse_while_running(self, what: str) -> None:
        if self.running:
            raise Busy(f"cannot {what} while a run is going on: wait for it or cancel it")

    # ------------------------------------------------------------------ state

    def state(self) -> dict:
        with self._state:
            if self.store is None or self.plan is None:
                return {"source": None, "objects": [], "job": None, "version": self.version}
            store, plan = self._require()
            shown = plan.shown_frames()[: store.count]
            done = plan.done_frames()[: store.count]
            return {
                "source": {"name": store.name, "width": store.info.width, "height": store.info.height, "frames": store.count,
                           "expected": store.expected, "decoding": not store.finished, "error": store.error,
                           "fps": store.info.fps},
                "objects": [{"id": object_id, "colour": [int(c) for c in object_colour(object_id)],
                             "keyframes": [{"frame": k.frame, "box": [round(v, 1) for v in k.box.as_tuple()],
                                            "mask": k.mask is not None} for k in plan.keyframes[object_id]]}
                            for object_id in plan.object_ids],
                "shown": "".join("1" if s else "0" for s in shown),
                "doubtful": "".join("1" if self._marked(f, lost=False) else "0" for f in range(len(shown))),
                "lost": "".join("1" if self._marked(f, lost=True) else "0" for f in range(len(shown))),
                "complete": int(done.sum()),
                "next_object": plan.next_object_id() if len(plan.object_ids) < 255 else None,
                "job": None if self.job is None else self.job.snapshot(),
                "version": self.version,
                "video": self._generation,
                "adapt_steps": self.engine.segmenter.settings.adapt_steps,
                "adapt_previews": self.engine.adapt_previews,
                "preview_seconds": self.preview_seconds,
            }

    def frame_image(self, index: int) -> tuple[bytes, str]:
        store, _ = self._require()
        if not store.wait(index, timeout=30) or index >= store.count:
            raise Gone(f"frame {index} does not exist (the video has {store.count} frames)")
        return store.display_bytes(index)

    def mask_image(self, index: int) -> bytes:
        """The frame's merged label map (transparent background), or :class:`Gone` when it has none."""
        self._require()
        assert self.masks is not None
        try:
            return self.masks.label_png(index)
        except FileNotFoundError:
            raise Gone(f"frame {index} has no masks yet") from None

    # ------------------------------------------------------------------ editing

    def set_box(self, object_id: int | None, frame: int, box: object) -> dict:
        """Draw ``box`` for ``object_id`` (None: a new object) on ``frame``, then compute that frame's
        masks for the objects boxed on it (the preview). Returns the state after."""
        self._refuse_while_running("draw boxes")
        store, plan = self._require()
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise QmraError(f"frame must be an integer, got {frame!r}")
        store.check_index(frame)
        try:
            parsed = Box.from_values(box).clip(store.info.width, store.info.height)
        except QmraError as error:
            raise QmraError(f"box: {error}") from None
        if parsed.width < 2 or parsed.height < 2:
            raise QmraError("the box is too small: drag a box at least 2 pixels wide and high")
        with self._work:
            with self._state:
                object_id = plan.next_object_id() if object_id is None else object_id
                self._edit(object_id, lambda: plan.set_box(object_id, frame, parsed))
            started = time.perf_counter()
            self._preview(frame)
            self.preview_seconds = time.perf_counter() - started
        state = self.state()
        state["object"] = object_id
        return state

    def set_masks(self, frame: int, name: str, data: bytes) -> dict:
        """Load a mask image of ``frame`` (a PNG as ``qmra segment --masks`` reads it: palette indices
        or greyscale values are object ids, 0/255 is object 1; ``name``: its file name, for messages):
        each object in it gets its mask there, with its tight box (a new object, or a correction on
        that frame), and that frame's masks are computed. Returns the state after."""
        self._refuse_while_running("load masks")
        store, plan = self._require()
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise QmraError(f"frame must be an integer, got {frame!r}")
        store.check_index(frame)
        labels = self._read_mask(name, data)
        check_mask_size((labels.shape[1], labels.shape[0]), store.info.width, store.info.height)
        object_ids = [int(i) for i in np.unique(labels) if i]
        if not object_ids:
            raise QmraError(f"{name}: every pixel is 0: no object in this mask")
        with self._work:
            with self._state:
                for object_id in object_ids:
                    mask = labels == object_id
                    box = box_from_mask(mask)
                    self._edit(object_id, lambda: plan.set_box(object_id, frame, box, mask))  # noqa: B023 - called at once
            self._preview(frame)
        return {**self.state(), "loaded": object_ids}

    def _read_mask(self, name: str, data: bytes) -> np.ndarray:
        """H×W object ids of an uploaded mask PNG (errors name the file as the user knows it)."""
        name = Path(name).name or "the mask"
        if Path(name).suffix.lower() != MASK_SUFFIX:
            raise QmraError(f"{name}: load a PNG mask (palette or greyscale), as qmra segment --masks takes")
        with tempfile.TemporaryDirectory(dir=self.folder) as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            try:
                return mask_labels(path)
            except QmraError as error:
                raise QmraError(str(error).replace(str(path), name)) from None

    def remove_box(self, object_id: int, frame: int) -> dict:
        self._refuse_while_running("remove boxes")
        _, plan = self._require()
        with self._work, self._state:
            self._edit(object_id, lambda: plan.remove_box(object_id, frame))
        return self.state()

    def remove_object(self, object_id: int) -> dict:
        self._refuse_while_running("remove objects")
        _, plan = self._require()
        with self._work, self._state:
            self._edit(object_id, lambda: plan.remove_object(object_id))
            assert self.masks is not None
            self.masks.remove_object(object_id)
            for kept in self.doubts.values():
                kept.pop(object_id, None)
        return self.state()

    def _edit(self, object_id: int, change) -> None:
        """Apply ``change`` to the plan and redraw the frames whose masks of ``object_id`` stopped
        (or started) being current."""
        assert self.plan is not None
        plan = self.plan
        before = plan.current(object_id) if object_id in plan.keyframes else np.zeros(plan.num_frames, bool)
        change()
        after = plan.current(object_id) if object_id in plan.keyframes else np.zeros(plan.num_frames, bool)
        for frame in np.flatnonzero(before != after):
            self._compose(int(frame))

    def _preview(self, frame: int) -> None:
        """The masks of the objects boxed on ``frame``, on that frame alone (one propagation step)."""
        assert self.plan is not None
        keyframes = [k for object_id in self.plan.object_ids for k in self.plan.keyframes[object_id] if k.frame == frame]
        if keyframes:
            members = [Member(k.object_id, k.box, k.tag(FORWARD), range(0, 1), k.mask) for k in keyframes]
            self._run_task(Task(FORWARD, frame, [frame], members), None)

    # ------------------------------------------------------------------ running

    def run(self, directions: tuple[str, ...]) -> dict:
        """Start a run in the background: every stale mask in ``directions`` is computed."""
        for direction in directions:
            if direction not in (FORWARD, BACKWARD):
                raise QmraError(f"unknown direction {direction!r}: use forward, backward or both")
        self._refuse_while_running("start another run")
        _, plan = self._require()
        if not plan.object_ids:
            raise QmraError("draw a box around an object first")
        job = Job(secrets.token_hex(4), directions)
        self.job = job
        threading.Thread(target=self._run_job, args=(job,), name=f"qmra-ui-run-{self.id[:6]}", daemon=True).start()
        return self.state()

    def cancel(self) -> dict:
        if self.job is not None and self.job.status == "running":
            self.job.cancel.set()
            self.job.update(message="cancelling after this frame")
        return self.state()

    def _run_job(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            store, _ = self._require()
            if not store.finished:
                job.update(message="reading the video")
                while not store.wait(timeout=0.5):
                    if job.cancel.is_set():
                        break
            with self._work:
                store, plan = self._require()
                with self._state:
                    tasks = plan.tasks(job.directions)
                job.update(total=sum(len(t.frames) for t in tasks), message="waiting for the network" if
                           self.engine.compute.locked() else "")
                for task in tasks:
                    if job.cancel.is_set() or self._closed:
                        break
                    self._run_task(task, job)
            status = "cancelled" if job.cancel.is_set() else "finished"
            job.update(status=status, seconds=time.perf_counter() - started,
                       message="" if status == "finished" or not job.total else f"{job.done} of {job.total} frames done")
        except QmraError as error:
            job.update(status="failed", message=str(error), seconds=time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - reported in the page and on the server's stderr
            traceback.print_exc(file=sys.stderr)
            job.update(status="failed", message=f"{type(error).__name__}: {error}", seconds=time.perf_counter() - started)
        finally:
            with self._state:
                self.version += 1

    def _run_task(self, task: Task, job: Job | None) -> None:
        """One run over ``task.frames`` (from ``task.start``, forwards or backwards): each member starts
        with its box on the first frame; its masks are stored for its frames and it leaves the run
        after its last one."""
        store, plan = self.store, self.plan
        assert store is not None and plan is not None
        key = (self.id, self._generation, task.key)
        with self.engine.compute:
            segmenter = self.engine.segmenter_for(key, preview=job is None)
            session = segmenter.start(store.source(), prompts=[Prompt(m.object_id, task.start, m.box, m.mask)
                                                               for m in task.members])
            active = {m.object_id: m for m in task.members}
            if job is not None:
                adapt_steps = session.networks.steps_for(session.source.read(task.start))  # greyscale video may adapt
                why = "" if segmenter.settings.adapt_steps else "the video is greyscale and the weights saw colour only: "
                job.update(message=f"{task.direction} from frame {task.start}" +
                           (f": {why}adapting the network to it first ({adapt_steps} steps)" if adapt_steps else ""))
            steps = session.propagate(start=task.start, reverse=task.direction == BACKWARD, progress=False)
            processed = 0
            try:
                for frame, result in steps:
                    if self._closed:
                        return
                    position = abs(frame - task.start)
                    with self._state:
                        for member in active.values():
                            if position in member.frames:
                                self._store_mask(member.object_id, frame, result.labels == member.object_id, member.tag,
                                                 result.doubts.get(member.object_id, ()))
                        self._compose(frame)
                    for member in [m for m in active.values() if position + 1 >= m.frames.stop]:
                        del active[member.object_id]
                        if active:
                            session.remove_object(member.object_id)
                    processed += 1
                    if job is not None:
                        job.update(done=job.done + 1, frame=frame, message=f"{task.direction} from frame {task.start}")
                    if not active or (job is not None and job.cancel.is_set()):
                        break
            finally:
                steps.close()
            # An ensemble's copies are not kept: a segmenter reused without adaptation runs one network.
            if (self.engine.adapts and session.adaptation is not None and segmenter is self.engine.segmenter
                    and len(session.models) == 1):
                self.engine.remember(key, session.model)
        if job is not None and not job.cancel.is_set() and processed < len(task.frames):
            job.update(done=job.done + len(task.frames) - processed)  # frames after every member left

    def _marked(self, frame: int, lost: bool) -> bool:
        """Whether an object's mask on ``frame`` is empty (``lost``), or else doubtful."""
        signals = self.doubts.get(frame, {}).values()
        if lost:
            return any(LOST in kept for kept in signals)
        return any(signal != LOST for kept in signals for signal in kept)

    def _store_mask(self, object_id: int, frame: int, mask: np.ndarray, tag: int, doubts: tuple[str, ...] = ()) -> None:
        assert self.masks is not None and self.plan is not None
        self.masks.store(object_id, frame, mask)
        self.plan.record(object_id, frame, tag)
        if not mask.any():  # not found on this frame: where to look, and to correct with a box
            doubts = (*doubts, LOST)
        kept = self.doubts.setdefault(frame, {})
        if doubts:
            kept[object_id] = doubts
        else:
            kept.pop(object_id, None)

    def _compose(self, frame: int) -> None:
        """Merge the current masks of ``frame`` into its label map (or remove it when there are none)."""
        assert self.masks is not None and self.plan is not None
        self.masks.compose(frame, self.plan.paint_order(frame))  # later keyframes last: they win where masks overlap
        self.version += 1

    def labels(self, frame: int) -> np.ndarray | None:
        return None if self.masks is None else self.masks.labels(frame)

    # ------------------------------------------------------------------ export

    def export(self, folder: Path, *, per_object: bool = True, overlay: bool = True, rle: bool = True,
               cutout: bool = False, redact: bool = False, redaction: Redaction = Redaction(),
               overwrite: bool = False, tracks: bool = False) -> dict:
        """Write what ``qmra segment`` writes into ``folder`` (already allowed by the path policy); see
        :func:`export_results`."""
        self._refuse_while_running("export")
        store, plan = self._require()
        if not store.finished:
            raise Busy("the video is still being read; export when it is done")
        if not plan.object_ids:
            raise QmraError("nothing to export: draw a box around an object first")

        def labels_of(frame: int) -> np.ndarray | None:
            with self._state:
                return self.labels(frame)

        def doubts_of(frame: int) -> dict[int, tuple[str, ...]]:  # a lost object has its own column
            with self._state:
                return {i: tuple(s for s in signs if s != LOST) for i, signs in self.doubts.get(frame, {}).items()}

        with self._work:
            return export_results(folder, store, plan, labels_of, per_object=per_object, overlay=overlay, rle=rle,
                                  tracks=tracks, doubts_of=doubts_of,
                                  cutout=cutout, redact=redact, redaction=redaction, overwrite=overwrite)

    def export_zip(self, **options) -> tuple[Path, dict]:
        """:meth:`export` into this page's folder, packed as one zip."""
        store, _ = self._require()
        exports = self.folder / "export"
        shutil.rmtree(exports, ignore_errors=True)
        summary = self.export(exports / store.name, overwrite=True, **options)
        self.download = None
        archive = zip_folder(exports / store.name, self.folder / f"{store.name}-masks.zip")
        shutil.rmtree(exports, ignore_errors=True)
        self.download = archive
        return archive, summary
