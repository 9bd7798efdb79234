"""Writing a session's results: DAVIS palette PNGs, per-object PNGs, an overlay mp4, COCO RLE JSON.

Every file is written atomically. :meth:`ResultWriter.close` finalises the overlay and the RLE file
with the frames finished so far, so an interrupted run still leaves complete, playable files.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from qmra.data.masks import write_object_pngs, write_palette_png
from qmra.data.rle import RleVideoWriter
from qmra.data.video_writer import Mp4Writer, draw_overlay
from qmra.errors import QmraError
from qmra.inference.session import FrameResult

RLE_SAVE_EVERY = 25  # frames between rewrites of the RLE file during a run
MAX_PENDING_WRITES = 8  # frames queued for the writer thread at most


def existing_results(out_dir: Path) -> list[Path]:
    """PNG results already in ``out_dir`` (label maps, or per-object folders ``<id>/``)."""
    if not out_dir.is_dir():
        return []
    found = list(out_dir.glob("*.png"))
    found += [p for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit() and any(p.glob("*.png"))]
    return found


def check_outputs(out_dir: Path, extra_files: list[Path], overwrite: bool) -> None:
    """Refuse to write over earlier results unless ``overwrite``."""
    if overwrite:
        return
    clashes = [str(p) for p in existing_results(out_dir)[:1]] + [str(p) for p in extra_files if p.exists()]
    if clashes:
        raise QmraError(f"{clashes[0]} already holds results (use --overwrite to replace them)")


class ResultWriter:
    """Writes each :class:`FrameResult` as it comes, on one background thread (in order) so that
    encoding PNGs and video overlaps the network's work. An error in writing is raised by the next
    :meth:`write`, :meth:`flush` or :meth:`close`."""

    def __init__(self, out_dir: str | Path, *, height: int, width: int, fps: float | None, video_name: str,
                 per_object: bool = False, overlay: str | Path | None = None, rle: str | Path | None = None,
                 background: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.per_object = per_object
        self.frames_written = 0
        self.object_ids: set[int] = set()
        self._overlay = Mp4Writer(overlay, width, height, fps or 24.0) if overlay else None
        self._rle = RleVideoWriter(Path(rle), video_name, height, width) if rle else None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qmra-writer") if background else None
        self._pending: deque[Future] = deque()

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
        write_palette_png(self.out_dir / f"{result.name}.png", result.labels)
        self.object_ids.update(result.masks)
        if self.per_object:
            write_object_pngs(self.out_dir, result.name, result.labels, sorted(self.object_ids))
        if self._overlay is not None:
            self._overlay.write(draw_overlay(result.image, result.labels, {k: b for k, b in result.boxes.items() if b is not None}))
        if self._rle is not None:
            self._rle.add(result.index, result.name, result.labels, sorted(self.object_ids))
            if (self.frames_written + 1) % RLE_SAVE_EVERY == 0:
                self._rle.save()
        self.frames_written += 1

    def close(self) -> None:
        """Write what is pending, then finalise the overlay and the RLE file with every frame written."""
        try:
            if self._worker is not None:
                try:
                    self.flush()
                finally:
                    self._worker.shutdown(wait=True)
        finally:
            try:
                if self._overlay is not None:
                    if self._overlay.frames_written:
                        self._overlay.close()
                    else:
                        self._overlay.abort()
            finally:
                if self._rle is not None and self.frames_written:
                    self._rle.save()
