"""One page's work: its video, the boxes drawn, the masks computed so far, runs and exports.

Everything a page session keeps lies in its own temporary folder, never in RAM: one 1-bit PNG per
object and frame (``masks/<id>/<frame>.png``), the merged label map of each frame that has one
(``labels/<frame>.png``, a palette PNG whose colour 0 is transparent: the page lays it over the
frame as it is), and a decoded video's frames. :class:`Engine` is shared by all pages: the one
network, a lock so that one computation runs at a time, and the networks that test-time adaptation
made for the last few (frame, boxes), so that the forward and backward runs from a box reuse the
adaptation its preview already paid for.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import sys
import threading
import time
import traceback
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data.atomic import write_bytes_atomic, write_text_atomic
from qmra.data.boxes import Box, box_from_mask
from qmra.data.frames import ArrayFrames
from qmra.data.video_writer import object_colour
from qmra.errors import QmraError
from qmra.inference.outputs import ResultWriter, check_outputs
from qmra.inference.segmenter import Segmenter
from qmra.inference.session import FrameResult
from qmra.ui.frames import FrameStore
from qmra.ui.plan import BACKWARD, FORWARD, Member, Plan, Task

ADAPTED_KEPT = 2  # adapted networks kept for reuse (each is a copy of the network)


class Busy(QmraError):
    """The page asked for something that must wait until the running job ends (HTTP 409)."""


class Gone(QmraError):
    """A resource that does not exist (HTTP 404)."""


class Engine:
    """The network shared by every page, one computation at a time.

    Previews (the mask of a box on its own frame) skip test-time adaptation unless
    ``adapt_previews``: on one frame the box alone gives nearly the same mask (DAVIS car-shadow,
    frame 0, shipped weights: J 0.865 without, 0.866 with 10 steps) at a tenth of the time; runs
    adapt as the weights recommend, once per box (forward and backward share it)."""

    def __init__(self, segmenter: Segmenter, adapt_previews: bool = False) -> None:
        self.segmenter = segmenter
        self.compute = threading.Lock()
        self._adapted: OrderedDict[tuple, Segmenter] = OrderedDict()
        self.adapt_previews = adapt_previews
        self.previewer = segmenter if adapt_previews or not self.adapts else Segmenter(
            segmenter.model, segmenter.device, replace(segmenter.settings, adapt_steps=0), progress=False)

    @property
    def adapts(self) -> bool:
        return self.segmenter.settings.adapt_steps > 0

    def segmenter_for(self, key: tuple, preview: bool = False) -> Segmenter:
        """A segmenter whose network is already adapted to ``key``'s frame and boxes, else the shared one
        (for a preview: the one that does not adapt, unless ``adapt_previews``)."""
        found = self._adapted.get(key)
        if found is not None:
            self._adapted.move_to_end(key)
            return found
        return self.previewer if preview else self.segmenter

    def remember(self, key: tuple, adapted_model) -> None:
        settings = replace(self.segmenter.settings, adapt_steps=0)
        self._adapted[key] = Segmenter(adapted_model, self.segmenter.device, settings, progress=False)
        while len(self._adapted) > ADAPTED_KEPT:
            self._adapted.popitem(last=False)

    def forget(self, prefix: str) -> None:
        for key in [k for k in self._adapted if k[0] == prefix]:
            del self._adapted[key]


@dataclass
class Job:
    """A run in the background; the page follows it over Server-Sent Events."""

    id: str
    directions: tuple[str, ...]
    total: int = 0
    done: int = 0
    frame: int | None = None
    status: str = "running"  # running, finished, cancelled, failed
    message: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.cancel = threading.Event()
        self.changed = threading.Condition()
        self.version = 0

    def update(self, **values) -> None:
        with self.changed:
            for name, value in values.items():
                setattr(self, name, value)
            self.version += 1
            self.changed.notify_all()

    def snapshot(self) -> dict:
        return {"id": self.id, "directions": list(self.directions), "total": self.total, "done": self.done,
                "frame": self.frame, "status": self.status, "message": self.message, "seconds": round(self.seconds, 2)}

    def wait(self, seen: int, timeout: float) -> int:
        """Until the job changes after version ``seen`` (or ``timeout``); returns the version now."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen, timeout)
            return self.version


def transparent_palette_png(labels: np.ndarray) -> bytes:
    """A label map as a PNG in the overlay colours (those of qmra's overlay videos), colour 0
    (background) transparent."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[1:] = [object_colour(i) for i in range(1, 256)]
    image.putpalette(palette.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0, compress_level=1)
    return buffer.getvalue()


class PageSession:
    """The state behind one open page (see the module docstring)."""

    def __init__(self, session_id: str, folder: Path, engine: Engine) -> None:
        self.id = session_id
        self.folder = folder
        self.folder.mkdir(parents=True)
        self.engine = engine
        self.store: FrameStore | None = None
        self.plan: Plan | None = None
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
            store = FrameStore(path, self.folder / f"video{generation}")  # a bad file stops here: the old video stays
            old, old_dir = self.store, self._work_dir
            self.store, self._generation = store, generation
            self.plan = Plan(max(1, store.info.num_frames or 1))
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
                             "keyframes": [{"frame": k.frame, "box": [round(v, 1) for v in k.box.as_tuple()]}
                                           for k in plan.keyframes[object_id]]}
                            for object_id in plan.object_ids],
                "shown": "".join("1" if s else "0" for s in shown),
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
        path = self._work_dir / "labels" / f"{index:05d}.png"
        try:
            return path.read_bytes()
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
            shutil.rmtree(self._work_dir / "masks" / str(object_id), ignore_errors=True)
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
            members = [Member(k.object_id, k.box, k.tag(FORWARD), range(0, 1)) for k in keyframes]
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
        """One session over ``task.frames``: each member starts with its box on the first frame; its
        masks are stored for its frames and it leaves the session after its last one."""
        store, plan = self.store, self.plan
        assert store is not None and plan is not None
        key = (self.id, self._generation, task.key)
        with self.engine.compute:
            segmenter = self.engine.segmenter_for(key, preview=job is None)
            session = segmenter.start(ArrayFrames(store.frames(task.frames), fps=store.info.fps))
            for member in task.members:
                session.add_box(member.object_id, member.box, 0, predict=False)  # propagate() predicts it
            active = {m.object_id: m for m in task.members}
            if job is not None:
                adapt_steps = segmenter.settings.adapt_steps
                job.update(message=f"{task.direction} from frame {task.start}" +
                           (f": adapting the network to it first ({adapt_steps} steps)" if adapt_steps else ""))
            steps = session.propagate(progress=False)
            processed = 0
            try:
                for position, result in steps:
                    if self._closed:
                        return
                    frame = task.frames[position]
                    with self._state:
                        for member in active.values():
                            if position in member.frames:
                                self._store_mask(member.object_id, frame, result.labels == member.object_id, member.tag)
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

    def _store_mask(self, object_id: int, frame: int, mask: np.ndarray, tag: int) -> None:
        buffer = io.BytesIO()
        Image.fromarray(mask).save(buffer, format="PNG")  # mode 1: a bit per pixel
        write_bytes_atomic(self._work_dir / "masks" / str(object_id) / f"{frame:05d}.png", buffer.getvalue())
        assert self.plan is not None
        self.plan.record(object_id, frame, tag)

    def _read_mask(self, object_id: int, frame: int) -> np.ndarray:
        with Image.open(self._work_dir / "masks" / str(object_id) / f"{frame:05d}.png") as image:
            return np.asarray(image.convert("1"), dtype=bool)

    def _compose(self, frame: int) -> None:
        """Merge the current masks of ``frame`` into its label map (or remove it when there are none)."""
        assert self.store is not None and self.plan is not None
        path = self._work_dir / "labels" / f"{frame:05d}.png"
        order = self.plan.paint_order(frame)
        if not order:
            path.unlink(missing_ok=True)
        else:
            labels = np.zeros((self.store.info.height, self.store.info.width), np.uint8)
            for object_id in order:  # later keyframes last: they win where masks overlap
                labels[self._read_mask(object_id, frame)] = object_id
            write_bytes_atomic(path, transparent_palette_png(labels))
        self.version += 1

    def labels(self, frame: int) -> np.ndarray | None:
        path = self._work_dir / "labels" / f"{frame:05d}.png"
        if not path.is_file():
            return None
        with Image.open(path) as image:
            return np.asarray(image, dtype=np.uint8).copy()

    # ------------------------------------------------------------------ export

    def export(self, folder: Path, *, per_object: bool = True, overlay: bool = True, rle: bool = True,
               overwrite: bool = False) -> dict:
        """Write what ``qmra segment`` writes into ``folder`` (already allowed by the path policy):
        palette PNGs named after the frames, optionally ``<id>/`` per-object PNGs, ``overlay.mp4``
        and ``masks.json`` (COCO RLE); also ``boxes.json``, the boxes drawn. Frames without masks are
        written as background; the answer counts them."""
        self._refuse_while_running("export")
        store, plan = self._require()
        if not store.finished:
            raise Busy("the video is still being read; export when it is done")
        if not plan.object_ids:
            raise QmraError("nothing to export: draw a box around an object first")
        overlay_path = folder / "overlay.mp4" if overlay else None
        rle_path = folder / "masks.json" if rle else None
        check_outputs(folder, overlay_path, rle_path, overwrite=overwrite)
        with self._work:
            writer = ResultWriter(folder, height=store.info.height, width=store.info.width, fps=store.info.fps,
                                  video_name=store.name, per_object=per_object, overlay=overlay_path, rle=rle_path)
            missing = 0
            try:
                for frame in range(store.count):
                    with self._state:
                        labels = self.labels(frame)
                    if labels is None:
                        missing += 1
                        labels = np.zeros((store.info.height, store.info.width), np.uint8)
                    boxes = {object_id: box_from_mask(labels == object_id) for object_id in plan.object_ids}
                    image = store.read(frame) if overlay else None
                    writer.write(FrameResult(frame, store.frame_name(frame), labels, boxes, image))  # type: ignore[arg-type]
            finally:
                writer.close()
            prompts = [{"id": k.object_id, "frame": k.frame, "box": [round(v, 2) for v in k.box.as_tuple()]}
                       for object_id in plan.object_ids for k in plan.keyframes[object_id]]
            write_text_atomic(folder / "boxes.json", json.dumps(prompts, indent=1) + "\n")
        files = [f"{writer.frames_written} palette PNGs"]
        files += [label for flag, label in ((per_object, "per-object PNGs"), (overlay, "overlay.mp4"), (rle, "masks.json"))
                  if flag]
        return {"folder": str(folder), "frames": writer.frames_written, "without_masks": missing,
                "files": files + ["boxes.json"]}

    def export_zip(self, **options) -> tuple[Path, dict]:
        """:meth:`export` into this page's folder, packed as one zip (stored: PNG and H.264 do not shrink)."""
        store, _ = self._require()
        folder = self.folder / "export" / store.name
        shutil.rmtree(self.folder / "export", ignore_errors=True)
        summary = self.export(folder, overwrite=True, **options)
        archive = self.folder / f"{store.name}-masks.zip"
        self.download = None
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as bundle:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    bundle.write(path, path.relative_to(folder.parent).as_posix())
        shutil.rmtree(self.folder / "export", ignore_errors=True)
        self.download = archive
        return archive, summary
