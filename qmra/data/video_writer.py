"""Video files written from results: the H.264 overlay mp4 (plays in browsers) with the masks drawn on
each frame, and the objects cut out on a transparent background."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping, TypeVar

import numpy as np

from qmra.data.atomic import publish, temporary_sibling
from qmra.data.audio import AudioSource, AudioTrack
from qmra.data.boxes import Box

_Video = TypeVar("_Video", bound="_EncodedVideo")

#: FFmpeg's tags for BT.709 (the matrix, primaries and transfer of HD video) and limited range: what
#: the frames are converted with and what the file says, so that every player converts them back
#: alike (untagged, browsers assume BT.709 and FFmpeg BT.601: greens 19 levels apart).
BT709, LIMITED_RANGE = 1, 1


class _EncodedVideo:
    """A video file written atomically, frame by frame: it appears at ``path`` only when
    :meth:`close` succeeds; an exception inside the ``with`` block (or :meth:`abort`) leaves no file
    and no truncated temporary. ``audio``: a source video's sound to write beside the frames, in step
    with them (:class:`~qmra.data.audio.AudioTrack`)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, container: str, codec: str,
                 pix_fmt: str, options: dict[str, str], container_options: dict[str, str] | None = None,
                 audio: AudioSource | None = None) -> None:
        import av

        self.path = Path(path)
        self.width, self.height = width, height
        self._temporary = temporary_sibling(self.path)
        self._container = av.open(str(self._temporary), mode="w", format=container, options=container_options or {})
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(24)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width = width + width % 2 if pix_fmt == "yuv420p" else width
        self._stream.height = height + height % 2 if pix_fmt == "yuv420p" else height
        self._stream.pix_fmt = pix_fmt
        self._stream.options = options
        context = self._stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = BT709
        context.color_range = LIMITED_RANGE
        self._rate = float(rate)
        self.audio = AudioTrack(audio, self._container) if audio is not None else None
        self.frames_written = 0
        self._closed = False

    def _encode(self, array: np.ndarray, pixel_format: str) -> None:
        import av

        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=pixel_format)
        video_frame = video_frame.reformat(format=self._stream.pix_fmt, dst_colorspace=BT709, dst_color_range=LIMITED_RANGE,
                                           dst_color_trc=BT709, dst_color_primaries=BT709)  # ProRes tags from frames
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1
        if self.audio is not None:
            self.audio.until(self.frames_written / self._rate)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self.audio is not None:
                self.audio.close(self.frames_written / self._rate)
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
            if self.audio is not None:
                self.audio.abort()
            self._container.close()
        finally:
            self._temporary.unlink(missing_ok=True)

    def __enter__(self: _Video) -> _Video:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class Mp4Writer(_EncodedVideo):
    """Write H×W×3 uint8 frames to an H.264 (yuv420p, faststart) mp4, atomically.

    yuv420p needs even sides, so an odd height or width is padded by repeating the last row or
    column. x264's macroblock tree is off: with it, the same frames gave other bytes from one run to
    the next (13 different files from 100 encodings of one 10-frame clip, in one process); without
    it, one file from 200. At 854×480 and the same CRF the file is a fifth smaller, 0.75 dB lower in
    PSNR (31.8 against 32.5), for the same CPU time.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 24.0, crf: int = 20,
                 audio: AudioSource | None = None) -> None:
        options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        super().__init__(path, width, height, fps, "mp4", "libx264", "yuv420p", options, {"movflags": "+faststart"},
                         audio)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a {self.height}x{self.width}x3 uint8 frame, got {frame.dtype} {frame.shape}")
        if self.width % 2 or self.height % 2:
            frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        self._encode(frame, "rgb24")


#: What a cut-out is written as, by its file's suffix (container, codec, pixel format, options): VP9
#: with transparency in WebM (plays in browsers, small) or ProRes 4444 with transparency in QuickTime
#: (what video editors import). VP9 without look-ahead: in real time its 25 frames bought no smaller file
#: (the same size to the byte on 30 frames at 3840x2160) and held 0.7 GB more at that size.
CUTOUT_CODECS = {
    ".webm": ("webm", "libvpx-vp9", "yuva420p", {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8",
                                                 "row-mt": "1", "lag-in-frames": "0"}),
    ".mov": ("mov", "prores_ks", "yuva444p10le", {"profile": "4444"}),
}


class CutoutWriter(_EncodedVideo):
    """Write the segmented objects on a transparent background, atomically: each frame's pixels,
    opaque where any object is and transparent elsewhere, as :data:`CUTOUT_CODECS` encodes them for
    the file's suffix (``.webm`` or ``.mov``), at the frames' own size."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 24.0) -> None:
        suffix = Path(path).suffix.lower()
        if suffix not in CUTOUT_CODECS:
            raise ValueError(f"a cut-out is a {' or '.join(CUTOUT_CODECS)} file, got {path}")
        container, codec, pix_fmt, options = CUTOUT_CODECS[suffix]
        super().__init__(path, width, height, fps, container, codec, pix_fmt, dict(options))

    def write(self, frame: np.ndarray, labels: np.ndarray) -> None:
        """frame: H×W×3 uint8; labels: H×W object ids (0 = background, transparent)."""
        if frame.shape != (self.height, self.width, 3) or labels.shape != (self.height, self.width):
            raise ValueError(f"expected a {self.height}x{self.width} frame and labels, got {frame.shape} and {labels.shape}")
        rgba = np.empty((self.height, self.width, 4), np.uint8)
        rgba[..., :3] = frame
        np.multiply(labels != 0, 255, out=rgba[..., 3], casting="unsafe")
        self._encode(rgba, "rgba")


def cutout_frames(path: str | Path) -> Iterator[np.ndarray]:
    """A cut-out's frames, H×W×4 uint8 RGBA (alpha 255 on the objects, 0 elsewhere). A WebM's
    transparency is read with libvpx's decoder: FFmpeg's own VP9 decoder drops it."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = av.CodecContext.create("libvpx-vp9", "r") if stream.codec_context.name == "vp9" else stream.codec_context
        for packet in container.demux(stream):
            for frame in decoder.decode(packet if packet.size else None):
                yield frame.to_ndarray(format="rgba")

#: Overlay colours: saturated and light, so that masks and boxes show on dark and light frames alike
#: (the DAVIS palette's dark red and green, right for label PNGs, are hard to see over video). The
#: web app's page uses the same list (qmra/ui/static/app.js).
OVERLAY_COLOURS = np.array([
    (255, 64, 64), (64, 224, 64), (64, 144, 255), (255, 208, 0), (255, 64, 255), (0, 232, 232),
    (255, 144, 32), (168, 96, 255), (160, 255, 96), (255, 128, 176),
], dtype=np.uint8)


def object_colour(object_id: int) -> np.ndarray:
    """An object's overlay colour (3 uint8): :data:`OVERLAY_COLOURS` in turn, by id."""
    return OVERLAY_COLOURS[(object_id - 1) % len(OVERLAY_COLOURS)]


def draw_overlay(frame: np.ndarray, labels: np.ndarray, boxes: Mapping[int, Box] | None = None, alpha: float = 0.5,
                 thickness: int | None = None) -> np.ndarray:
    """Blend each object's mask into the frame in its overlay colour and draw its box.

    frame: H×W×3 uint8; labels: H×W ids (0 = background); boxes: object id → box in pixels, drawn
    ``thickness`` pixels wide (default: about 1/160 of the short side, at least 2) in the object's
    colour between two 1-pixel black lines, so that it shows on light and dark backgrounds alike.
    Returns a new H×W×3 uint8 frame.
    """
    out = frame.copy()
    # Only the objects' pixels are touched, through a table per object of what each level blends to:
    # a 4K frame takes a third of the time of blending the whole frame in float32, to the same bytes.
    pixels, blended = frame.reshape(-1, 3), out.reshape(-1, 3)
    flat = labels.reshape(-1)
    channels = np.arange(3)
    highest = int(flat.max(initial=0))
    # Few ids: a look for each is quicker than counting every pixel's id (a 4K frame: 19 ms).
    ids = range(1, highest + 1) if highest <= 16 else np.flatnonzero(np.bincount(flat)[1:]) + 1
    for object_id in ids:
        where = np.flatnonzero(flat == object_id)
        if where.size:
            blended[where] = _blend_table(object_colour(int(object_id)), alpha)[channels, pixels[where]]
    height, width = labels.shape
    line = thickness if thickness is not None else max(2, round(min(height, width) / 160))
    for object_id, box in (boxes or {}).items():
        x0, y0 = int(np.clip(np.floor(box.x0), 0, width - 1)), int(np.clip(np.floor(box.y0), 0, height - 1))
        x1, y1 = int(np.clip(np.ceil(box.x1) - 1, 0, width - 1)), int(np.clip(np.ceil(box.y1) - 1, 0, height - 1))
        _rectangle(out, x0 - 1, y0 - 1, x1 + 1, y1 + 1, line + 2, np.zeros(3, np.uint8))  # the dark edges
        _rectangle(out, x0, y0, x1, y1, line, object_colour(object_id))
    return out


def _blend_table(colour: np.ndarray, alpha: float) -> np.ndarray:
    """3×256 uint8: what each level of each channel becomes blended with ``colour`` (3 uint8) at
    ``alpha``, rounded half to even as the float32 blend is."""
    levels = np.arange(256, dtype=np.float32)[None, :]
    return ((1 - alpha) * levels + alpha * colour[:, None]).astype(np.float32).round().astype(np.uint8)


def _rectangle(out: np.ndarray, x0: int, y0: int, x1: int, y1: int, thickness: int, colour: np.ndarray) -> None:
    """An outline from (x0, y0) to (x1, y1) inclusive, ``thickness`` pixels inwards, clipped to ``out``."""
    height, width = out.shape[:2]
    t = thickness
    left, right, top, bottom = max(x0, 0), min(x1, width - 1), max(y0, 0), min(y1, height - 1)
    if left > right or top > bottom:
        return
    out[top : min(top + t, bottom + 1), left : right + 1] = colour
    out[max(bottom - t + 1, top) : bottom + 1, left : right + 1] = colour
    out[top : bottom + 1, left : min(left + t, right + 1)] = colour
    out[top : bottom + 1, max(right - t + 1, left) : right + 1] = colour
