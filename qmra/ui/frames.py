"""Frames with random access for the web app: shown in the page, read in any order by the runs.

A frame folder is used as it is (its files are both what the page shows and what the network
reads; TIFF and BMP frames, which browsers do not show or show large, go to the page as JPEG). A
TIFF stack's pages are read when asked for, as a folder's files are. A video is decoded once on a background thread, to count its frames and find where each
lies in the file; after that any frame is decoded again when asked for, from the keyframe before it
(:mod:`qmra.data.video_seek`: the same pixels ``qmra segment`` decodes), with the most recently
used frames and page images kept in memory up to a bound. Nothing is written to disk. The first
frames can be shown while later ones are still being counted.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data.frames import FrameFolder, FrameInfo, FrameSource, VideoFile, open_frames
from qmra.data.orientation import is_turned
from qmra.data.tiff_stack import TiffStack
from qmra.data.video_seek import SeekingVideoReader
from qmra.errors import QmraError

DISPLAY_QUALITY = 90
#: Page images (JPEG, about 60 kB each at 854×480) kept in memory per video.
DISPLAY_KEPT = 256
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp", ".webp": "image/webp"}


class FrameStore:
    """``count`` frames (growing while a video is decoded), each readable as H×W×3 uint8 and
    servable as an image file."""

    def __init__(self, source_path: Path) -> None:
        self.path = source_path
        source: FrameSource = open_frames(source_path)
        self.info = source.info
        self.name = source_path.stem if source_path.is_file() else source_path.name
        self.error: str | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        #: A folder or a TIFF stack: every frame at hand, in any order, nothing to decode ahead.
        self._at_hand: FrameFolder | TiffStack | None = source if isinstance(source, (FrameFolder, TiffStack)) else None
        self.folder: FrameFolder | None = source if isinstance(source, FrameFolder) else None
        self._shown: OrderedDict[int, bytes] = OrderedDict()
        self._shown_lock = threading.Lock()
        if self._at_hand is not None:
            self._count = source.info.num_frames or 0
            self.finished = True
            self._thread: threading.Thread | None = None
        else:
            assert isinstance(source, VideoFile)
            self._count = 0
            self.finished = False
            self._video = SeekingVideoReader(source_path)
            self._thread = threading.Thread(target=self._decode, args=(source,), name="qmra-ui-decode", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ decoding

    def _decode(self, video: VideoFile) -> None:
        try:
            for index, where in enumerate(video.positions()):
                if self._stop.is_set():
                    return
                self._video.add(where)
                with self._changed:
                    self._count = index + 1
                    self._changed.notify_all()
        except QmraError as error:  # a truncated or corrupt file: the frames before the damage stay usable
            self.error = str(error)
        except Exception as error:  # noqa: BLE001 - shown in the page; the thread must not die silently
            self.error = f"cannot decode {self.path.name}: {error}"
        finally:
            with self._changed:
                self.finished = True
                self._changed.notify_all()

    def close(self) -> None:
        if isinstance(self._at_hand, TiffStack):
            self._at_hand.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._video.close()

    @property
    def count(self) -> int:
        return self._count

    @property
    def expected(self) -> int | None:
        """The frame count the file announces (None if unknown), for progress while decoding."""
        return self._count if self.finished else self.info.num_frames

    def wait(self, index: int | None = None, timeout: float | None = None) -> bool:
        """Until frame ``index`` is available (None: until decoding ends). False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.finished or (index is not None and index < self._count), timeout)

    # ------------------------------------------------------------------ access

    def frame_name(self, index: int) -> str:
        return self._at_hand.frame_name(index) if self._at_hand is not None else f"{index:05d}"

    def check_index(self, index: int) -> None:
        if not 0 <= index < self._count:
            raise QmraError(f"frame {index} does not exist (the video has {self._count} frames so far)")

    def read(self, index: int) -> np.ndarray:
        self.check_index(index)
        if self._at_hand is not None:
            return self._at_hand.read(index)
        return self._video.read(index)

    def display_bytes(self, index: int) -> tuple[bytes, str]:
        """The image the page shows for frame ``index``, and its content type."""
        self.check_index(index)
        if self.folder is not None:
            path = self.folder.paths[index]
            content_type = CONTENT_TYPES.get(path.suffix.lower())
            # Browsers show BMP, but a JPEG is a tenth of its size, and no TIFF; 16-bit frames are scaled
            # by the folder's range and a photo with an EXIF orientation is sent upright, so that the
            # page shows the very pixels the network reads, whatever the browser.
            if content_type in (None, "image/bmp") or self.folder.grey_range is not None or is_turned(path):
                return _jpeg(self.folder.read(index)), "image/jpeg"
            return path.read_bytes(), content_type
        with self._shown_lock:
            if index in self._shown:
                self._shown.move_to_end(index)
                return self._shown[index], "image/jpeg"
        data = _jpeg(self.read(index))
        with self._shown_lock:
            self._shown[index] = data
            while len(self._shown) > DISPLAY_KEPT:
                self._shown.popitem(last=False)
        return data, "image/jpeg"

    def source(self) -> "StoreFrames":
        """The frames decoded so far, as a source a session can read in any order."""
        return StoreFrames(self)


class StoreFrames(FrameSource):
    """A store's frames (those decoded when made), read one at a time when a session asks for them."""

    seekable = True

    def __init__(self, store: FrameStore) -> None:
        self.store = store
        self.description = store.name
        self._info = replace(store.info, num_frames=store.count, estimated=False)  # counted by decoding

    @property
    def info(self) -> FrameInfo:
        return self._info

    def frame_name(self, index: int) -> str:
        return self.store.frame_name(index)

    def read(self, index: int) -> np.ndarray:
        return self.store.read(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(self._info.num_frames or 0):
            yield self.store.read(index)


def _jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=DISPLAY_QUALITY)
    return buffer.getvalue()
