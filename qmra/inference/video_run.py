"""One video from its prompts to its result files: what ``qmra segment`` does for its video and
``qmra batch`` for each of its own.

:class:`VideoRun` writes every frame as it is finished and closes its files on any exit (an error,
Ctrl-C, SIGTERM), so an interrupted video keeps complete PNGs, a playable overlay and a valid RLE
file, and ``resume`` continues it. Warnings (an object lost, a doubtful mask, a box clipped to the
frame, two objects given one box) are handed to a callback, one line each, so that each command
says them its own way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from qmra.data.atomic import remove_stale_temporaries
from qmra.data.audio import audio_source
from qmra.data.frames import FrameSource
from qmra.data.redaction import Redaction, RedactionReport
from qmra.errors import QmraError
from qmra.inference.backwards import EarlierMasks, first_boxes
from qmra.inference.encode_batch import QueryBatcher
from qmra.inference.greyscale import greyscale_warning
from qmra.inference.lost import LostObjects
from qmra.inference.outputs import ResultWriter, check_outputs, existing_results, finished_frames
from qmra.inference.prompt_files import check_boxes_on_every
from qmra.inference.prompts import Prompt
from qmra.inference.quality import DoubtfulObjects, warning
from qmra.inference.results import FrameResult


@dataclass(frozen=True)
class OutputPlan:
    """Where one video's results go: palette PNGs in ``out_dir`` (named after the frames), and
    optionally an H.264 ``overlay``, COCO ``rle`` JSON, one binary PNG per object (``per_object``:
    ``out_dir/<id>/<frame>.png``), a ``cutout`` (.webm or .mov: the objects on a transparent
    background), a ``redact`` mp4 (the frames with the objects hidden as ``redaction`` says) and a
    ``tracks`` CSV (each object's box and state per frame)."""

    out_dir: Path
    overlay: Path | None = None
    rle: Path | None = None
    per_object: bool = False
    cutout: Path | None = None
    redact: Path | None = None
    redaction: Redaction = Redaction()
    tracks: Path | None = None

    @property
    def files(self) -> list[Path]:
        """The single files asked for besides the PNGs: the overlay, the RLE file, the cut-out, the
        redacted video, the tracks CSV."""
        return [p for p in (self.overlay, self.rle, self.cutout, self.redact, self.tracks) if p is not None]

    def check(self, *, overwrite: bool = False, resume: bool = False) -> None:
        """Every path can be written and, unless ``overwrite`` or ``resume``, holds no earlier results
        (:func:`~qmra.inference.outputs.check_outputs`; a :class:`QmraError` says what is wrong)."""
        check_outputs(self.out_dir, self.overlay, self.rle, cutout=self.cutout, redact=self.redact, tracks=self.tracks,
                      overwrite=overwrite, resume=resume)

    def finished(self, source: FrameSource, first: int = 0, step: int = 1) -> int:
        """Frames, consecutive from frame ``first`` (where the run begins; every ``step``-th from it),
        whose PNGs an earlier run left (what ``resume`` keeps)."""
        return finished_frames(self.out_dir, source, first, step)

    def remove_results(self) -> None:
        """Delete the results an earlier run wrote here: the palette PNGs, the per-object folders'
        PNGs, the overlay, the RLE file, the cut-out and the redacted video (what ``--overwrite``
        replaces; nothing else is touched)."""
        for found in existing_results(self.out_dir):
            for path in found.glob("[!.]*.png") if found.is_dir() else [found]:
                path.unlink(missing_ok=True)
            if found.is_dir() and not any(found.iterdir()):
                found.rmdir()
        for path in self.files:
            path.unlink(missing_ok=True)

    def clear_temporaries(self) -> None:
        """Remove what a killed run left half-written (its files were never published)."""
        for folder in [self.out_dir, *(p for p in self.out_dir.glob("*") if p.is_dir() and p.name.isdigit())]:
            remove_stale_temporaries(folder)
        for path in self.files:
            if path.parent.is_dir():
                remove_stale_temporaries(path)

    def describe(self) -> str:
        """'out/ (palette PNGs), ov.mp4, masks.json': what a finished run wrote."""
        written = [f"{self.out_dir}/ (palette PNGs{', per-object PNGs' if self.per_object else ''})"]
        return ", ".join(written + [str(p) for p in self.files])


def clipped_box_warning(prompt: Prompt, width: int, height: int, sideways: bool = False) -> str | None:
    """The warning for a box that reaches outside the ``width`` × ``height`` frame (the session clips
    it), None when it lies inside; a box wholly outside is a :class:`QmraError` naming the object.
    ``sideways``: the file stores its frames turned (:attr:`FrameInfo.sideways`); a box that would fit
    the stored frame then most likely came from a tool that does not turn them, and the warning says so."""
    hint = ""
    box = prompt.box
    if sideways and box.x0 >= 0 and box.y0 >= 0 and box.x1 <= height and box.y1 <= width:  # fits the stored frame
        hint = (f" (the video is read upright, {width}x{height}, as players show it; its file stores it turned, "
                f"{height}x{width}: give boxes in the upright frame)")
    try:
        used = prompt.box.clip(width, height)
    except QmraError as error:
        raise QmraError(f"object {prompt.object_id}: {error}{hint}") from None
    if used == prompt.box:
        return None
    return (f"object {prompt.object_id}'s box {prompt.box.format()} reaches outside the {width}x{height} frame; "
            f"clipped to {used.format()}{hint}")


#: Boxes of two objects on one frame that overlap by at least this IoU are nearly the same box.
SAME_BOX_IOU = 0.9


def same_box_warnings(prompts: Sequence[Prompt], width: int, height: int) -> list[str]:
    """A warning for each pair of objects boxed on one frame with nearly the same box (IoU ≥
    :data:`SAME_BOX_IOU` once clipped to the ``width`` × ``height`` frame): the network sees the same
    input for both, so one of them can come back with no pixels even on that frame."""
    warnings = []
    for index, first in enumerate(prompts):
        for second in prompts[index + 1:]:
            if first.frame != second.frame:  # one object has one box per frame: the prompts checked that
                continue
            overlap = first.box.clip(width, height).iou(second.box.clip(width, height))
            if overlap >= SAME_BOX_IOU:
                warnings.append(f"objects {first.object_id} and {second.object_id} have nearly the same box on frame "
                                f"{first.frame} (IoU {overlap:.2f}): a box alone cannot tell them apart, so one of them "
                                f"may get no pixels; draw each box tightly around its own object")
    return warnings


class VideoRun:
    """Segments ``source`` from ``prompts`` into ``plan``'s files with ``segmenter``.

    ``first``, ``last``: the frames the run goes through (default: all); boxes before ``first`` are
    followed from their frame, but only frames from ``first`` on are written.
    ``keep``: frames ``first``..``first + keep - 1`` already have their PNGs (a resumed run: they are
    recomputed to rebuild the memory, checked against the files and not rewritten). ``warn``
    receives each warning line; ``on_frame`` is called with the number of frames finished after each one. While and after
    :meth:`run`, ``lost``, ``doubtful``, :attr:`frames_finished` and ``seconds`` say how it went.
    ``batcher``: query encodings shared with videos run in other threads (``Segmenter.start``).
    ``backwards``: objects boxed after frame ``first`` are also followed back to it
    (:mod:`.backwards`); ``earlier`` then says how far back each was found. ``overwrite``: the
    results of an earlier run in ``plan``'s paths are removed once the prompts are accepted.
    ``every``: only every ``every``-th frame from ``first`` is segmented and written (boxes must lie
    on those frames; ``keep`` counts them).
    """

    def __init__(self, segmenter, source: FrameSource, prompts: Sequence[Prompt], plan: OutputPlan, *,
                 video_name: str, keep: int = 0, warn: Callable[[str], None] = lambda line: None,
                 on_frame: Callable[[int], None] | None = None, batcher: QueryBatcher | None = None,
                 backwards: bool = False, first: int = 0, last: int | None = None, overwrite: bool = False,
                 every: int = 1) -> None:
        self.segmenter, self.source, self.prompts, self.plan = segmenter, source, list(prompts), plan
        self.batcher, self.first, self.last, self.overwrite, self.every = batcher, first, last, overwrite, every
        self.earlier = EarlierMasks(first_boxes(self.prompts, first) if backwards else [], first)
        self.video_name, self.keep, self.warn, self.on_frame = video_name, keep, warn, on_frame
        self.lost, self.doubtful = LostObjects(), DoubtfulObjects()
        self.seconds = 0.0
        self._writer: ResultWriter | None = None
        self._session = None

    @property
    def adaptations(self) -> dict:
        """The session's adaptations so far, by frame ({} before it starts or without adaptation)."""
        return self._session.adaptations if self._session is not None else {}

    @property
    def frames_finished(self) -> int:
        """Frames whose palette PNGs are in the output folder (kept ones included)."""
        return self._writer.frames_finished if self._writer is not None else self.keep

    @property
    def redaction_report(self) -> RedactionReport | None:
        """Where the redacted video hid an object only where it was last seen, or not at all (None
        without one, or before the run starts)."""
        return self._writer.redaction_report if self._writer is not None else None

    @property
    def started(self) -> bool:
        """Whether the prompts were accepted and the output files opened."""
        return self._writer is not None

    @property
    def frames_written(self) -> int:
        """Frames this run went through (kept ones included): the video's length once it is done."""
        return self._writer.frames_written if self._writer is not None else 0

    def run(self) -> None:
        """Segment every frame and write it; the files are closed on any exit, keeping what finished."""
        info = self.source.info
        check_boxes_on_every(self.prompts, self.first, self.every)  # before the backward run
        for prompt in self.prompts:
            clipped = clipped_box_warning(prompt, info.width, info.height, info.sideways)
            if clipped:
                self.warn(clipped)
        for line in same_box_warnings(self.prompts, info.width, info.height):
            self.warn(line)
        start = time.perf_counter()
        self.earlier.run(self.segmenter, self.source, batcher=self.batcher, step=self.every)  # before any file is opened
        for line in self.earlier.warnings():
            self.warn(line)
        session = self._session = self.segmenter.start(self.source, prompts=self.prompts, batcher=self.batcher)
        plan = self.plan
        made_folder = not plan.out_dir.exists()
        if plan.out_dir.is_dir():
            plan.clear_temporaries()
            if self.overwrite:  # the prompts were accepted: no frame of the earlier run may stay beside the new ones
                plan.remove_results()
        self._writer = ResultWriter(plan.out_dir, height=info.height, width=info.width, fps=info.fps,
                                    video_name=self.video_name, per_object=plan.per_object, overlay=plan.overlay,
                                    rle=plan.rle, keep=self.keep, first=self.first, cutout=plan.cutout, step=self.every,
                                    redact=plan.redact, redaction=plan.redaction, tracks=plan.tracks,
                                    audio=audio_source(self.source, self.first) if plan.overlay or plan.redact else None)
        try:
            for done, (_, result) in enumerate(session.propagate(start=self.first, stop=self.last, step=self.every)):
                if not done:  # the run's first frame: is the video in colour?
                    self._warn_if(greyscale_warning(self.segmenter.card, result.image, session.networks.steps or 0))
                self._writer.write(self.earlier.paint(result))
                self._check(result, bool(session.adaptations))  # the forward run's objects: lost means lost
                if self.on_frame is not None:
                    self.on_frame(self._writer.frames_written)
        finally:
            self._writer.close()  # keep what finished: complete PNGs, a playable overlay, a valid RLE file
            self.seconds = time.perf_counter() - start
            for line in self._writer.audio_failures:
                self.warn(line)
            if made_folder and self._writer.frames_written == 0 and not any(plan.out_dir.iterdir()):
                plan.out_dir.rmdir()  # a run that failed before its first frame leaves no empty folder

    def _warn_if(self, line: str | None) -> None:
        if line is not None:
            self.warn(line)

    def _check(self, result: FrameResult, adapted: bool) -> None:
        """A warning for each object lost on this frame, and each whose mask became doubtful."""
        for object_id in self.lost.update(result):
            self.warn(f"object {object_id} is lost on frame {result.index} ({result.name}): its mask is empty; if it is "
                      f"still in view, a box there brings it back (qmra ui, or {{\"id\": {object_id}, \"frame\": "
                      f"{result.index}, \"box\": [x0, y0, x1, y1]}} added to --boxes)")
        for object_id, signals in self.doubtful.update(result):
            self.warn(warning(object_id, result, signals, adapted))


def finished_text(count: int, out_dir: Path) -> str:
    """What an interrupted or failed run leaves, for its last message."""
    if count == 0:
        return f"no frame was finished in {out_dir}"
    return f"the {count} finished frame{'s' if count != 1 else ''} {'are' if count != 1 else 'is'} in {out_dir}"
