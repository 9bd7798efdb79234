"""Writing a session's results: DAVIS palette PNGs, per-object PNGs, an overlay mp4, COCO RLE JSON,
a CSV of each object's box and state per frame, a cut-out, and the video with the objects hidden
(the mp4s with the source's sound).

Every file is written atomically. :meth:`ResultWriter.close` finalises the overlay and the RLE file
with the frames finished so far, so an interrupted run still leaves complete, playable files. A
resumed run (:func:`finished_frames`, ``ResultWriter(keep=N)``) keeps the first N frames' PNGs and
draws the overlay and RLE for them again, so that those cover the whole video.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data.audio import AudioSource
from qmra.data.frames import FrameSource, natural_key
from qmra.data.masks import read_labels, write_binary_png, write_object_pngs, write_palette_png
from qmra.data.redaction import Redaction, RedactionReport, RedactWriter
from qmra.data.rle import RleVideoWriter
from qmra.data.tracks import TrackWriter
from qmra.data.video_writer import CUTOUT_CODECS, CutoutWriter, Mp4Writer, draw_overlay
from qmra.errors import DataError, QmraError
from qmra.inference.results import FrameResult

MP4_SUFFIXES = (".mp4", ".m4v")  # what players take an mp4 file for (the overlay, the redacted video)
MAX_PENDING_WRITES = 8  # frames queued for the writer thread at most
# A finished frame may differ from the resumed run's own result in this share of its pixels: a GPU
# (or another thread count) can flip a few boundary pixels; other boxes or weights change far more.
RESUME_TOLERANCE = 0.001


def existing_results(out_dir: Path) -> list[Path]:
    """PNG results already in ``out_dir`` (label maps, or per-object folders ``<id>/``)."""
    if not out_dir.is_dir():
        return []
    found = [p for p in out_dir.glob("*.png") if not p.name.startswith(".")]  # not a writer's temporary file
    found += [p for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit() and any(p.glob("[!.]*.png"))]
    return found


def check_outputs(out_dir: Path, overlay: Path | None = None, rle: Path | None = None, *, cutout: Path | None = None,
                  redact: Path | None = None, tracks: Path | None = None, overwrite: bool = False,
                  resume: bool = False) -> None:
    """Check every output path before any work (the weights load, the video decodes): ``out_dir`` is a
    folder or can be made one, ``overlay``, ``rle``, ``cutout``, ``redact`` and ``tracks`` are files that can be written and
    clash neither with each other nor with the masks, and the cut-out is of a kind
    :class:`CutoutWriter` writes. Earlier results are refused unless ``overwrite`` or ``resume``."""
    check_folder(out_dir, "--out")
    files = {flag: path for flag, path in (("--overlay", overlay), ("--rle", rle), ("--cutout", cutout), ("--redact", redact),
                                           ("--tracks", tracks)) if path is not None}
    for flag, path in files.items():
        check_file(path, flag)
        _check_apart_from_masks(path, flag, out_dir)
    if cutout is not None and cutout.suffix.lower() not in CUTOUT_CODECS:
        raise QmraError(f"--cutout {cutout}: give a .webm file (VP9 with transparency: plays in browsers) or a .mov "
                        "file (ProRes 4444 with transparency: for video editors)")
    flags = list(files)
    for index, flag in enumerate(flags):
        for other in flags[index + 1:]:
            if files[flag].resolve() == files[other].resolve():
                raise QmraError(f"{flag} and {other} name the same file {files[flag]}; give each its own")
    for flag in ("--overlay", "--redact"):
        if flag in files and files[flag].suffix.lower() not in MP4_SUFFIXES:
            raise QmraError(f"{flag} {files[flag]}: it is written as an H.264 mp4; give a file ending in .mp4")
    if tracks is not None and tracks.suffix.lower() != ".csv":
        raise QmraError(f"--tracks {tracks}: it is written as CSV; give a file ending in .csv")
    if overwrite or resume:
        return
    advice = "use --overwrite to replace them, or --resume to continue"
    found = sorted(existing_results(out_dir), key=lambda p: natural_key(p.name))
    if found:
        what = found[0].name if len(found) == 1 else f"{found[0].name} to {found[-1].name}: {len(found)} results"
        raise QmraError(f"{out_dir} already holds results ({what}); {advice}")
    taken = [path for path in files.values() if path.exists()]
    if taken:
        raise QmraError(f"{taken[0]} already exists ({advice})")


def check_folder(path: Path, flag: str) -> None:
    """``path`` is a folder that can be written into, or a folder that can be created."""
    if path.exists() and not path.is_dir():
        raise QmraError(f"{flag} {path} is a file, not a folder")
    _check_writable(path, flag)


def check_file(path: Path, flag: str) -> None:
    """``path`` can be written as a file: it is no folder, and its folder exists or can be created."""
    if path.is_dir():
        raise QmraError(f"{flag} {path} is a folder; give a file name")
    _check_writable(path.parent, flag, path)


def _check_writable(folder: Path, flag: str, named: Path | None = None) -> None:
    """``folder`` (or, when it does not exist yet, the folder it would be made in) is a folder this
    process may write in. ``named`` is the path the user gave, for the message."""
    named = folder if named is None else named
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise QmraError(f"{flag} {named}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QmraError(f"{flag} {named}: no permission to write in {existing}")


def _check_apart_from_masks(path: Path, flag: str, out_dir: Path) -> None:
    """A file output must not be the masks' folder, hold it, or take a mask's (or an object folder's) name."""
    resolved, masks = path.resolve(), out_dir.resolve()
    if masks.is_relative_to(resolved):  # the same path, or a folder above the masks
        raise QmraError(f"{flag} {path} is where the --out folder {out_dir} goes; give a file elsewhere")
    if resolved.parent == masks and (resolved.suffix.lower() == ".png" or resolved.name.isdigit()):
        raise QmraError(f"{flag} {path} would be taken for a mask in {out_dir}; give it another name or folder")


def finished_frames(out_dir: Path, source: FrameSource, first: int = 0, step: int = 1) -> int:
    """How many frames, consecutive from frame ``first`` (where the run begins; with ``step``, every
    ``step``-th frame from it), already have a complete palette PNG in ``out_dir``, named after the
    frames as :class:`ResultWriter` names them (what an interrupted run leaves).

    A PNG that does not decode ends the count (it is written again); one of another size is a
    :class:`QmraError`: ``out_dir`` then holds another video's results.
    """
    info = source.info
    count = 0
    while True:
        try:
            name = source.frame_name(first + count * step)
        except IndexError:  # a frame folder has no more frames
            return count
        path = out_dir / f"{name}.png"
        size = _png_size(path)
        if size is None:
            return count
        if size != (info.width, info.height):
            raise QmraError(f"{path} is {size[0]}x{size[1]}, the frames are {info.width}x{info.height}: {out_dir} holds "
                            "another video's results (use --overwrite to replace them)")
        count += 1


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG that decodes completely; None when it is missing or broken."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            image.load()  # the whole file: a truncated PNG fails here, not at its header
            return image.size
    except (OSError, SyntaxError, ValueError):
        return None


class ResumeMismatch(DataError):
    """A finished frame of an interrupted run differs from what the resumed run computes for it."""


def kept_labels(path: Path, computed: np.ndarray) -> np.ndarray:
    """The labels in a finished frame's PNG, checked against ``computed``, the resumed run's own
    result for that frame: the memory the run goes on with is built from ``computed``, so they
    must agree (up to :data:`RESUME_TOLERANCE`)."""
    stored = read_labels(path)
    differing = int(np.count_nonzero(stored != computed))
    if differing > RESUME_TOLERANCE * stored.size:
        raise ResumeMismatch(
            f"{path} differs from what this run computes for that frame ({differing / stored.size:.1%} of its pixels): "
            "continuing a run needs the source, boxes, weights and settings of the run that wrote it "
            "(use --overwrite to start over)")
    return stored


class ResultWriter:
    """Writes each :class:`FrameResult` as it comes, on one background thread (in order) so that
    encoding PNGs and video overlaps the network's work. An error in writing is raised by the next
    :meth:`write`, :meth:`flush` or :meth:`close`, and no later frame is written after it (the PNGs
    on disk stay consecutive from the run's first frame, as :func:`finished_frames` expects).

    ``keep``: frames ``first``..``first + keep - 1`` (``first``: where the run begins) already have
    their palette PNGs in ``out_dir`` (a resumed run). They are not written again; their overlay and
    cut-out frames and RLE entries are drawn from those PNGs, and per-object PNGs missing for them
    are added. ``cutout``: a ``.webm`` or ``.mov`` file of the objects on a transparent background
    (:class:`CutoutWriter`). ``redact``: an mp4 of the frames with the objects hidden as ``redaction``
    says (:class:`RedactWriter`); both mp4 files carry ``audio``, the source's sound. ``tracks``: a CSV
    of each object's box and state per frame (:class:`TrackWriter`). ``step``: the run segments every
    ``step``-th frame (the kept ones too); the videos play at ``fps / step``.
    """

    def __init__(self, out_dir: str | Path, *, height: int, width: int, fps: float | None, video_name: str,
                 per_object: bool = False, overlay: str | Path | None = None, rle: str | Path | None = None,
                 background: bool = True, keep: int = 0, first: int = 0, cutout: str | Path | None = None,
                 step: int = 1, redact: str | Path | None = None, redaction: Redaction = Redaction(),
                 audio: AudioSource | None = None, tracks: str | Path | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.per_object = per_object
        self.keep = keep
        self._kept_until = first + keep * step  # frames before this index are kept
        self.frames_written = 0  # frames done, kept ones included
        self.object_ids: set[int] = set()
        rate = (fps or 24.0) / step  # the frames written, shown over the time they span
        self._overlay = Mp4Writer(overlay, width, height, rate, audio=audio) if overlay else None
        self._cutout = CutoutWriter(cutout, width, height, rate) if cutout else None
        self._redact = RedactWriter(redact, width, height, rate, redaction, step, audio) if redact else None
        self._rle = RleVideoWriter(Path(rle), video_name, height, width) if rle else None
        self._tracks = TrackWriter(Path(tracks)) if tracks else None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qmra-writer") if background else None
        self._pending: deque[Future] = deque()
        self._failed = False

    @property
    def audio_failures(self) -> list[str]:
        """Why the sound of a video written stops early (a damaged track), one line each."""
        return [f"{video.path.name}: {video.audio.failure}" for video in (self._overlay, self._redact)
                if video is not None and video.audio is not None and video.audio.failure]

    @property
    def redaction_report(self) -> RedactionReport | None:
        """Where the redacted video hid an object only where it was last seen, or not at all (None
        without one)."""
        return None if self._redact is None else self._redact.report

    @property
    def frames_finished(self) -> int:
        """Frames whose palette PNGs are in ``out_dir``: the kept ones and those written since."""
        return max(self.frames_written, self.keep)

    def write(self, result: FrameResult) -> None:
        if self._worker is None:
            self._write(result)
            return
        self._collect(wait=False)
        if len(self._pending) >= MAX_PENDING_WRITES:  # bounded: a slow disk must not fill the RAM with frames
            self._pending[0].result()
            self._collect(wait=False)
        self._pending.append(self._worker.submit(self._write, result))

    def flush(self) -> None:
        """Wait until every frame given so far is written."""
        self._collect(wait=True)

    def _collect(self, wait: bool) -> None:
        while self._pending and (wait or self._pending[0].done()):
            self._pending.popleft().result()  # raises the writer's error here

    def _write(self, result: FrameResult) -> None:
        if self._failed:
            return  # a frame before this one failed: writing later ones would leave a gap
        try:
            self._write_frame(result)
        except BaseException:
            self._failed = True
            raise

    def _write_frame(self, result: FrameResult) -> None:
        self.object_ids.update(result.object_ids)
        object_ids = sorted(self.object_ids)
        path = self.out_dir / f"{result.name}.png"
        if result.index < self._kept_until:
            labels = kept_labels(path, result.labels)
            if self.per_object:
                self._add_missing_object_pngs(result.name, labels, object_ids)
        else:
            labels = result.labels
            write_palette_png(path, labels)
            if self.per_object:
                write_object_pngs(self.out_dir, result.name, labels, object_ids)
        if self._overlay is not None:
            self._overlay.write(draw_overlay(result.image, labels, {k: b for k, b in result.boxes.items() if b is not None}))
        if self._cutout is not None:
            self._cutout.write(result.image, labels)
        if self._redact is not None:
            self._redact.write_redacted(result.image, labels, object_ids, result.index)
        if self._rle is not None:
            self._rle.add(result.index, result.name, labels, object_ids)
            self._rle.save_if_due()
        if self._tracks is not None:
            self._tracks.add(result.index, result.name, labels, object_ids, result.confidence, result.doubts)
            self._tracks.save_if_due()
        self.frames_written += 1

    def _add_missing_object_pngs(self, name: str, labels: np.ndarray, object_ids: list[int]) -> None:
        """A kept frame's per-object PNGs that the interrupted run did not write (it ran without
        --per-object, or stopped between the label map and these)."""
        for object_id in object_ids:
            path = self.out_dir / str(object_id) / f"{name}.png"
            if _png_size(path) is None:
                write_binary_png(path, labels == object_id)

    def close(self) -> None:
        """Write what is pending, then finalise the overlay, the RLE and the tracks file with every frame written."""
        try:
            if self._worker is not None:
                try:
                    self.flush()
                finally:
                    self._worker.shutdown(wait=True)
        finally:
            try:
                _finish_videos([self._overlay, self._cutout, self._redact])
            finally:
                for growing in (self._rle, self._tracks):
                    if growing is not None and self.frames_written:
                        growing.save()


def _finish_videos(videos: list) -> None:
    """Close each video file that has frames (it appears at its path) and abort the others (no file);
    every one is finished even when one fails, whose error is then raised."""
    failure: BaseException | None = None
    for video in videos:
        if video is None:
            continue
        try:
            video.close() if video.frames_written else video.abort()
        except BaseException as error:  # noqa: BLE001 - the others are still closed; this is raised below
            failure = failure or error
    if failure is not None:
        raise failure
