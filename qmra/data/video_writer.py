"""H.264 mp4 writing (plays in browsers) and the mask overlay drawn on each frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Mapping

import numpy as np

from qmra.data.atomic import publish, temporary_sibling
from qmra.data.boxes import Box
from qmra.data.palette import DAVIS_PALETTE


class Mp4Writer:
    """Write H×W×3 uint8 frames to an H.264 (yuv420p, faststart) mp4, atomically.

    The file appears at ``path`` only when :meth:`close` succeeds; an exception inside the ``with``
    block (or :meth:`abort`) leaves no file and no truncated temporary. yuv420p needs even sides,
    so an odd height or width is padded by repeating the last row or column.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 24.0, crf: int = 20) -> None:
        import av

        self.path = Path(path)
        self.width, self.height = width, height
        self._temporary = temporary_sibling(self.path)
        self._container = av.open(str(self._temporary), mode="w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(24)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames_written = 0
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        import av

        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a {self.height}x{self.width}x3 uint8 frame, got {frame.dtype} {frame.shape}")
        if self.width % 2 or self.height % 2:
            frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        publish(self._temporary, self.path)

    def abort(self) -> None:
        """Stop writing and remove the partial file; ``path`` is left as it was."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        finally:
            self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def object_colour(object_id: int) -> np.ndarray:
    """The DAVIS palette colour of an object id (3 uint8)."""
    return DAVIS_PALETTE[object_id % 256]


def draw_overlay(frame: np.ndarray, labels: np.ndarray, boxes: Mapping[int, Box] | None = None, alpha: float = 0.5,
                 thickness: int = 2) -> np.ndarray:
    """Blend each object's mask into the frame in its palette colour and draw its box outline.

    frame: H×W×3 uint8; labels: H×W ids (0 = background); boxes: object id → box in pixels.
    Returns a new H×W×3 uint8 frame.
    """
    out = frame.astype(np.float32)
    ids = np.unique(labels)
    for object_id in ids[ids != 0]:
        region = labels == object_id
        out[region] = (1 - alpha) * out[region] + alpha * object_colour(int(object_id))
    out = out.round().astype(np.uint8)
    height, width = labels.shape
    for object_id, box in (boxes or {}).items():
        colour = object_colour(object_id)
        x0, y0 = int(np.clip(np.floor(box.x0), 0, width - 1)), int(np.clip(np.floor(box.y0), 0, height - 1))
        x1, y1 = int(np.clip(np.ceil(box.x1) - 1, 0, width - 1)), int(np.clip(np.ceil(box.y1) - 1, 0, height - 1))
        t = thickness
        out[y0 : min(y0 + t, y1 + 1), x0 : x1 + 1] = colour
        out[max(y1 - t + 1, y0) : y1 + 1, x0 : x1 + 1] = colour
        out[y0 : y1 + 1, x0 : min(x0 + t, x1 + 1)] = colour
        out[y0 : y1 + 1, max(x1 - t + 1, x0) : x1 + 1] = colour
    return out
