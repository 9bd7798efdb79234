"""Each object's box and state on every frame, as one CSV file per video: what a tracker's user reads
(boxes for a detector's dataset, an object's path, the frames to check), without decoding masks."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from qmra.data.boxes import box_from_mask
from qmra.data.growing_file import GrowingFile

#: The columns: the frame's index and name, the object, the tight box of its mask (pixels, x1 and y1
#: exclusive; empty where the mask is), its area in pixels, the network's confidence in it, whether
#: it is lost (empty mask) and the signs that it went wrong (space-separated; qmra.inference.quality).
COLUMNS = ("frame", "name", "object", "x0", "y0", "x1", "y1", "area", "confidence", "lost", "doubts")


@dataclass
class TrackWriter(GrowingFile):
    """Collects a row per object and frame; the CSV file (:data:`COLUMNS`, a header first) is written
    atomically as it grows (:class:`GrowingFile`)."""

    rows: list[str] = field(default_factory=list)
    _frames: int = field(default=0, init=False)

    def add(self, index: int, name: str, labels: np.ndarray, object_ids: list[int],
            confidence: Mapping[int, float], doubts: Mapping[int, tuple[str, ...]]) -> None:
        """Frame ``index`` (named ``name``): H×W ``labels`` (object ids), every object of the run, the
        network's ``confidence`` in each and the ``doubts`` about each."""
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        for object_id in object_ids:
            mask = labels == object_id
            box = box_from_mask(mask)
            corners = ["", "", "", ""] if box is None else [int(v) for v in box.as_tuple()]
            score = confidence.get(object_id)
            out.writerow([index, name, object_id, *corners, int(mask.sum()), "" if score is None else f"{score:.3f}",
                          int(box is None), " ".join(doubts.get(object_id, ()))])
        self.rows.append(buffer.getvalue())
        self._frames += 1

    def count(self) -> int:
        return self._frames

    def text(self) -> str:
        return ",".join(COLUMNS) + "\n" + "".join(self.rows)
