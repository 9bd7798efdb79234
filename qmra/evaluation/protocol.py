"""Running qmra under the weakly-supervised protocol: each object gets only the tight box of its
first mask, on the frame where it first appears, never the mask (or that box as a person might draw
it: :class:`~qmra.evaluation.box_noise.BoxNoise`); or, under the mask protocol, the mask as well."""

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
from qmra.evaluation.box_noise import BoxNoise
from qmra.inference import Segmenter
from qmra.inference.prompts import Prompt
from qmra.inference.outputs import finished_frames, kept_labels


def first_prompts(sequence: FolderSequence, object_ids: list[int], first_frames: dict[int, int] | None = None,
                  noise: BoxNoise = BoxNoise()) -> dict[int, Prompt]:
    """object id → its prompt: the frame of its first mask and that mask's tight box, changed by
    ``noise``, with the mask itself under the mask protocol (``noise.first_masks``). Reads only the
    annotations it needs."""
    boxes: dict[int, Prompt] = {}
    for index in sequence.annotated_indices:
        wanted = [i for i in object_ids if i not in boxes and (first_frames is None or first_frames[i] <= index)]
        if not wanted:
            if len(boxes) == len(object_ids):
                break
            continue
        labels = sequence.labels(index)
        for object_id in wanted:
            mask = labels == object_id
            box = box_from_mask(mask)
            if box is not None:
                drawn = noise.apply(box, labels.shape[:2], f"{sequence.name}/{object_id}")
                boxes[object_id] = Prompt(object_id, index, drawn, mask if noise.first_masks else None)
    missing = [i for i in object_ids if i not in boxes]
    if missing:
        raise DataError(f"{sequence.name}: object(s) {', '.join(map(str, missing))} never appear in the annotations")
    return boxes


def _segment(segmenter: Segmenter, sequence: FolderSequence, object_ids: list[int], out_folder: Path,
             first_frames: dict[int, int] | None = None, resume: bool = False,
             noise: BoxNoise = BoxNoise()) -> tuple[int, float, bool]:
    """Segment one sequence into ``out_folder/<frame>.png``; returns (frames the model ran on, its
    seconds, whether the network adapted to it first because it is greyscale: ``grey_adapt_steps``).

    ``resume``: a sequence whose every frame is already in ``out_folder`` is skipped, (0, 0.0); a
    partial one resumes: its finished frames are recomputed (the memory is built from them) and
    checked against their PNGs, not rewritten, and the rest are written.
    """
    source = FrameFolder(sequence.frames_dir)
    keep = finished_frames(out_folder, source) if resume else 0
    if keep == source.info.num_frames:
        return 0, 0.0, False
    session = segmenter.start(source, prompts=list(first_prompts(sequence, object_ids, first_frames, noise).values()))
    frames = 0
    for index, result in session.propagate():
        path = out_folder / f"{result.name}.png"
        if index < keep:
            kept_labels(path, result.labels)
        else:
            write_palette_png(path, result.labels)
        frames += 1
    return frames, session.model_seconds, not segmenter.settings.adapt_steps and bool(session.networks.steps)


def _rates(frames: int, model_seconds: float, started: float) -> dict:
    """Frames per second of the model alone and end to end (0.0 when nothing ran: all were skipped)."""
    total = time.perf_counter() - started
    return {"model_fps": frames / model_seconds if frames else 0.0, "end_to_end_fps": frames / total if frames else 0.0}


def predict_davis(segmenter: Segmenter, davis: DavisDataset, out_dir: str | Path, *, resume: bool = False,
                  noise: BoxNoise = BoxNoise()) -> dict:
    """Predict every sequence into ``out_dir/<sequence>/<frame>.png``; returns the speed record (with
    the boxes' ``noise``, where they were not tight).

    ``resume``: see :func:`_segment`. The record then covers the sequences run this time only
    (``frames`` is 0 when every sequence was complete) and lists the skipped ones, and those the
    network adapted to first because they are greyscale (``greyscale_adapted``).
    """
    out_dir = Path(out_dir)
    frames = 0
    model_seconds = 0.0
    started = time.perf_counter()
    objects = 0
    skipped: list[str] = []
    grey: list[str] = []
    for sequence in davis:
        object_ids = list(range(1, int(sequence.labels(sequence.annotated_indices[0]).max()) + 1))
        count, seconds, adapted = _segment(segmenter, sequence, object_ids, out_dir / sequence.name, resume=resume,
                                           noise=noise)
        if count == 0:
            skipped.append(sequence.name)
            continue
        grey += [sequence.name] if adapted else []
        objects += len(object_ids)
        frames += count
        model_seconds += seconds
    record = {"frames": frames, "objects": objects, "sequences": len(davis) - len(skipped),
              **_rates(frames, model_seconds, started), "device": str(segmenter.device),
              "model": segmenter.model.config.to_dict(), "mem_every": segmenter.settings.mem_every, **noise.record()}
    if skipped:
        record["skipped_sequences"] = skipped
    if grey:
        record["greyscale_adapted"] = grey
    return record


def predict_youtube_vos(segmenter: Segmenter, dataset: YouTubeVOSDataset, out_dir: str | Path, *,
                        resume: bool = False, noise: BoxNoise = BoxNoise()) -> dict:
    """The submission layout: ``out_dir/Annotations/<video>/<frame>.png`` for every frame of each video.
    ``resume``: see :func:`_segment`; ``skipped`` counts the videos that were complete."""
    out_dir = Path(out_dir) / "Annotations"
    frames = 0
    model_seconds = 0.0
    started = time.perf_counter()
    skipped = 0
    grey: list[str] = []
    for video in dataset:
        count, seconds, adapted = _segment(segmenter, video, video.object_ids, out_dir / video.name, video.first_frames,
                                           resume, noise)
        skipped += count == 0
        frames += count
        model_seconds += seconds
        grey += [video.name] if adapted else []
    record = {"frames": frames, "videos": len(dataset), "skipped": skipped, **_rates(frames, model_seconds, started),
              "device": str(segmenter.device), **noise.record()}
    return {**record, "greyscale_adapted": grey} if grey else record
