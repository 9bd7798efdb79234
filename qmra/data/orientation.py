"""Frames the way players and browsers show them: a video's display rotation, a photo's EXIF orientation.

Phones film portrait video as landscape pixels with a *display rotation* in the file (an iPhone
held upright stores 1920×1080 and "rotate by −90°"), and write photos with an EXIF orientation tag.
Every player, browser, FFmpeg and OpenCV turn them upright before showing them, so the boxes a
user reads off a player are in upright pixels. qmra decodes frames upright too: the boxes, the
masks, the overlay and the page of ``qmra ui`` all agree with what the user sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from qmra.data.hdr import sdr_rgb

#: EXIF tag 274, Orientation: 1 is upright; 5–8 turn the image a quarter, so its sides swap.
EXIF_ORIENTATION = 0x0112
SIDES_SWAPPED = (5, 6, 7, 8)


def quarter_turns(degrees: float | None) -> int:
    """Counter-clockwise quarter turns (0–3) that show a frame upright, for a display rotation of
    ``degrees`` counter-clockwise (PyAV's ``VideoFrame.rotation``). An angle that is not a multiple
    of 90° is not turned, as FFmpeg does not turn it either."""
    if not degrees:
        return 0
    turns = round(degrees / 90)
    if abs(degrees - 90 * turns) > 1:
        return 0
    return turns % 4


def upright_rgb(frame) -> np.ndarray:
    """A decoded PyAV video frame → H×W×3 uint8 RGB as players show it (HDR as SDR:
    :mod:`qmra.data.hdr`), turned by its display rotation."""
    array = sdr_rgb(frame)
    turns = quarter_turns(getattr(frame, "rotation", 0))
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def first_frame_turns(container, stream) -> int:
    """The quarter turns of a video stream, from its first decoded frame (FFmpeg hands the stream's
    display matrix to every frame); 0 when no frame decodes, which decoding itself then reports."""
    import av

    try:
        for frame in container.decode(stream):
            return quarter_turns(getattr(frame, "rotation", 0))  # PyAV before VideoFrame.rotation: as stored
    except av.FFmpegError:
        return 0
    return 0


def exif_orientation(image: Image.Image) -> int:
    """An opened image's EXIF orientation (1–8; 1 when it has none)."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: shown as stored, as browsers do
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def shown_size(image: Image.Image) -> tuple[int, int]:
    """(height, width) of an opened image as it is shown, without decoding its pixels."""
    if exif_orientation(image) in SIDES_SWAPPED:
        return image.width, image.height
    return image.height, image.width


def upright_image(image: Image.Image) -> Image.Image:
    """An opened image turned (and mirrored) by its EXIF orientation, as it is shown."""
    if exif_orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)


def is_turned(path: Path) -> bool:
    """Whether the image file at ``path`` is shown other than as stored (an EXIF orientation)."""
    with Image.open(path) as image:
        return exif_orientation(image) != 1
