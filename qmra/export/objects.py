"""What both export formats take from a frame's labels, and how they name categories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from qmra.data.rle import mask_entry

#: The category of objects no ``--category`` names.
DEFAULT_CATEGORY = "object"


@dataclass(frozen=True)
class ObjectMask:
    """One object's mask on one frame, as COCO writes it: compressed RLE, ``area`` in pixels and
    ``bbox`` x y w h in pixels."""

    object_id: int
    rle: dict[str, Any]
    area: int
    bbox: list[float]


def object_masks(labels: np.ndarray) -> Iterator[ObjectMask]:
    """The objects with pixels in ``labels`` (H×W ids, 0 = background), in id order."""
    for object_id in (int(i) for i in np.unique(labels) if i != 0):
        entry = mask_entry(labels == object_id)  # the id is in the labels, so its mask has pixels and a box
        yield ObjectMask(object_id, {"size": entry["size"], "counts": entry["counts"]}, entry["area"], entry["bbox"])


class Categories:
    """Category ids for object ids: ``names`` (object id → name) in the order given, so that exports
    of one project agree; objects not named are :data:`DEFAULT_CATEGORY`, added when first used."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = dict(names)
        self.ids: dict[str, int] = {}
        for name in self.names.values():
            self.ids.setdefault(name, len(self.ids) + 1)

    def of(self, object_id: int) -> int:
        name = self.names.get(object_id, DEFAULT_CATEGORY)
        return self.ids.setdefault(name, len(self.ids) + 1)

    def listing(self) -> list[dict[str, Any]]:
        """The ``categories`` of a COCO or YouTube-VIS document."""
        return [{"id": i, "name": name, "supercategory": DEFAULT_CATEGORY} for name, i in self.ids.items()]
