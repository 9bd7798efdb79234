"""Finding what a run segmented: the videos of a ``qmra batch`` folder or one ``qmra segment`` folder,
and which of a video's frames have masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from qmra.batch.index import DONE, FAILED, ResultIndex
from qmra.data.frames import FrameSource, VideoFile
from qmra.errors import QmraError

#: The index ``qmra batch`` keeps in its output folder.
INDEX = "index.jsonl"


@dataclass(frozen=True)
class VideoResults:
    """One segmented video: ``id`` (its name in the export), ``source`` (the video file or frame folder
    it was segmented from) and ``masks`` (the folder of its DAVIS palette PNGs)."""

    id: str
    source: Path
    masks: Path


@dataclass(frozen=True)
class Found:
    """The videos to export, and a line for each video of a batch that is left out (not finished)."""

    videos: list[VideoResults]
    skipped: list[str]


def find_results(results: Path, source: Path | None) -> Found:
    """``results``: a ``qmra batch`` output folder (its ``index.jsonl`` says where each video came from;
    ``source`` must be None) or a ``qmra segment`` output folder (``source``: what was segmented)."""
    if not results.is_dir():
        raise QmraError(f"results folder not found: {results}")
    if (results / INDEX).is_file():
        if source is not None:
            raise QmraError(f"{results} is a qmra batch folder, whose {INDEX} names each video's source: "
                            "leave out --video")
        return _batch_results(results)
    if source is None:
        raise QmraError(f"{results} has no {INDEX}, so it is not a qmra batch folder: for the masks of "
                        "qmra segment, name the video or frame folder they were segmented from with --video")
    if not source.exists():
        raise QmraError(f"--video {source}: not found")
    name = source.stem if source.is_file() else source.resolve().name
    return Found([VideoResults(name or "video", source, results)], [])


def _batch_results(results: Path) -> Found:
    videos, skipped = [], []
    for video_id, record in ResultIndex(results / INDEX).latest.items():
        status = record.get("status")
        if status != DONE:
            skipped.append(f"video {video_id} is left out: it failed ({record.get('error')})" if status == FAILED else
                           f"video {video_id} is left out: it is {status}; run qmra batch again to finish it, then "
                           "export again")
            continue
        source = Path(str(record.get("video", "")))
        if not source.exists():
            raise QmraError(f"{results / INDEX}: video {video_id} was segmented from {source}, which is gone; "
                            "put it back to export its frames")
        videos.append(VideoResults(video_id, source, results / video_id))
    if not videos:
        raise QmraError(f"{results / INDEX}: no video is done ({len(skipped)} failed or unfinished)")
    return Found(videos, skipped)


def masked_frames(masks: Path, source: FrameSource) -> list[tuple[int, Path]]:
    """The frames of ``source`` that have a palette PNG in ``masks`` (named after the frames, as qmra
    writes them): (frame index, PNG path) in frame order. A PNG that names no frame is an error."""
    pngs = sorted(path for path in masks.glob("*.png") if path.is_file())
    if not pngs:
        raise QmraError(f"no mask PNGs in {masks}")
    index_of = _frame_indices(source)
    frames = []
    for path in pngs:
        index = index_of(path.stem)
        if index is None:
            raise QmraError(f"{path}: no frame of {source.description} is named {path.stem!r}: were these masks "
                            "segmented from another video?")
        frames.append((index, path))
    return sorted(frames)


def _frame_indices(source: FrameSource) -> Callable[[str], int | None]:
    """A function from an output name to the frame index it was written for, or None."""
    if isinstance(source, VideoFile):
        count = source.header_frames

        def from_number(name: str) -> int | None:
            if not (name.isdigit() and len(name) >= 5):
                return None
            index = int(name)
            return index if count is None or index < count else None
        return from_number
    count = source.info.num_frames or 0
    names = {source.frame_name(index): index for index in range(count)}
    return names.get
