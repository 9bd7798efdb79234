"""A page's results written as ``qmra segment`` writes them, into a folder or one zip file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from qmra.data import open_frames
from qmra.data.atomic import write_text_atomic
from qmra.data.audio import audio_source
from qmra.data.boxes import box_from_mask
from qmra.data.masks import write_binary_png
from qmra.data.redaction import Redaction
from qmra.inference.outputs import ResultWriter, check_outputs
from qmra.inference.results import FrameResult
from qmra.ui.frames import FrameStore
from qmra.ui.plan import Plan

#: The folder of an export that holds the masks loaded as prompts.
PROMPTS = "prompts"


def export_results(folder: Path, store: FrameStore, plan: Plan, labels_of: Callable[[int], np.ndarray | None], *,
                   per_object: bool = True, overlay: bool = True, rle: bool = True, cutout: bool = False,
                   redact: bool = False, redaction: Redaction = Redaction(), overwrite: bool = False,
                   tracks: bool = False, doubts_of: Callable[[int], dict[int, tuple[str, ...]]] = lambda frame: {}) -> dict:
    """Palette PNGs named after the frames, optionally ``<id>/`` per-object PNGs, ``overlay.mp4``,
    ``masks.json`` (COCO RLE), ``tracks.csv`` (each object's box and state per frame; ``doubts_of(frame)``:
    the signs each object's mask went wrong there; no confidence, which the page does not keep),
    ``cutout.webm`` (the objects on a transparent background) and ``redacted.mp4`` (the frames with
    the objects hidden as ``redaction`` says); also ``boxes.json``, the boxes drawn and the masks
    loaded (``prompts/<id>-<frame>.png``), which ``qmra segment VIDEO --boxes boxes.json`` runs again.
    ``labels_of(frame)``: the frame's label map, or None (written as background; the answer counts
    those frames). The answer's ``check`` lists what to look at before
    sharing the files: frames where the redacted video hid an object only where it was last seen, or
    not at all, and a sound track that ended early."""
    overlay_path = folder / "overlay.mp4" if overlay else None
    rle_path = folder / "masks.json" if rle else None
    cutout_path = folder / "cutout.webm" if cutout else None
    redact_path = folder / "redacted.mp4" if redact else None
    tracks_path = folder / "tracks.csv" if tracks else None
    check_outputs(folder, overlay_path, rle_path, cutout=cutout_path, redact=redact_path, tracks=tracks_path,
                  overwrite=overwrite)
    # The overlay and the redacted video carry a video file's sound (a frame folder has none).
    audio = audio_source(open_frames(store.path)) if (overlay or redact) and store.folder is None else None
    writer = ResultWriter(folder, height=store.info.height, width=store.info.width, fps=store.info.fps,
                          video_name=store.name, per_object=per_object, overlay=overlay_path, rle=rle_path,
                          cutout=cutout_path, redact=redact_path, redaction=redaction, audio=audio, tracks=tracks_path)
    missing = 0
    try:
        for frame in range(store.count):
            labels = labels_of(frame)
            if labels is None:
                missing += 1
                labels = np.zeros((store.info.height, store.info.width), np.uint8)
            boxes = {object_id: box_from_mask(labels == object_id) for object_id in plan.object_ids}
            image = store.read(frame) if overlay or cutout or redact else None
            writer.write(FrameResult(frame, store.frame_name(frame), labels, boxes, image,  # type: ignore[arg-type]
                                     doubts=doubts_of(frame)))
    finally:
        writer.close()
    write_text_atomic(folder / "boxes.json", json.dumps(_prompts(folder, plan), indent=1) + "\n")
    files = [f"{writer.frames_written} palette PNGs"]
    files += [label for flag, label in ((per_object, "per-object PNGs"), (overlay, "overlay.mp4"), (rle, "masks.json"),
                                        (tracks, "tracks.csv"), (cutout, "cutout.webm"), (redact, "redacted.mp4")) if flag]
    report = writer.redaction_report
    # Frames of the redacted video where an object was hidden only where last seen, or not at all.
    check = [f"redacted.mp4: {line}" for line in (report.lines() if report is not None else [])]
    return {"folder": str(folder), "frames": writer.frames_written, "without_masks": missing, "files": files + ["boxes.json"],
            "check": check + writer.audio_failures}


def _prompts(folder: Path, plan: Plan) -> list[dict]:
    """The ``--boxes`` entries of every keyframe; a loaded mask is written beside them as a binary PNG
    (those of an earlier export into this folder removed)."""
    for stale in (folder / PROMPTS).glob("*.png"):
        stale.unlink()
    entries = []
    for object_id in plan.object_ids:
        for k in plan.keyframes[object_id]:
            entry: dict = {"id": k.object_id, "frame": k.frame}
            if k.mask is None:
                entry["box"] = [round(v, 2) for v in k.box.as_tuple()]
            else:
                entry["mask"] = f"{PROMPTS}/{k.object_id}-{k.frame:05d}.png"
                (folder / PROMPTS).mkdir(exist_ok=True)
                write_binary_png(folder / entry["mask"], k.mask)
            entries.append(entry)
    return entries


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder`` packed as ``archive`` (stored: PNG and H.264 do not shrink), paths under its name."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def export_options(body: dict) -> dict:
    """The export's switches: every file but the cut-out and the redacted video unless the body says
    otherwise; ``redact_style``: how the redacted video hides the objects (blur by default)."""
    options: dict = {name: bool(body.get(name, name not in ("cutout", "redact")))
                     for name in ("per_object", "overlay", "rle", "tracks", "cutout", "redact")}
    options["redaction"] = Redaction(body.get("redact_style", Redaction.style))  # a bad style: one error line
    return options
