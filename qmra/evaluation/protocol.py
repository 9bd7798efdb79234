"""Running qmra under the weakly-supervised protocol: each object gets only the tight box of its
first mask, on the frame where it first appears, never the mask."""

from __future__ import annotations

import time
from pathlib import Path

from qmra.data.boxes import box_from_mask
from qmra.data.davis import DavisDataset
from qmra.data.frames import FrameFolder
from qmra.data.masks import write_palette_png
from qmra.data.sequence import FolderSequence
from qmra.data.youtube_vos import YouTubeVOSDataset
from qmra.errors import DataError
from qmra.inference import Segmenter


def first_boxes(sequence: FolderSequence, object_ids: list[int], first_frames: dict[int, int] | None = None) -> dict[int, tuple[int, object]]:
    """object id → (frame, tight box of its first mask). Reads only the annotations it needs."""
    boxes: dict[int, tuple[int, object]] = {}
    for index in sequence.annotated_indices:
        wanted = [i for i in object_ids if i not in boxes and (first_frames is None or first_frames[i] <= index)]
        if not wanted:
            if len(boxes) == len(object_ids):
                break
            continue
        labels = sequence.labels(index)
        for object_id in wanted:
            box = box_from_mask(labels == object_id)
            if box is not None:
                boxes[object_id] = (index, box)
    missing = [i for i in object_ids if i not in boxes]
    if missing:
        raise DataError(f"{sequence.name}: object(s) {', '.join(map(str, missing))} never appear in the annotations")
    return boxes


def _segment(segmenter: Segmenter, sequence: FolderSequence, object_ids: list[int], out_folder: Path,
             first_frames: dict[int, int] | None = None) -> tuple[int, float]:
    session = segmenter.start(FrameFolder(sequence.frames_dir))
    for object_id, (frame, box) in first_boxes(sequence, object_ids, first_frames).items():
        session.add_box(object_id, box, frame)
    frames = 0
    for _, result in session.propagate():
        write_palette_png(out_folder / f"{result.name}.png", result.labels)
        frames += 1
    return frames, session.model_seconds


def predict_davis(segmenter: Segmenter, davis: DavisDataset, out_dir: str | Path) -> dict:
    """Predict every sequence into ``out_dir/<sequence>/<frame>.png``; returns the speed record."""
    out_dir = Path(out_dir)
    frames = 0
    model_seconds = 0.0
    started = time.perf_counter()
    objects = 0
    for sequence in davis:
        object_ids = list(range(1, int(sequence.labels(sequence.annotated_indices[0]).max()) + 1))
        objects += len(object_ids)
        count, seconds = _segment(segmenter, sequence, object_ids, out_dir / sequence.name)
        frames += count
        model_seconds += seconds
    total = time.perf_counter() - started
    return {"frames": frames, "objects": objects, "sequences": len(davis), "model_fps": frames / model_seconds,
            "end_to_end_fps": frames / total, "device": str(segmenter.device), "random_weights": segmenter.random_weights,
            "model": segmenter.model.config.to_dict(), "mem_every": segmenter.settings.mem_every}


def predict_youtube_vos(segmenter: Segmenter, dataset: YouTubeVOSDataset, out_dir: str | Path) -> dict:
    """The submission layout: ``out_dir/Annotations/<video>/<frame>.png`` for every frame of each video."""
    out_dir = Path(out_dir) / "Annotations"
    frames = 0
    model_seconds = 0.0
    started = time.perf_counter()
    for video in dataset:
        count, seconds = _segment(segmenter, video, video.object_ids, out_dir / video.name, video.first_frames)
        frames += count
        model_seconds += seconds
    return {"frames": frames, "videos": len(dataset), "model_fps": frames / model_seconds,
            "end_to_end_fps": frames / (time.perf_counter() - started), "device": str(segmenter.device)}
