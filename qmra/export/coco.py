"""Masks as a COCO instance-segmentation dataset, with the video fields trackers read.

The document is plain COCO (``images``, ``annotations`` with compressed-RLE ``segmentation``,
``bbox`` x y w h in pixels, ``area``, ``iscrowd``; ``categories``), so COCO readers (pycocotools,
Detectron2's ``register_coco_instances``, ``qmra train --data coco:``) take it as it is. It also
carries the CocoVID fields that video tools (mmtracking, TAO) read: ``videos``, and per image
``video_id`` and ``frame_id`` (the frame's number in its video), per annotation ``video_id`` and
``instance_id`` (one per object and video, the same on every frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from qmra.data.boxes import box_from_mask
from qmra.data.rle import encode_rle

#: The category of objects no ``--category`` names.
DEFAULT_CATEGORY = "object"


@dataclass
class CocoDocument:
    """Built video by video, frame by frame; ``names``: object id → category name (others:
    :data:`DEFAULT_CATEGORY`)."""

    names: dict[int, str] = field(default_factory=dict)
    description: str = ""
    videos: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    _categories: dict[str, int] = field(default_factory=dict)
    _instances: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Category ids in the order the names were given, so that exports of one project agree.
        for name in self.names.values():
            self._categories.setdefault(name, len(self._categories) + 1)

    def add_video(self, name: str) -> int:
        """A new video; returns its id (1, 2, ...)."""
        self.videos.append({"id": len(self.videos) + 1, "name": name})
        return len(self.videos)

    def add_frame(self, video_id: int, frame_id: int, file_name: str, labels: np.ndarray) -> None:
        """One frame of video ``video_id``: its image (``file_name``, relative to the images folder) and
        an annotation per object in ``labels`` (H×W object ids, 0 = background)."""
        height, width = labels.shape
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width),
                            "video_id": video_id, "frame_id": frame_id})
        for object_id in (int(i) for i in np.unique(labels) if i != 0):
            mask = labels == object_id
            box = box_from_mask(mask)
            assert box is not None  # the id is in the labels, so its mask has pixels
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id, "category_id": self._category(object_id),
                "segmentation": encode_rle(mask), "area": int(mask.sum()),
                "bbox": [round(float(v), 2) for v in box.to_xywh()], "iscrowd": 0,
                "video_id": video_id, "instance_id": self._instance(video_id, object_id), "object_id": object_id,
            })

    def document(self) -> dict[str, Any]:
        """The COCO JSON document."""
        return {
            "info": {"description": self.description,
                     "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "licenses": [],
            "categories": [{"id": i, "name": name, "supercategory": DEFAULT_CATEGORY}
                           for name, i in self._categories.items()],
            "videos": self.videos, "images": self.images, "annotations": self.annotations,
        }

    def _category(self, object_id: int) -> int:
        name = self.names.get(object_id, DEFAULT_CATEGORY)
        return self._categories.setdefault(name, len(self._categories) + 1)

    def _instance(self, video_id: int, object_id: int) -> int:
        return self._instances.setdefault((video_id, object_id), len(self._instances) + 1)
