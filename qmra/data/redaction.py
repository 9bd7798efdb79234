"""A video with the segmented objects hidden: blurred, pixelated or blacked out (faces, number plates,
bystanders), written as an H.264 mp4 beside the masks.

Hiding fails closed where it can: each object's mask is widened by a margin (masks are computed at the
working size, so their edges can be off by a few of the frame's pixels), and an object whose mask
comes back empty stays hidden where it was last seen for a second of video (a mask that drops out for
a few frames would otherwise show it). Frames where an object was hidden only there, or not at all
after its first mask, are reported per object (:meth:`RedactWriter.report`), which is where to check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from qmra.data.audio import AudioSource
from qmra.data.video_writer import Mp4Writer
from qmra.errors import ConfigError

#: How an object's pixels are hidden: a Gaussian blur, square cells of their mean colour, or black.
REDACT_STYLES = ("blur", "pixelate", "black")
#: What is hidden: the object's mask, or the box around it.
REDACT_SHAPES = ("mask", "box")
#: Masks are widened by this share of the frame's short side (at least 2 pixels): about two pixels of
#: a 384-pixel working size, whatever the frame's size.
MARGIN_SHARE = 0.01
#: The blur's sigma and the cells' side are this share of the object's short side (at least 4 pixels):
#: a face becomes a patch of about 8 cells across.
STRENGTH_SHARE = 1 / 8
#: Seconds of video an object with an empty mask stays hidden where it was last seen.
HOLD_SECONDS = 1.0


@dataclass(frozen=True)
class Redaction:
    """How objects are hidden (``style``, one of :data:`REDACT_STYLES`) and what of them (``shape``,
    one of :data:`REDACT_SHAPES`)."""

    style: str = "blur"
    shape: str = "box"  # fails closed: the box also covers what the mask misses inside it

    def __post_init__(self) -> None:
        if self.style not in REDACT_STYLES:
            raise ConfigError(f"redaction style must be one of {', '.join(REDACT_STYLES)}, got {self.style!r}")
        if self.shape not in REDACT_SHAPES:
            raise ConfigError(f"redaction shape must be one of {', '.join(REDACT_SHAPES)}, got {self.shape!r}")


@dataclass
class _Seen:
    """Where an object was last hidden: its region (y0, y1, x0, x1, pixels, ends excluded), the
    effect's strength there (pixels) and how many frames ago."""

    region: tuple[int, int, int, int]
    strength: int
    frames_ago: int = 0


@dataclass
class RedactionReport:
    """Per object, the frame indices where it was hidden only where last seen (``held``) and where it
    was not hidden at all (``shown``: its mask empty for longer than :data:`HOLD_SECONDS`), of a run over
    every ``step``-th frame."""

    step: int = 1
    held: dict[int, list[int]] = field(default_factory=dict)
    shown: dict[int, list[int]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per object with frames to check; none when every object was hidden by its mask."""
        lines = []
        for object_id in sorted(set(self.held) | set(self.shown)):
            parts = []
            if self.held.get(object_id):
                parts.append(f"hidden where last seen on {self._frames(self.held[object_id])}")
            if self.shown.get(object_id):
                parts.append(f"not hidden on {self._frames(self.shown[object_id])} (not found there)")
            lines.append(f"object {object_id}: {'; '.join(parts)}")
        return lines

    def _frames(self, frames: list[int]) -> str:
        """'frame 7' or 'frames 3-5, 9'."""
        return f"frame{'s' if len(frames) > 1 else ''} {frame_ranges(frames, self.step)}"


def frame_ranges(frames: list[int], step: int = 1) -> str:
    """[3, 4, 5, 9] → '3-5, 9': frames in increasing order, ``step`` apart within a range (a run over
    every ``step``-th frame)."""
    ranges, start, previous = [], frames[0], frames[0]
    for frame in frames[1:] + [None]:
        if frame is not None and frame - previous == step:
            previous = frame
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if frame is not None:
            start = previous = frame
    return ", ".join(ranges)


class Redactor:
    """Hides the objects of one video's frames, in order, as ``redaction`` says; keeps where each was
    last hidden, so that an object whose mask comes back empty stays hidden there for ``hold`` frames
    (then it is reported as not hidden: :attr:`report`). ``width`` × ``height``: the frames' size,
    which sets the margin (:data:`MARGIN_SHARE`)."""

    def __init__(self, width: int, height: int, redaction: Redaction = Redaction(), hold: int = 24, step: int = 1) -> None:
        self.redaction = redaction
        self.margin = max(2, round(min(width, height) * MARGIN_SHARE))
        self.hold = hold
        self.report = RedactionReport(step)
        self._seen: dict[int, _Seen] = {}

    def hide(self, frame: np.ndarray, labels: np.ndarray, object_ids: list[int], index: int) -> np.ndarray:
        """frame: H×W×3 uint8; labels: H×W object ids (0 = background); ``object_ids``: every object the
        run has so far (one missing from ``labels`` is hidden where it was last seen, for a while);
        ``index``: the frame's number in the video, for the report. Returns a new H×W×3 uint8 frame."""
        out = frame.copy()
        found = ndimage.find_objects(labels)  # each id's bounding slices, in one pass over the frame
        for object_id in object_ids:
            where = found[object_id - 1] if object_id <= len(found) else None
            if where is not None:
                self._hide_mask(out, labels, object_id, where)
            elif object_id in self._seen:
                self._hide_last_place(out, object_id, index)
        return out

    def _hide_mask(self, out: np.ndarray, labels: np.ndarray, object_id: int, where: tuple[slice, slice]) -> None:
        rows, columns = where
        strength = max(4, round(min(rows.stop - rows.start, columns.stop - columns.start) * STRENGTH_SHARE))
        height, width = labels.shape
        region = (max(0, rows.start - self.margin), min(height, rows.stop + self.margin),
                  max(0, columns.start - self.margin), min(width, columns.stop + self.margin))
        y0, y1, x0, x1 = region
        if self.redaction.shape == "box":
            inside = np.ones((y1 - y0, x1 - x0), bool)
        else:
            inside = ndimage.maximum_filter(labels[y0:y1, x0:x1] == object_id, size=2 * self.margin + 1)
        _apply(out, region, inside, self.redaction.style, strength)
        self._seen[object_id] = _Seen(region, strength)

    def _hide_last_place(self, out: np.ndarray, object_id: int, index: int) -> None:
        seen = self._seen[object_id]
        seen.frames_ago += 1
        if seen.frames_ago > self.hold:
            self.report.shown.setdefault(object_id, []).append(index)
            return
        y0, y1, x0, x1 = seen.region
        _apply(out, seen.region, np.ones((y1 - y0, x1 - x0), bool), self.redaction.style, seen.strength)
        self.report.held.setdefault(object_id, []).append(index)


class RedactWriter(Mp4Writer):
    """Writes each frame with its objects hidden (:class:`Redactor`) to an H.264 mp4, atomically as
    :class:`Mp4Writer` does. ``fps``: the rate of the frames written, which sets how long an object
    with an empty mask stays hidden where it was last seen (:data:`HOLD_SECONDS`); ``step``: they are
    every ``step``-th frame of the video. ``audio``: the source's sound, written beside the frames."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 24.0,
                 redaction: Redaction = Redaction(), step: int = 1, audio: AudioSource | None = None) -> None:
        super().__init__(path, width, height, fps, audio=audio)
        self.redactor = Redactor(width, height, redaction, max(1, round(fps * HOLD_SECONDS)), step)

    @property
    def report(self) -> RedactionReport:
        return self.redactor.report

    def write_redacted(self, frame: np.ndarray, labels: np.ndarray, object_ids: list[int], index: int) -> None:
        """One frame (H×W×3 uint8) with its labels (H×W ids): see :meth:`Redactor.hide`."""
        self.write(self.redactor.hide(frame, labels, object_ids, index))


def _apply(out: np.ndarray, region: tuple[int, int, int, int], inside: np.ndarray, style: str, strength: int) -> None:
    """Hide ``out``'s pixels (H×W×3 uint8, changed in place) where ``inside`` (the region's h×w bool)
    holds, within ``region`` (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = region
    if style == "black":
        np.copyto(out[y0:y1, x0:x1], np.uint8(0), where=inside[..., None])
        return
    if style == "pixelate":
        patch = out[y0:y1, x0:x1]
        cells = Image.fromarray(patch).resize(
            (max(1, round(patch.shape[1] / strength)), max(1, round(patch.shape[0] / strength))), Image.BOX)
        hidden = np.asarray(cells.resize((patch.shape[1], patch.shape[0]), Image.NEAREST))
    else:
        # Blurred with the pixels around the region, so that its edge does not fade to its own border.
        height, width = out.shape[:2]
        pad = 3 * strength
        py0, py1, px0, px1 = max(0, y0 - pad), min(height, y1 + pad), max(0, x0 - pad), min(width, x1 + pad)
        around = Image.fromarray(out[py0:py1, px0:px1])
        # A wide blur is made at a fraction of the size, where its sigma is 4 pixels, and scaled back: the
        # same smooth patch, about a tenth of the time for a large object in a 4K frame.
        factor = max(1, strength // 4)
        scale = (max(1, around.width // factor) / around.width, max(1, around.height // factor) / around.height)
        small = around.resize((round(around.width * scale[0]), round(around.height * scale[1])), Image.BOX)
        blurred = small.filter(ImageFilter.GaussianBlur(strength / factor))
        hidden = np.asarray(blurred.resize((x1 - x0, y1 - y0), Image.BILINEAR,
                                           box=((x0 - px0) * scale[0], (y0 - py0) * scale[1],
                                                (x1 - px0) * scale[0], (y1 - py0) * scale[1])))
    np.copyto(out[y0:y1, x0:x1], hidden, where=inside[..., None])
