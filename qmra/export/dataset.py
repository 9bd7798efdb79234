"""Writing an export: each masked frame as an image file beside one annotation file.

Layout of ``DATASET``: ``images/<video id>/<frame name>.jpg`` (or ``.png``), the frames as qmra
saw them (upright, at their own size), and ``annotations.json``. Images are written atomically as
they are made and the annotation file last, so an export stopped half way has no annotation file
and the same command finishes it.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from qmra.data.atomic import write_bytes_atomic, write_text_atomic
from qmra.data.frames import FrameSource, open_frames
from qmra.data.masks import read_labels, write_palette_png
from qmra.errors import QmraError
from qmra.export.coco import CocoDocument
from qmra.export.davis import DavisDocument
from qmra.export.results import VideoResults, masked_frames
from qmra.export.youtube_vis import YouTubeVisDocument
from qmra.inference.progress import ProgressStyle, RunProgress

#: Annotation formats: name → the document that builds it (``add_video``, ``add_frame``, ``document``; its
#: ``IMAGES`` and ``MASKS`` folders and its ``ANNOTATIONS`` file, written last).
Document = CocoDocument | YouTubeVisDocument | DavisDocument
FORMATS: dict[str, type[Document]] = {"coco": CocoDocument, "youtube-vis": YouTubeVisDocument, "davis": DavisDocument}
#: Image file formats an export writes: suffix → Pillow's save arguments. JPEGs keep full-resolution
#: colour (4:4:4): halved chroma blurs the colour edges that masks follow.
IMAGE_FORMATS = {"jpg": {"format": "JPEG", "quality": 95, "subsampling": 0}, "png": {"format": "PNG", "compress_level": 1}}


@dataclass(frozen=True)
class VideoExported:
    """What one video gave: its id, frames written, objects with a mask on some frame."""

    id: str
    frames: int
    objects: int


def check_destination(out: Path, overwrite: bool, document: type[Document] | Document) -> None:
    """An earlier export in ``out`` (in ``document``'s format) stays unless ``overwrite`` (then
    :func:`export_videos` replaces it); an export without its annotation file (interrupted) is
    finished, image by image."""
    if out.exists() and not out.is_dir():
        raise QmraError(f"--out {out} is a file, not a folder")
    if (out / document.ANNOTATIONS).exists() and not overwrite:
        raise QmraError(f"{out} already holds an export ({document.ANNOTATIONS}); --overwrite replaces it")


def export_videos(videos: list[VideoResults], out: Path, document: Document, image_format: str,
                  overwrite: bool = False, done: Callable[[VideoExported], None] = lambda video: None,
                  progress: ProgressStyle = False, every: int = 1) -> None:
    """Write every video's masked frames under ``out/<document.IMAGES>`` (and their masks under
    ``out/<document.MASKS>``, where the format has them there) and add them to ``document``, then write
    its annotation file; ``done`` hears of each video once it is written. Every video's masks are
    checked against its frames first, and an earlier export is removed (``overwrite``) only then, so
    that bad input leaves ``out`` as it was. ``progress``: how each video's frames are counted on
    stderr (:class:`RunProgress`); ``every``: only every N-th masked frame of each video, from its first."""
    check_destination(out, overwrite, document)
    checked = [(source, frames[::every]) for source, frames in map(_checked, videos)]
    if overwrite and (out / document.ANNOTATIONS).exists():
        (out / document.ANNOTATIONS).unlink()
        for folder in (document.IMAGES, document.MASKS):
            if folder is not None:
                shutil.rmtree(out / folder, ignore_errors=True)
    for video, (source, frames) in zip(videos, checked):
        counter = RunProgress(progress, len(frames))
        try:
            exported = _export_video(video, source, frames, out, document, image_format, counter.frame)
        finally:
            counter.close()
        done(exported)
    write_text_atomic(out / document.ANNOTATIONS, json.dumps(document.document(), separators=(",", ":")))


def _checked(video: VideoResults) -> tuple[FrameSource, list[tuple[int, Path]]]:
    """The video's frames and its masked frames, each mask the frames' size (read from the PNG's header)."""
    source = open_frames(video.source)
    frames = masked_frames(video.masks, source)
    info = source.info
    for _, png in frames:
        with Image.open(png) as mask:
            if mask.size != (info.width, info.height):
                raise QmraError(f"{png} is {mask.width}x{mask.height} but the frames of {source.description} are "
                                f"{info.width}x{info.height}: were these masks segmented from another video?")
    return source, frames


def _export_video(video: VideoResults, source: FrameSource, frames: list[tuple[int, Path]], out: Path,
                  document: Document, image_format: str, written: Callable[[], None]) -> VideoExported:
    video_id = document.add_video(video.id)
    folder = out / document.IMAGES / video.id
    folder.mkdir(parents=True, exist_ok=True)
    objects: set[int] = set()
    for index, png in frames:  # in frame order: a video is decoded once, front to back
        image = source.read(index)  # its size is the source's, as every mask's (checked)
        labels = read_labels(png, "palette")
        name = f"{source.frame_name(index)}.{image_format}"
        write_bytes_atomic(folder / name, _encode(image, image_format))
        if document.MASKS is not None:
            write_palette_png(out / document.MASKS / video.id / f"{source.frame_name(index)}.png", labels)
        objects.update(document.add_frame(video_id, index, f"{video.id}/{name}", labels))
        written()
    return VideoExported(video.id, len(frames), len(objects))


def _encode(image: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **IMAGE_FORMATS[image_format])
    return buffer.getvalue()

