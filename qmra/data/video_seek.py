"""Any frame of a video file, decoded when asked for, with a bounded cache of decoded frames.

A first pass over the file (:meth:`VideoFile.decoded`) tells each frame's timestamp and which
frames are keyframes (:meth:`SeekingVideoReader.add`). A frame is then read by seeking to the last
keyframe at or before it and decoding onwards to it, or, right after the frame before it, by going
on decoding. Decoding from a keyframe gives the same pixels as decoding the file from its start.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np

from qmra.data.frames import DecodedFrame
from qmra.data.orientation import shown_width, upright_rgb
from qmra.errors import DataError

#: Keyframes stepped back when a seek lands past the one aimed at, before decoding from the start.
SEEK_TRIES = 2

#: Bytes of decoded frames kept (the most recently used first to go last): about 200 frames at 854×480.
CACHE_BYTES = 256 << 20


class SeekingVideoReader:
    """Frames of the video at ``path`` by index, each H×W×3 uint8; frames ``add``-ed so far can be
    read, from any thread (one decodes at a time)."""

    def __init__(self, path: Path, cache_bytes: int = CACHE_BYTES) -> None:
        self.path = path
        self.cache_bytes = cache_bytes
        self._pts: list[int | None] = []
        self._index_of: dict[int, int] = {}
        self._keyframes: list[int] = []  # indices, ascending
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._container = None
        self._shown_width: int | None = None  # of non-square pixels, once the file is open
        self._frames: Iterator | None = None  # the decoder's output, positioned before frame _next
        self._next = -1
        self._exact = True  # frames are told apart by timestamp (else counted from the file's start)
        self._seeks = True  # seeking to a keyframe finds it (else decoding starts at the file's start)

    def add(self, frame: DecodedFrame) -> None:
        """The next frame of the file, in order, as the first pass found it."""
        index = len(self._pts)
        self._pts.append(frame.pts)
        if frame.pts is not None:
            self._index_of.setdefault(frame.pts, index)
        if frame.key_frame:
            self._keyframes.append(index)

    def __len__(self) -> int:
        return len(self._pts)

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self._pts):
            raise DataError(f"{self.path}: no frame {index} (it has {len(self._pts)} so far)")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            if index == self._next and self._frames is not None:
                found = self._decode_to(index)
                if found is not None:
                    return found
            for back in range(SEEK_TRIES + 1):
                self._seek(index, back)
                found = self._decode_to(index, after_seek=True)
                if found is not None:
                    return found
            raise DataError(f"{self.path}: frame {index} could not be decoded again")

    def close(self) -> None:
        with self._lock:
            self._frames = None
            if self._container is not None:
                self._container.close()
                self._container = None
            self._cache.clear()
            self._cached_bytes = 0

    def _seek(self, index: int, back: int = 0) -> None:
        """Position the decoder at the last keyframe at or before ``index``, or ``back`` keyframes
        before that: some containers' seeks land a keyframe late (MPEG-TS with B-frames) or anywhere
        (MPEG program streams); after :data:`SEEK_TRIES` misses, and where timestamps are missing
        or repeat, at the file's start, and a file whose seeks missed that often is decoded from
        its start from then on."""
        import av

        if self._container is None:
            try:
                self._container = av.open(str(self.path))
            except av.FFmpegError as error:
                raise DataError(f"cannot read video {self.path}: {error}") from None
            self._container.streams.video[0].thread_type = "SLICE"
            self._shown_width = shown_width(self._container.streams.video[0])
        stream = self._container.streams.video[0]
        if back == SEEK_TRIES:
            self._seeks = False
        at = bisect.bisect_right(self._keyframes, index) - 1 - back
        start = self._keyframes[at] if at >= 0 and self._seeks else 0
        exact = self._pts[start] is not None and len(self._index_of) == len(self._pts)
        if not exact:
            start = 0
        self._container.seek(self._pts[start] if exact and start else 0, stream=stream, backward=True, any_frame=False)
        self._frames = self._container.decode(stream)
        self._next = start if exact else 0
        self._exact = exact

    def _decode_to(self, index: int, after_seek: bool = False) -> np.ndarray | None:
        """Decode onwards until frame ``index``, caching the frames on the way; None where the
        decoder's output ends first or skips frames (a seek that landed past ``index``, or past
        the keyframe it aimed at onto a frame that may lack the frames it refers to).

        ``after_seek``: the decoder was just positioned. Its first frame may then be a later
        keyframe than the one aimed at (a seek that landed late), which is as good a start."""
        import av

        assert self._frames is not None
        counted = self._next
        first = after_seek
        try:
            for frame in self._frames:
                found = self._index_of.get(frame.pts) if self._exact else counted
                counted += 1
                if found is None or found < self._next:
                    continue  # before the frame the seek aimed at (a keyframe's leading frames)
                if found > self._next:
                    if not (first and found <= index and self._is_keyframe(found)):
                        break
                    self._next = found
                first = False
                array = upright_rgb(frame, self._shown_width)
                self._keep(found, array)
                self._next = found + 1
                if found == index:
                    return array
        except av.FFmpegError as error:
            self._frames = None
            raise DataError(f"{self.path}: cannot decode frame {index}: {error}") from None
        self._frames = None
        return None

    def _is_keyframe(self, index: int) -> bool:
        at = bisect.bisect_left(self._keyframes, index)
        return at < len(self._keyframes) and self._keyframes[at] == index

    def _keep(self, index: int, array: np.ndarray) -> None:
        if index in self._cache:
            return
        self._cache[index] = array
        self._cached_bytes += array.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.nbytes
