"""One video of a batch, run where a worker holds its segmenter: the same outputs as ``qmra segment``
gives it, and a :class:`VideoRecord` for the index whatever happens.

A video's failure (it cannot be read, a box lies outside its frame, its earlier results belong to
another run, the network raises) is caught here and recorded: the worker goes on with the next.
An interruption (Ctrl-C, SIGTERM, a cancelled Ray task) closes the files and is recorded too.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from qmra.batch.index import DONE, FAILED, INTERRUPTED, VideoRecord
from qmra.batch.manifest import BatchItem
from qmra.data.redaction import Redaction, frame_ranges
from qmra.errors import QmraError
from qmra.inference.encode_batch import QueryBatcher
from qmra.inference.prompts import check_prompt_masks
from qmra.inference.video_run import OutputPlan, VideoRun

#: File names inside a video's folder ``DIR/<id>/`` (the masks are named after the frames).
OVERLAY_NAME, RLE_NAME, CUTOUT_NAME, REDACT_NAME = "overlay.mp4", "masks.rle.json", "cutout", "redacted.mp4"
TRACKS_NAME = "tracks.csv"


@dataclass(frozen=True)
class BatchOutputs:
    """Where a batch writes: ``DIR/<id>/`` per video, with the overlay and RLE files when asked for,
    ``cutout.webm`` or ``cutout.mov`` when ``cutout`` is that suffix, and ``redacted.mp4`` (the frames with
    the objects hidden) when ``redact`` says how, ``tracks.csv`` (each object's box and state per
    frame) when ``tracks`` (None: off, which keeps the run digests of batches made before it).
    ``overwrite``: start every video over; otherwise finished videos are skipped and partly done ones
    continued, as ``qmra segment --resume`` does. ``backwards``: what the masks cover: objects boxed
    after frame 0 are also followed back to it (``qmra segment --backwards``). ``every``: only every
    N-th frame is segmented (``qmra segment --every``; None: every frame)."""

    out: Path
    overlay: bool = False
    rle: bool = False
    per_object: bool = False
    overwrite: bool = False
    backwards: bool = False
    cutout: str | None = None
    every: int | None = None
    redact: Redaction | None = None
    tracks: bool | None = None

    def plan(self, video_id: str) -> OutputPlan:
        folder = self.out / video_id
        return OutputPlan(folder, folder / OVERLAY_NAME if self.overlay else None,
                          folder / RLE_NAME if self.rle else None, self.per_object,
                          folder / f"{CUTOUT_NAME}.{self.cutout}" if self.cutout else None,
                          folder / REDACT_NAME if self.redact else None, self.redact or Redaction(),
                          folder / TRACKS_NAME if self.tracks else None)

    def complete(self, item: BatchItem, frames: int) -> bool:
        """Whether ``DIR/<id>/`` holds a finished run of ``frames`` frames with every output asked for
        (with ``per_object``, each object's folder of PNGs)."""
        plan = self.plan(item.id)
        folders = [plan.out_dir] + ([plan.out_dir / str(p.object_id) for p in item.prompts] if self.per_object else [])
        if any(len(list(folder.glob("[!.]*.png"))) != frames for folder in folders):
            return False
        return all(p.is_file() for p in plan.files)


@dataclass(frozen=True)
class Job:
    """A video to segment, which ``attempt`` this is (a retry continues what the first left), and the
    fingerprint of the ``run`` (:func:`~qmra.batch.index.run_fingerprint`) its record keeps."""

    item: BatchItem
    attempt: int = 1
    run: str = ""


def segment_job(segmenter, job: Job, outputs: BatchOutputs, on_frame: Callable[[int], None] | None = None,
                batcher: QueryBatcher | None = None) -> VideoRecord:
    """Segment ``job``'s video into its folder; the record says how it went. ``on_frame`` gets the
    frames finished after each (it may raise KeyboardInterrupt to stop the video, files closed);
    ``batcher``: query encodings shared with the worker's other videos, run in other threads."""
    from qmra.data import open_frames

    item = job.item
    record = VideoRecord(item.id, str(item.video), FAILED, attempt=job.attempt, run=job.run)
    video: VideoRun | None = None
    try:
        source = open_frames(item.video)
        check_prompt_masks(item.prompts, source.info.width, source.info.height)
        plan = outputs.plan(item.id)
        overwrite = outputs.overwrite and job.attempt == 1  # a retry continues the first attempt's frames
        plan.check(overwrite=overwrite, resume=not overwrite)
        if overwrite:
            plan.remove_results()  # the folder is the video's own: no frame of an earlier run may stay
        every = outputs.every or 1
        keep = 0 if overwrite else plan.finished(source, item.first, every)
        video = VideoRun(segmenter, source, item.prompts, plan, video_name=item.video.stem, keep=keep,
                         warn=record.warnings.append, on_frame=on_frame, batcher=batcher, backwards=outputs.backwards,
                         first=item.first, last=item.last, every=every)
        with batcher.joined() if batcher is not None else nullcontext():
            video.run()
        record.status = DONE
    except KeyboardInterrupt:
        record.status = INTERRUPTED
    except QmraError as error:
        record.error = str(error)
    except Exception as error:  # the network or a library failed on this video: the others go on
        record.error = f"{type(error).__name__}: {error}"
    if video is not None:
        record.frames, record.seconds = video.frames_finished, video.seconds
        record.lost = {str(k): v for k, v in video.lost.lost_at_end.items()}
        record.doubtful = {str(k): v for k, v in sorted(video.doubtful.frames.items())}
        report = video.redaction_report
        if report is not None:
            record.warnings += [f"{REDACT_NAME}: {line}" for line in report.lines()]
            record.unhidden = {str(k): frame_ranges(v, report.step) for k, v in sorted(report.shown.items())}
    return record
