"""Annotation masks as prompts (``qmra segment --masks``): a user who has an object's mask (DAVIS or
YouTube-VOS annotations, another tool's output) gives qmra the mask instead of drawing its box.

qmra is box-prompted (the paper's weak supervision): each object starts from the tight box of its
pixels on the first mask it appears in, exactly what ``qmra eval`` gives every object under the box
protocol, and the mask itself is its result on that frame (:attr:`Prompt.mask`); the network learns
the shape only where test-time adaptation runs with mask losses (``--adapt-mask-weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmra.data.boxes import box_from_mask
from qmra.data.masks import read_labels
from qmra.errors import BoxError, DataError, QmraError
from qmra.inference.prompts import Prompt

MASK_SUFFIX = ".png"


@dataclass(frozen=True)
class MaskPrompts:
    """The prompts read from masks of ``size`` (width, height) pixels. ``on_first_frame``: one mask
    not named after a frame, whose boxes go on the first frame segmented (as ``--box`` boxes do)."""

    prompts: list[Prompt]
    size: tuple[int, int]
    on_first_frame: bool


def prompts_from_masks(path: str | Path) -> MaskPrompts:
    """``path``: a PNG mask (palette: its indices are the object ids; 0/255 greyscale: object 1;
    greyscale ids 1..254 as they are), or a folder of them named after their frames (``00000.png``,
    ``00040.png``: frames counted from the video's start, as DAVIS's ``Annotations/<video>/``). Each
    object id starts on the first mask (by frame) that holds it, inside the tight box of its pixels
    there; a later mask of the same object is not a correction. A single file named after a frame
    is that frame; any other name, the first frame segmented."""
    path = Path(path)
    if path.is_dir():
        files = sorted((int(p.stem), p) for p in path.iterdir() if p.suffix.lower() == MASK_SUFFIX and p.stem.isdigit())
        if not files:
            raise QmraError(f"--masks {path}: no PNG named after its frame (00000.png, 00040.png, ...) in this folder")
        on_first_frame = False
    elif path.is_file():
        if path.suffix.lower() != MASK_SUFFIX:
            raise QmraError(f"--masks {path}: expected a PNG mask (palette or greyscale) or a folder of them")
        files = [(int(path.stem) if path.stem.isdigit() else 0, path)]
        on_first_frame = not path.stem.isdigit()
    else:
        raise QmraError(f"masks not found: {path}")
    prompts: list[Prompt] = []
    size: tuple[int, int] | None = None
    for frame, file in files:
        labels = mask_labels(file)
        if size is None:
            size = labels.shape[1], labels.shape[0]
        elif size != (labels.shape[1], labels.shape[0]):
            raise QmraError(f"{file}: {labels.shape[1]}x{labels.shape[0]} pixels, but {files[0][1].name} is "
                            f"{size[0]}x{size[1]}: every mask must have the frames' size")
        started = {0} | {prompt.object_id for prompt in prompts}
        for object_id in (int(i) for i in np.unique(labels) if int(i) not in started):
            mask = labels == object_id
            box = box_from_mask(mask)
            assert box is not None  # np.unique found its pixels
            prompts.append(Prompt(object_id, frame, box, mask))
    if not prompts:
        raise QmraError(f"--masks {path}: every mask is empty (all pixels 0): no object to follow")
    assert size is not None
    return MaskPrompts(prompts, size, on_first_frame)


def mask_labels(path: Path) -> np.ndarray:
    """H×W object ids (0 = background) of a mask PNG: palette indices, 0/255 greyscale as object 1,
    or greyscale ids as they are."""
    try:
        return read_labels(path, "auto")
    except DataError:
        # A greyscale mask of ids (1, 2, ...) rather than 0/255: read its values as ids. Other
        # errors (an RGB image, ids over 254) stand, said the way read_labels says them.
        return read_labels(path, "palette")
