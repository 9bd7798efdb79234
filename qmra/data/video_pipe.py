"""A video read from a pipe (standard input), once, front to back: what a camera's or a server's
stream becomes through FFmpeg, e.g. ``ffmpeg -i rtsp://camera/stream -c copy -f matroska - | qmra
segment - --box ... --out masks/``.

A pipe cannot seek, so it must carry a container that is read front to back: Matroska or WebM,
MPEG-TS, NUT or YUV4MPEG. An MP4 usually keeps its index at its end and is refused with a line that
says what to pipe instead. The frame count is unknown until the stream ends; the first frame is
decoded at once, for the frame size and the display rotation.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from fractions import Fraction
from typing import BinaryIO, Iterator

import numpy as np

from qmra.data.frames import FrameInfo, FrameSource, _decode, _Demuxed
from qmra.data.hdr import hdr_transfer
from qmra.data.orientation import quarter_turns, shown_width, upright_rgb
from qmra.errors import DataError

#: What a pipe must carry, and what to pipe where FFmpeg cannot read the stream.
PIPE_CONTAINERS = "pipe a stream container"
PIPE_ADVICE = (f"{PIPE_CONTAINERS}, e.g. ffmpeg -i INPUT -c copy -f matroska - (or -f mpegts); an MP4 keeps its index "
               "at its end and cannot be read from a pipe")


#: Seconds a read waits for input at a time before it looks whether it was told to stop.
POLL_SECONDS = 0.1


class PipeReader:
    """A pipe's file descriptor (standard input: 0) read as a file object whose reads give up, as an
    end of stream, once :meth:`stop` is called: a quiet live stream cannot hold a run that was
    interrupted. Unbuffered, so no reader's lock is held by a thread left waiting at Python's exit."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor
        self._stopped = threading.Event()

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 16
        while not self._stopped.is_set():
            ready, _, _ = select.select([self.descriptor], [], [], POLL_SECONDS)
            if ready:
                return os.read(self.descriptor, size)
        return b""

    def stop(self) -> None:
        self._stopped.set()


class PipedVideo(FrameSource):
    """The video on ``stream`` (a binary file object that is read once), decoded with PyAV as it comes;
    ``description`` names it in messages.

    Give standard input as a :class:`PipeReader`, not ``sys.stdin.buffer``: frames are read ahead on
    a thread, which a quiet live stream leaves waiting in a read when the run is interrupted;
    :meth:`interrupt` ends that wait (and a buffered reader's lock held there would abort Python's exit).
    """

    seekable = False

    def __init__(self, stream: BinaryIO, description: str = "standard input") -> None:
        import av

        self.description = description
        self._stream = stream
        try:
            self._container = av.open(stream, mode="r")
        except av.FFmpegError as error:
            said = getattr(error, "strerror", None) or str(error)
            raise DataError(f"cannot read a video from {description} ({said}): {PIPE_ADVICE}") from None
        if not self._container.streams.video:
            self._container.close()
            raise DataError(f"{description} holds no video stream")
        video = self._container.streams.video[0]
        video.thread_type = "SLICE"  # as VideoFile: frame threading reports decode errors late
        self._frames = self._decode(video)
        first = next(self._frames, None)
        if first is None:
            raise DataError(f"{description} holds no decodable frames: {PIPE_ADVICE}")
        self._shown_width = shown_width(video)
        self._first: np.ndarray | None = upright_rgb(first, self._shown_width)
        rate = video.average_rate or video.guessed_rate
        fps = float(rate) if isinstance(rate, Fraction) and rate > 0 else None
        height, width = self._first.shape[:2]
        sideways = quarter_turns(getattr(first, "rotation", 0)) % 2 == 1
        self._info = FrameInfo(height, width, None, fps, sideways, hdr=hdr_transfer(first))

    @property
    def info(self) -> FrameInfo:
        return self._info

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is None:
            raise DataError(f"{self.description} was already read: a pipe is read once, front to back")
        first, self._first = self._first, None
        yield first
        for index, frame in enumerate(self._frames, start=1):
            array = upright_rgb(frame, self._shown_width)
            self._check_size(array, index, str(index))
            yield array

    def _decode(self, video) -> Iterator:
        """The stream's frames as they arrive, decoded as video files are (:func:`_decode`); a stream
        that breaks off ends there (a live camera's stream ends so), every whole frame kept."""
        import av

        try:
            yield from _decode(self._container, video, _Demuxed())
        except av.FFmpegError:
            return
        finally:
            self._container.close()

    def interrupt(self) -> None:
        """Make a read that waits for input give up, as if the stream had ended (from any thread)."""
        stop = getattr(self._stream, "stop", None)
        if callable(stop):
            stop()

    def close(self) -> None:
        """Stop reading: the pipe is closed (a run that ends early, or a caller that leaves)."""
        self._frames.close()


def piped_stdin() -> PipedVideo:
    """The video piped to standard input; a terminal there (nothing piped) is an error, not a wait."""
    descriptor = sys.stdin.fileno()
    if os.isatty(descriptor):
        raise DataError(f"- reads a video piped to standard input, and none is: {PIPE_CONTAINERS}, "
                        "e.g. ffmpeg -i rtsp://camera/stream -c copy -f matroska - | qmra segment - ...")
    return PipedVideo(PipeReader(descriptor))
