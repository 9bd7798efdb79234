"""Streaming frame sources: video files (PyAV), TIFF stacks, frame folders (numeric order), in-memory arrays.

Every source yields H×W×3 uint8 RGB frames one at a time and never holds the whole video. Frames
are upright, as players show them: a video's display rotation and a photo's EXIF orientation are
applied (:mod:`qmra.data.orientation`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from qmra.data.hdr import hdr_transfer
from qmra.data.masks import is_wide_grey, open_image, percentile_range, read_rgb
from qmra.data.orientation import first_frame_turns, quarter_turns, shown_size, shown_width, upright_rgb
from qmra.data.video_errors import unreadable
from qmra.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
                  ".3gp", ".ogv", ".gif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: A file with one of these is a video of its pages (:class:`qmra.data.tiff_stack.TiffStack`).
STACK_SUFFIXES = (".tif", ".tiff")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10`` (numbers compared as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name) if part)


def list_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files in ``folder`` with one of ``suffixes`` (any case), in natural order."""
    files = (p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    return sorted(files, key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class FrameInfo:
    """What a source knows before decoding: size in pixels (upright), frame count and fps when known,
    whether the file stores its frames turned a quarter (``sideways``: a phone's portrait video, a photo
    with an EXIF orientation of 5–8), which reading undoes, whether the count is an estimate from the
    file's duration (``estimated``: webm, mkv, MPEG streams), which decoding may not bear out, and an
    HDR video's transfer (``hdr``: "HLG" or "PQ"), which reading tone-maps to SDR (:mod:`~qmra.data.hdr`)."""

    height: int
    width: int
    num_frames: int | None
    fps: float | None
    sideways: bool = False
    estimated: bool = False
    hdr: str | None = None


class FrameSource:
    """Base class: ``info``, ``frame_name(i)`` (for output files) and iteration over frames."""

    description: str

    @property
    def info(self) -> FrameInfo:
        raise NotImplementedError

    def frame_name(self, index: int) -> str:
        """Name for frame ``index``'s outputs: the file stem for folders, ``00000``, ``00001``, ... otherwise."""
        return f"{index:05d}"

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    #: Whether frames can be read in any order, more than once (files and folders; not one-pass streams).
    seekable: bool = False

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (H×W×3 uint8); only where :attr:`seekable`."""
        raise DataError(f"{self.description} is read once, front to back: it cannot go back to frame {index}")

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """The frames at ``indices``, in that order (e.g. backwards): one pass over the source when
        they are its frames from 0 in order, else by :meth:`read`."""
        if list(indices) == list(range(len(indices))):
            for frame, _ in zip(self, indices):
                yield frame
            return
        if not self.seekable:
            raise DataError(f"{self.description} is read once, front to back: it cannot be read from frame "
                            f"{indices[0]} or backwards")
        for index in indices:
            yield self.read(index)

    def frames_from(self, first: int, step: int = 1) -> Iterator[np.ndarray]:
        """Frames ``first``, ``first + step``, ... to the end: read one by one where the source can
        seek and knows its count (the others are never read), else in one pass, the others read and
        dropped."""
        count = self.info.num_frames
        if self.seekable and count is not None and not self.info.estimated:
            return (self.read(index) for index in range(first, count, step))
        return itertools.islice(iter(self), first, None, step)

    def _check_size(self, frame: np.ndarray, index: int, label: str) -> None:
        self._check_shape(frame.shape[0], frame.shape[1], label)

    def _check_shape(self, height: int, width: int, label: str) -> None:
        info = self.info
        if (height, width) != (info.height, info.width):
            raise DataError(f"{self.description}: frame {label} is {width}x{height}, the first frame is "
                            f"{info.width}x{info.height}; all frames of a video must have one size")


class FrameFolder(FrameSource):
    """A folder of jpg/png/tif/... frames, read in numeric order (``2.jpg`` before ``10.jpg``); 16-bit
    greyscale frames scaled to 8 bits by the first frame's 0.1st to 99.9th percentile, the same for all."""

    seekable = True

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.description = str(self.folder)
        if not self.folder.is_dir():
            raise DataError(f"frame folder not found: {self.folder}")
        self.paths = list_files(self.folder, IMAGE_SUFFIXES)
        if not self.paths:
            raise DataError(f"no frames ({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)}) in {self.folder}")
        first = open_image(self.paths[0])
        #: 16-bit greyscale frames: the values mapped to 0..255, from the first frame, for all of them.
        self.grey_range = percentile_range(first) if is_wide_grey(first) else None
        height, width = shown_size(first)
        self._info = FrameInfo(height, width, len(self.paths), None, sideways=(height, width) != (first.height, first.width))

    @property
    def info(self) -> FrameInfo:
        return self._info

    def frame_name(self, index: int) -> str:
        return self.paths[index].stem

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.paths):
            raise DataError(f"{self.folder}: no frame {index} (it has {len(self.paths)})")
        frame = read_rgb(self.paths[index], upright=True, grey_range=self.grey_range)
        self._check_size(frame, index, self.paths[index].name)
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames_from(0)


class VideoFile(FrameSource):
    """A video file decoded frame by frame with PyAV (mp4, mov, webm, mkv, ...).

    It can be read in any order: :meth:`read` decodes onwards from the last frame it read (from the
    start when asked for an earlier one), and :meth:`frames` reads backwards a chunk at a time.
    """

    seekable = True
    #: Frames decoded at once when reading backwards (each chunk decodes from the start of the file).
    BACKWARD_CHUNK = 48

    def __init__(self, path: str | Path) -> None:
        import av

        self.path = Path(path)
        self.description = str(self.path)
        if not self.path.is_file():
            raise DataError(f"video file not found: {self.path}")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DataError(f"{self.path} has no video stream")
                stream = container.streams.video[0]
                self._shown_width = shown_width(stream)  # non-square pixels (DV, HDV) stretched
                height, width = stream.codec_context.height, self._shown_width or stream.codec_context.width
                sideways = first_frame_turns(container, stream) % 2 == 1
                if sideways:
                    height, width = width, height  # a portrait phone video, stored as landscape
                # The header's own count (mp4, mov) is a promise decoding is held to; a duration's (webm, mkv) is not.
                self.header_frames: int | None = stream.frames or None
                frames = self.header_frames
                rate = stream.average_rate or stream.guessed_rate
                fps = float(rate) if isinstance(rate, Fraction) and rate > 0 else None
                if not frames and stream.duration and stream.time_base and fps:
                    frames = int(round(float(stream.duration * stream.time_base) * fps))
                estimated, hdr = frames is not None and not self.header_frames, hdr_transfer(stream.codec_context)
        except av.FFmpegError as error:
            raise DataError(f"cannot read video {self.path}: {unreadable(self.path, error)}") from None
        if not height or not width:
            raise DataError(f"cannot read video {self.path}: no frame size in its header")
        self._info = FrameInfo(height, width, frames, fps, sideways, estimated, hdr)
        self._reader: Iterator[np.ndarray] | None = None
        self._next_index = 0  # the frame _reader yields next

    @property
    def info(self) -> FrameInfo:
        return self._info

    def read(self, index: int) -> np.ndarray:
        # Only the header's count bounds the index: a count estimated from the duration (webm, mkv,
        # MPEG streams) can be a frame or two short.
        if index < 0 or (self.header_frames is not None and index >= self.header_frames):
            raise DataError(f"{self.path}: no frame {index} (it has {self.header_frames})")
        if self._reader is None or index < self._next_index:
            # Going back: read again from the keyframe before it, not from the file's start (reading
            # backwards goes a chunk at a time, so this is once per chunk).
            self._reader, self._next_index = self.frames_from(index), index
        for frame in self._reader:
            self._next_index += 1
            if self._next_index - 1 == index:
                return frame
        self._reader = None
        raise DataError(f"{self.path}: no frame {index} (the video ends before it)")

    def frames(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        indices = list(indices)
        backwards = len(indices) > 1 and all(b == a - 1 for a, b in zip(indices, indices[1:]))
        if not backwards:
            yield from super().frames(indices)
            return
        top = indices[0]
        while top >= indices[-1]:  # decode a chunk forwards, hand it out backwards
            bottom = max(indices[-1], top - self.BACKWARD_CHUNK + 1)
            chunk = [self.read(i) for i in range(bottom, top + 1)]
            yield from reversed(chunk)
            top = bottom - 1

    def __iter__(self) -> Iterator[np.ndarray]:
        """Decode every frame; a file that ends early or fails to decode is a :class:`DataError` naming
        the frame where decoding stopped (raised after the frames before it were yielded)."""
        return self.frames_from(0)

    def frames_from(self, first: int, step: int = 1) -> Iterator[np.ndarray]:
        """Frames ``first``, ``first + step``, ...: from the last keyframe before ``first``, found by
        reading packets only, where the file allows it (:mod:`qmra.data.video_skip`); else decoded
        from the start. Only the frames given are turned into RGB arrays. Either way a frame has the
        index decoding from the start gives it."""
        if first == 0:
            return (array for array, _ in self._decoded(0, True, step))
        return self._from_keyframe(first, step)

    def _from_keyframe(self, first: int, step: int) -> Iterator[np.ndarray]:
        import av

        from qmra.data.video_skip import NoShortcut, PacketCount, frames_from_keyframe

        seen = PacketCount()
        frames = frames_from_keyframe(self.path, first, seen)
        try:
            head = next(frames, None)
        except (NoShortcut, av.FFmpegError):
            head = None
        if head is None:  # no shortcut, or nothing from ``first`` on: decoding from the start says which
            yield from (array for array, _ in self._decoded(first, True, step))
            return
        index = first
        try:
            for frame in itertools.chain([head], frames):
                if (index - first) % step == 0:
                    array = upright_rgb(frame, self._shown_width)
                    self._check_size(array, index, str(index))
                    yield array
                index += 1
        except (NoShortcut, av.FFmpegError):
            # A later packet the shortcut cannot vouch for (or cannot decode): the rest is decoded from
            # the start, which gives the frames, or says where and why decoding stops.
            yield from (array for array, _ in self._decoded(index + (first - index) % step, True, step))
            return
        if self.header_frames and seen.packets < self.header_frames:
            raise self._stopped(index, f"it ends after {seen.packets} of its {self.header_frames} frames")

    def _stopped(self, count: int, problem: str) -> DataError:
        """The error for decoding that stopped after ``count`` frames, and why."""
        of = f" of {self.header_frames}" if self.header_frames else ""
        return DataError(f"{self.path}: decoding stopped at frame {count}{of} (the file is truncated or corrupt: {problem})")

    def decoded(self, first: int = 0) -> Iterator[tuple[np.ndarray, "DecodedFrame"]]:
        """As iteration, each frame with where it lies in the stream (to seek back to it); from frame
        ``first`` on (the frames before it are decoded, not converted)."""
        return self._decoded(first, True)  # type: ignore[return-value]

    def positions(self) -> Iterator["DecodedFrame"]:
        """Where each frame lies in the stream, checked as iteration checks it, without converting
        any frame to RGB (what indexing a video for :mod:`qmra.data.video_seek` needs)."""
        return (where for _, where in self._decoded(0, False))

    def _decoded(self, first: int, convert: bool, step: int = 1) -> Iterator[tuple[np.ndarray | None, "DecodedFrame"]]:
        """Frames ``first``, ``first + step``, ... with where each lies in the stream, decoded from the
        file's start; the others are decoded, neither converted nor given."""
        import av

        count = 0
        demuxed = _Demuxed()
        problem: str | None = None
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                # Slice threads only: frame threading reports a decode error late or not at all,
                # and then a corrupt file looks complete. Decoding is far faster than the network.
                stream.thread_type = "SLICE"
                for frame in _decode(container, stream, demuxed):
                    count += 1
                    if count <= first or (count - 1 - first) % step:
                        continue
                    array = upright_rgb(frame, self._shown_width) if convert else None
                    turned = quarter_turns(getattr(frame, "rotation", 0)) % 2 == 1  # as upright_rgb turns it
                    height, width = frame.height, self._shown_width or frame.width
                    height, width = (width, height) if turned else (height, width)
                    self._check_shape(height, width, str(count - 1))
                    yield array, DecodedFrame(frame.pts, bool(frame.key_frame))
        except av.FFmpegError as error:
            problem = getattr(error, "strerror", None) or str(error)
        if problem is None and demuxed.partial:
            problem = "a frame's data is cut short"
        elif problem is None and self.header_frames and demuxed.packets < self.header_frames:
            # Packets, not decoded frames: an edit list (a trimmed mp4) rightly decodes fewer frames
            # than the header counts, but every counted packet is still in the file.
            problem = f"it ends after {demuxed.packets} of its {self.header_frames} frames"
        if problem is not None:
            raise self._stopped(count, problem)
        if count == 0:
            raise DataError(f"{self.path} holds no decodable frames")


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded frame's place in its stream: its timestamp (stream time base; None where the file
    has none) and whether decoding can start at it (a keyframe)."""

    pts: int | None
    key_frame: bool


@dataclass
class _Demuxed:
    """What :func:`_decode` saw of the file: whole packets read, and whether the last was cut short."""

    packets: int = 0
    partial: bool = False


def _decode(container, stream, demuxed: _Demuxed) -> Iterator:
    """The stream's frames, packet by packet, counting packets into ``demuxed``.

    A packet that the demuxer could read only in part (the file ends inside it) stops decoding;
    the frames the decoder still holds are drained first, so that every good frame comes out.
    """
    for packet in container.demux(stream):
        if packet.size and packet.is_corrupt:
            demuxed.partial = True
            yield from stream.codec_context.decode(None)
            return
        if packet.size:
            demuxed.packets += 1
        yield from packet.decode()  # the demuxer's last, empty packet drains the decoder


class ArrayFrames(FrameSource):
    """Frames given in memory: a T×H×W×3 uint8 array, or any iterable of H×W×3 uint8 arrays."""

    def __init__(self, frames: np.ndarray | Iterable[np.ndarray], fps: float | None = None) -> None:
        self.description = "the given frames"
        self._fps = fps
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise DataError(f"frames must be a T×H×W×3 array, got shape {frames.shape}")
            if frames.shape[0] == 0:
                raise DataError("no frames given")
            self._array: np.ndarray | None = frames
            self._sequence: Sequence[np.ndarray] | None = None
            self._iterator: Iterator[np.ndarray] | None = None
            self._first = frames[0]
            self._count: int | None = frames.shape[0]
        else:
            self._array = None
            self._sequence = frames if isinstance(frames, Sequence) else None
            self._count = len(frames) if isinstance(frames, Sequence) else None
            self._iterator = iter(frames)
            try:
                self._first = np.asarray(next(self._iterator))
            except StopIteration:
                raise DataError("no frames given") from None
        self._validate(self._first, 0)
        self._consumed = False

    def _validate(self, frame: np.ndarray, index: int) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise DataError(f"frame {index} must be an H×W×3 uint8 array, got {frame.dtype} of shape {frame.shape}")
        return frame

    @property
    def info(self) -> FrameInfo:
        return FrameInfo(self._first.shape[0], self._first.shape[1], self._count, self._fps)

    @property
    def seekable(self) -> bool:  # type: ignore[override]
        return self._array is not None or self._sequence is not None

    def read(self, index: int) -> np.ndarray:
        frames = self._array if self._array is not None else self._sequence
        if frames is None:
            return super().read(index)
        if not 0 <= index < len(frames):
            raise DataError(f"no frame {index} among the {len(frames)} given")
        frame = self._validate(frames[index], index)
        self._check_size(frame, index, str(index))
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._array is not None or self._sequence is not None:
            yield from self.frames_from(0)
            return
        if self._consumed:
            raise DataError("these frames came from a one-pass iterator and were already read")
        self._consumed = True
        yield self._first
        assert self._iterator is not None
        for index, frame in enumerate(self._iterator, start=1):
            frame = self._validate(frame, index)
            self._check_size(frame, index, str(index))
            yield frame


def open_frames(source: str | Path | np.ndarray | Iterable[np.ndarray] | FrameSource) -> FrameSource:
    """A video file, a TIFF stack, a frame folder, ``"-"`` (a video piped to standard input), or
    frames in memory → a :class:`FrameSource`."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, str) and source == "-":
        from qmra.data.video_pipe import piped_stdin

        return piped_stdin()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return FrameFolder(path)
        if not path.exists():
            raise DataError(f"no such file or folder: {path}")
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return VideoFile(path)
        if path.suffix.lower() in STACK_SUFFIXES:
            from qmra.data.tiff_stack import TiffStack

            return TiffStack(path)
        raise DataError(f"unsupported input {path.name}: give a video ({', '.join(VIDEO_SUFFIXES)}), a TIFF stack "
                        "(.tif, .tiff) or a folder of frames")
    return ArrayFrames(source)
