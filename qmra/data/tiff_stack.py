"""A multi-page TIFF file as a video: each page a frame, as microscopes, ImageJ/Fiji and many
scientific cameras write their recordings.

Pages are read one at a time, in any order (Pillow keeps each page's offset once it has passed it),
and turned as shown (the TIFF orientation tag, which Pillow reads as EXIF's). 16-bit greyscale pages
are scaled to 8 bits by one range for the whole stack, as Fiji shows them: ImageJ's display range
(``min=``, ``max=`` in the file's description) where it was saved, else the first page's 0.1st to
99.9th percentile. A 12-bit camera's frames (0–4095 in 16 bits) would otherwise be nearly black,
and a range taken page by page would flicker. ImageJ's frame interval (``finterval=``) gives the
frame rate.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from qmra.data.frames import FrameInfo, FrameSource
from qmra.data.masks import image_to_rgb, is_wide_grey, percentile_range
from qmra.data.orientation import shown_size, upright_image
from qmra.errors import DataError

#: The TIFF tag holding a file's description, where ImageJ writes its ``key=value`` lines.
IMAGE_DESCRIPTION = 270


def imagej_value(description: object, key: str) -> float | None:
    """A number from an ImageJ description's ``key=value`` lines, or None."""
    if not isinstance(description, str):
        return None
    found = re.search(rf"^{key}=([0-9.eE+-]+)\s*$", description, re.MULTILINE)
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def imagej_fps(description: object) -> float | None:
    """Frames per second from an ImageJ description (``finterval=`` seconds per frame), or None."""
    interval = imagej_value(description, "finterval")
    return 1.0 / interval if interval is not None and interval > 0 else None


def grey_range(image: Image.Image, description: object) -> tuple[float, float]:
    """The 16-bit values a stack's 8 bits span: ImageJ's saved display range, else the 0.1st and
    99.9th percentiles of ``image`` (the first page), widened to at least 1."""
    low, high = imagej_value(description, "min"), imagej_value(description, "max")
    if low is None or high is None or not high > low:
        return percentile_range(image)
    return low, high


def is_tiff_stack(path: str | Path) -> bool:
    """Whether ``path`` is a TIFF file of more than one page: a stack to open as a video, not one frame
    of a folder. Reads the file's header only; False for anything else or unreadable."""
    try:
        with Image.open(path) as image:
            return image.format == "TIFF" and bool(getattr(image, "is_animated", False))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


class TiffStack(FrameSource):
    """The pages of a (multi-page) TIFF file, frame names ``00000``, ``00001``, ..."""

    seekable = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(self.path)
        if not self.path.is_file():
            raise DataError(f"TIFF file not found: {self.path}")
        image = self._open()
        self._image: Image.Image | None = image
        self._lock = threading.Lock()
        height, width = shown_size(image)
        description = image.tag_v2.get(IMAGE_DESCRIPTION) if hasattr(image, "tag_v2") else None
        #: The 16-bit values mapped to 0..255, the same for every page (None: 8-bit pages).
        self.grey_range = grey_range(image, description) if is_wide_grey(image) else None
        self._info = FrameInfo(height, width, int(getattr(image, "n_frames", 1)), imagej_fps(description),
                               sideways=(height, width) != (image.height, image.width))

    def _open(self) -> Image.Image:
        try:
            image = Image.open(self.path)
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"cannot read {self.path} as a TIFF stack: {error}") from None
        if image.format != "TIFF":
            image.close()
            raise DataError(f"{self.path} is a {image.format} image, not a TIFF stack")
        return image

    @property
    def info(self) -> FrameInfo:
        return self._info

    def read(self, index: int) -> np.ndarray:
        count = self._info.num_frames or 0
        if not 0 <= index < count:
            raise DataError(f"{self.path}: no frame {index} (it has {count})")
        try:
            with self._lock:  # one open file, one current page: the UI reads it from several threads
                if self._image is None:
                    self._image = self._open()
                self._image.seek(index)
                self._image.load()
                frame = image_to_rgb(upright_image(self._image), self.grey_range)
        except (OSError, ValueError, SyntaxError) as error:
            raise DataError(f"cannot read page {index} of {self.path}: {error}") from None
        self._check_size(frame, index, f"{index} (page {index + 1})")
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames_from(0)

    def close(self) -> None:
        """Close the file, kept open between reads (Pillow then knows where each page it passed lies);
        a later read opens it again."""
        with self._lock:
            if self._image is not None:
                self._image.close()
                self._image = None

    def __del__(self) -> None:
        if getattr(self, "_image", None) is not None:
            self._image.close()
