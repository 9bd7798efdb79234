"""A source video's sound in the videos qmra writes from it (the overlay, the redacted video), in step
with their frames.

The sound is decoded and encoded again as AAC, whatever the source holds (AAC, Opus, PCM from a
camera, ...), so that every mp4 player plays it, and so that a run over part of a video (``--frames``)
gets exactly that part's sound, to the sample. A run over every N-th frame (``--every``) plays for as
long as the source, so its sound is the source's whole sound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: AAC's frame: the encoder takes this many samples at a time (the last frame may be shorter).
AAC_FRAME = 1024
AAC_BIT_RATE = 192_000


@dataclass(frozen=True)
class AudioSource:
    """Where a written video's sound comes from: the first audio track of the video file ``path``, from
    ``start`` seconds after the file's first video frame (the written video's first frame)."""

    path: Path
    start: float = 0.0


def audio_source(source: object, first: int = 0) -> AudioSource | None:
    """The sound for videos written from ``source`` (a :class:`~qmra.data.frames.FrameSource`) from
    its frame ``first`` on: None for frame folders, arrays and files without an audio track."""
    import av

    from qmra.data.frames import VideoFile

    if not isinstance(source, VideoFile):
        return None
    try:
        with av.open(str(source.path)) as container:
            if not container.streams.audio:
                return None
    except av.FFmpegError:
        return None
    fps = source.info.fps or 0
    return AudioSource(source.path, first / fps if fps > 0 else 0.0)


class AudioTrack:
    """An :class:`AudioSource`'s sound written as AAC into ``container`` (an open PyAV output, before
    its first packet), beside the video: :meth:`until` encodes it up to a time of the written video,
    :meth:`close` to its end. The file's first audio track is decoded from its start; samples before
    ``source.start`` are dropped, and silence fills in where the sound starts after the video.

    A failure to decode the sound (a damaged track) does not stop the video: the sound ends there and
    :attr:`failure` says why."""

    def __init__(self, source: AudioSource, container) -> None:
        import av

        self._input = av.open(str(source.path))
        stream = self._input.streams.audio[0]
        video = self._input.streams.video[0] if self._input.streams.video else None
        zero = float(video.start_time * video.time_base) if video is not None and video.start_time is not None else 0.0
        self._begin = zero + source.start  # the source's time, in seconds, of the written video's start
        self.rate = stream.codec_context.sample_rate or 48000
        layout = "mono" if stream.codec_context.channels == 1 else "stereo"  # others are mixed down to stereo
        self._stream = container.add_stream("aac", rate=self.rate)
        self._stream.layout = layout
        self._stream.bit_rate = AAC_BIT_RATE
        self._container = container
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self._frames = self._input.decode(stream)
        self._buffer = np.zeros((1 if layout == "mono" else 2, 0), np.float32)
        self._skip: int | None = None  # samples still to drop before the written video's start
        self._ended = False
        self.samples_written = 0
        self.failure: str | None = None

    def until(self, seconds: float) -> None:
        """Encode the sound up to ``seconds`` of the written video, in whole AAC frames."""
        target = round(seconds * self.rate)
        self._fill(target)
        whole = (min(target, self.samples_written + self._buffer.shape[1]) - self.samples_written) // AAC_FRAME
        self._encode(whole * AAC_FRAME)

    def close(self, seconds: float) -> None:
        """Encode the sound to ``seconds`` of the written video (its length), flush the encoder and
        close the source."""
        try:
            target = round(seconds * self.rate)
            self._fill(target)
            self._encode(max(0, min(target - self.samples_written, self._buffer.shape[1])))
            self._mux(None)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the source (the written file is left to its writer)."""
        self._input.close()

    def _fill(self, target: int) -> None:
        """Decode until the buffer reaches sample ``target`` of the written video, or the sound ends."""
        import av

        while not self._ended and self.samples_written + self._buffer.shape[1] < target:
            try:
                frame = next(self._frames, None)
                chunks = self._resampler.resample(frame)
            except av.FFmpegError as error:
                self.failure = f"the sound could not be decoded past {self.samples_written / self.rate:.1f} s ({error})"
                frame, chunks = None, []
            if frame is None:
                self._ended = True
            elif self._skip is None:
                self._start_at(frame)
            for chunk in chunks:
                self._add(chunk.to_ndarray().astype(np.float32, copy=False))

    def _start_at(self, frame) -> None:
        """The first decoded frame: how many samples to drop (it starts before the written video) or
        how much silence to put before it (after)."""
        start = float(frame.pts * frame.time_base) if frame.pts is not None else self._begin
        offset = round((start - self._begin) * self.rate)
        self._skip = max(0, -offset)
        if offset > 0:
            self._buffer = np.zeros((self._buffer.shape[0], offset), np.float32)

    def _add(self, samples: np.ndarray) -> None:
        drop = min(self._skip or 0, samples.shape[1])
        self._skip = (self._skip or 0) - drop
        self._buffer = np.concatenate([self._buffer, samples[:, drop:]], axis=1)

    def _encode(self, count: int) -> None:
        """Encode the buffer's first ``count`` samples, in AAC frames."""
        import av

        for start in range(0, count, AAC_FRAME):
            samples = np.ascontiguousarray(self._buffer[:, start:min(count, start + AAC_FRAME)])
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self._stream.layout.name)
            frame.sample_rate, frame.pts = self.rate, self.samples_written
            self.samples_written += samples.shape[1]
            self._mux(frame)
        self._buffer = self._buffer[:, count:]

    def _mux(self, frame) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
