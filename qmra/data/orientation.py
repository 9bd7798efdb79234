"""Frames the way players and browsers show them: a video's display rotation and pixel shape, a
photo's EXIF orientation.

Phones film portrait video as landscape pixels with a *display rotation* in the file (an iPhone
held upright stores 1920×1080 and "rotate by −90°"), and write photos with an EXIF orientation tag.
DV, HDV, DVDs and anamorphic lenses store wide frames in narrow pixels with a *sample aspect ratio*
(HDV stores 1440×1080 pixels 4:3 as wide, shown 1920×1080). Every player, browser, FFmpeg and
OpenCV turn and stretch them before showing them, so the boxes a user reads off a player are in
the pixels shown. qmra decodes frames so too: the boxes, the masks, the overlay and the page of
``qmra ui`` all agree with what the user sees.
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


#: Sample aspect ratios this close to 1 are square pixels (some files say 1001:1000, or 81:80).
SQUARE_TOLERANCE = 0.02


def shown_width(stream) -> int | None:
    """The width a PyAV video stream's frames are shown at before any rotation: the stored width
    times the stream's sample aspect ratio, as players stretch it (an HDV 1440×1080 with 4:3 pixels:
    1920); None where its pixels are square or it gives no ratio."""
    ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    width = stream.codec_context.width
    if not ratio or not width or abs(float(ratio) - 1) < SQUARE_TOLERANCE:
        return None
    return max(1, round(width * float(ratio)))


def upright_rgb(frame, width: int | None = None) -> np.ndarray:
    """A decoded PyAV video frame → H×W×3 uint8 RGB as players show it (HDR as SDR:
    :mod:`qmra.data.hdr`), stretched to ``width`` (:func:`shown_width`), deinterlaced where the
    decoder flags it interlaced (:func:`one_field`) and turned by its display rotation."""
    array = sdr_rgb(frame, width)
    if getattr(frame, "interlaced_frame", False):  # PyAV before interlaced_frame: as stored
        array = one_field(array)
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


def one_field(frame: np.ndarray) -> np.ndarray:
    """An interlaced H×W×3 frame (its even and odd rows filmed a field apart: combs on whatever moves)
    as its top field alone, the bottom field's rows interpolated from the rows above and below, as
    players deinterlace it (in place where it can)."""
    if frame.shape[0] < 3:
        return frame
    frame = frame if frame.flags.writeable else frame.copy()
    top = frame[0::2].astype(np.uint16)
    between = (top[:-1] + top[1:] + 1) >> 1
    frame[1:-1:2] = between
    if frame.shape[0] % 2 == 0:
        frame[-1] = frame[-2]  # the last row has no top-field row below it
    return frame


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
