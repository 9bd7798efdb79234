"""Annotation masks as prompts (``qmra segment --masks``): a user who has an object's mask (DAVIS or
YouTube-VOS annotations, another tool's output) gives qmra the mask instead of drawing its box.

qmra is box-prompted (the paper's weak supervision): each object starts from the tight box of its
pixels on the first mask it appears in, exactly what ``qmra eval`` gives every object under the box
protocol, and the mask itself is its result on that frame (:attr:`Prompt.mask`); the network learns
the shape only where test-time adaptation runs with mask losses (``--adapt-mask-weight``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from qmra.data.boxes import box_from_mask
from qmra.data.masks import read_labels
from qmra.data.object_ids import check_object_id
from qmra.data.rle import decode_rle
from qmra.errors import BoxError, DataError, QmraError
from qmra.inference.prompts import Prompt

MASK_SUFFIX = ".png"
RLE_SUFFIX = ".json"


@dataclass(frozen=True)
class MaskPrompts:
    """The prompts read from masks (each with its mask, all of one size). ``on_first_frame``: one
    mask not named after a frame, whose boxes go on the first frame segmented (as ``--box`` boxes do)."""

    prompts: list[Prompt]
    on_first_frame: bool


def prompts_from_masks(path: str | Path) -> MaskPrompts:
    """``path``: a PNG mask (palette: its indices are the object ids; 0/255 greyscale: object 1;
    greyscale ids 1..254 as they are), or a folder of them named after their frames (``00000.png``,
    ``00040.png``: frames counted from the video's start, as DAVIS's ``Annotations/<video>/``), or a
    JSON file of COCO RLE masks (:func:`rle_frames`). Each object id starts on the first mask (by
    frame) that holds it, inside the tight box of its pixels there; a later mask of the same object
    is not a correction. A single PNG named after a frame is that frame; any other name, the first
    frame segmented."""
    path = Path(path)
    if path.is_dir():
        files = sorted((int(p.stem), p) for p in path.iterdir() if p.suffix.lower() == MASK_SUFFIX and p.stem.isdigit())
        if not files:
            raise QmraError(f"--masks {path}: no PNG named after its frame (00000.png, 00040.png, ...) in this folder")
        frames, on_first_frame = [(frame, file, _png_objects(file)) for frame, file in files], False
    elif path.is_file() and path.suffix.lower() == RLE_SUFFIX:
        frames, on_first_frame = rle_frames(path)
    elif path.is_file():
        if path.suffix.lower() != MASK_SUFFIX:
            raise QmraError(f"--masks {path}: expected a PNG mask (palette or greyscale), a folder of them or a JSON file "
                            "of RLE masks")
        frame = int(path.stem) if path.stem.isdigit() else 0
        frames, on_first_frame = [(frame, path, _png_objects(path))], not path.stem.isdigit()
    else:
        raise QmraError(f"masks not found: {path}")
    prompts: list[Prompt] = []
    size: tuple[int, int] | None = None
    first = ""
    for frame, where, objects in frames:
        shape, found = objects({prompt.object_id for prompt in prompts})
        for height, width in ([shape] if shape else []) + [mask.shape for _, mask in found]:
            if size is None:
                size, first = (width, height), where.name if isinstance(where, Path) else where
            elif size != (width, height):
                raise QmraError(f"{where}: {width}x{height} pixels, but {first} is {size[0]}x{size[1]}: every mask "
                                "must have the frames' size")
        for object_id, mask in found:
            box = box_from_mask(mask)
            if box is not None:
                prompts.append(Prompt(object_id, frame, box, mask))
    if not prompts:
        raise QmraError(f"--masks {path}: every mask is empty (all pixels 0): no object to follow")
    return MaskPrompts(prompts, on_first_frame)


#: One frame's masks: given the ids already started, the frame's size (H, W; None: no mask on it)
#: and each other object's id and H×W bool mask.
FrameObjects = Callable[[set[int]], tuple[tuple[int, int] | None, list[tuple[int, np.ndarray]]]]


def _png_objects(file: Path) -> FrameObjects:
    def objects(started: set[int]) -> tuple[tuple[int, int] | None, list[tuple[int, np.ndarray]]]:
        labels = mask_labels(file)
        return labels.shape, [(int(i), labels == i) for i in np.unique(labels) if i and int(i) not in started]
    return objects


def rle_frames(path: Path) -> tuple[list[tuple[int, str, FrameObjects]], bool]:
    """The frames of a JSON file of COCO RLE masks, and whether they are on the first frame segmented:
    ``qmra segment --rle``'s file (``{"frames": [{"index": i, "objects": {"<id>": {"size", "counts"}}}]}``,
    frames by their index in the video), or a list of masks on the first frame, objects 1, 2, ... in
    order (``{"size": [H, W], "counts": ...}``, or objects holding one as ``"segmentation"``, as SAM's
    ``coco_rle`` output does; an ``"id"`` names an object)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise QmraError(f"--masks {path}: not a readable JSON file ({error})") from None
    try:
        if isinstance(document, dict) and isinstance(document.get("frames"), list):
            frames = sorted(((int(f["index"]), f"{path.name}, frame {int(f['index'])}", dict(f["objects"]))
                             for f in document["frames"]), key=lambda entry: entry[0])
            on_first_frame = False
        elif isinstance(document, list):
            masks = [item.get("segmentation", item) if isinstance(item, dict) else item for item in document]
            ids = [item.get("id", number) if isinstance(item, dict) else number for number, item in enumerate(document, 1)]
            frames, on_first_frame = [(0, path.name, dict(zip(ids, masks)))], True
        else:
            raise TypeError
    except (TypeError, KeyError, ValueError):
        raise QmraError(f"--masks {path}: expected qmra's RLE JSON ({{\"frames\": [{{\"index\", \"objects\"}}]}}, as qmra "
                        "segment --rle writes it) or a list of COCO RLE masks ({\"size\", \"counts\"}, or objects with a "
                        "\"segmentation\")") from None
    return [(frame, where, _rle_objects(where, objects)) for frame, where, objects in frames], on_first_frame


def _rle_objects(where: str, objects: dict) -> FrameObjects:
    def decoded(started: set[int]) -> tuple[tuple[int, int] | None, list[tuple[int, np.ndarray]]]:
        found = []
        for key, rle in objects.items():
            object_id = check_object_id(int(key) if isinstance(key, str) and key.isdigit() else key)
            if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
                raise QmraError(f"{where}: object {object_id}'s mask is not COCO RLE ({{\"size\", \"counts\"}}; "
                                "polygons are not read)")
            if object_id not in started:
                try:
                    found.append((object_id, decode_rle(rle).astype(bool)))
                except (TypeError, ValueError) as error:
                    raise QmraError(f"{where}: object {object_id}'s RLE cannot be read: {error}") from None
        return None, found  # each decoded mask's size is checked
    return decoded


def mask_labels(path: Path) -> np.ndarray:
    """H×W object ids (0 = background) of a mask PNG: palette indices, 0/255 greyscale as object 1,
    or greyscale ids as they are."""
    try:
        return read_labels(path, "auto")
    except DataError:
        # A greyscale mask of ids (1, 2, ...) rather than 0/255: read its values as ids. Other
        # errors (an RGB image, ids over 254) stand, said the way read_labels says them.
        return read_labels(path, "palette")
