"""A page's masks on disk, never in RAM: one 1-bit PNG per object and frame
(``masks/<id>/<frame>.png``), and the merged label map of each frame that has one
(``labels/<frame>.png``, a palette PNG whose colour 0 is transparent: the page lays it over the
frame as it is)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data.atomic import write_bytes_atomic
from qmra.data.video_writer import object_colour


def transparent_palette_png(labels: np.ndarray) -> bytes:
    """A label map as a PNG in the overlay colours (those of qmra's overlay videos), colour 0
    (background) transparent."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[1:] = [object_colour(i) for i in range(1, 256)]
    image.putpalette(palette.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0, compress_level=1)
    return buffer.getvalue()


class MaskFiles:
    """The masks of one video of ``height`` × ``width`` pixels, under ``folder``."""

    def __init__(self, folder: Path, height: int, width: int) -> None:
        self.folder = folder
        self.height = height
        self.width = width

    def _mask_path(self, object_id: int, frame: int) -> Path:
        return self.folder / "masks" / str(object_id) / f"{frame:05d}.png"

    def _labels_path(self, frame: int) -> Path:
        return self.folder / "labels" / f"{frame:05d}.png"

    def store(self, object_id: int, frame: int, mask: np.ndarray) -> None:
        """Object ``object_id``'s H×W boolean mask on ``frame``."""
        buffer = io.BytesIO()
        Image.fromarray(mask).save(buffer, format="PNG")  # mode 1: a bit per pixel
        write_bytes_atomic(self._mask_path(object_id, frame), buffer.getvalue())

    def read(self, object_id: int, frame: int) -> np.ndarray:
        with Image.open(self._mask_path(object_id, frame)) as image:
            return np.asarray(image.convert("1"), dtype=bool)

    def remove_object(self, object_id: int) -> None:
        shutil.rmtree(self.folder / "masks" / str(object_id), ignore_errors=True)

    def compose(self, frame: int, order: list[int]) -> None:
        """Merge the masks of the objects in ``order`` on ``frame`` into its label map, later ones on
        top where masks overlap (none: the frame has no label map)."""
        path = self._labels_path(frame)
        if not order:
            path.unlink(missing_ok=True)
            return
        labels = np.zeros((self.height, self.width), np.uint8)
        for object_id in order:
            labels[self.read(object_id, frame)] = object_id
        write_bytes_atomic(path, transparent_palette_png(labels))

    def label_png(self, frame: int) -> bytes:
        """The frame's label map as the page shows it (FileNotFoundError: it has none)."""
        return self._labels_path(frame).read_bytes()

    def labels(self, frame: int) -> np.ndarray | None:
        """The frame's H×W label map (None: it has none)."""
        path = self._labels_path(frame)
        if not path.is_file():
            return None
        with Image.open(path) as image:
            return np.asarray(image, dtype=np.uint8).copy()
