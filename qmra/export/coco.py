"""Masks as a COCO instance-segmentation dataset, with the video fields trackers read.

The document is plain COCO (``images``, ``annotations`` with compressed-RLE ``segmentation``,
``bbox`` x y w h in pixels, ``area``, ``iscrowd``; ``categories``), so COCO readers (pycocotools,
Detectron2's ``register_coco_instances``, ``qmra train --data coco:``) take it as it is. It also
carries the CocoVID fields that video tools (mmtracking, TAO) read: ``videos``, and per image
``video_id`` and ``frame_id`` (the frame's number in its video), per annotation ``video_id`` and
``instance_id`` (one per object and video, the same on every frame).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from qmra.data.coco_videos import ANNOTATIONS, IMAGES
from qmra.export.objects import Categories, object_masks


class CocoDocument:
    """Built video by video, frame by frame; ``names``: object id → category name."""

    #: Where the export writes the frames, the masks (here: in the document), and (last) this document.
    IMAGES = IMAGES
    MASKS: str | None = None
    ANNOTATIONS = ANNOTATIONS

    def __init__(self, names: dict[int, str] | None = None, description: str = "") -> None:
        self.description = description
        self.categories = Categories(names or {})
        self.videos: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._instances: dict[tuple[int, int], int] = {}

    def add_video(self, name: str) -> int:
        """A new video; returns its id (1, 2, ...)."""
        self.videos.append({"id": len(self.videos) + 1, "name": name})
        return len(self.videos)

    def add_frame(self, video_id: int, frame_id: int, file_name: str, labels: np.ndarray) -> list[int]:
        """One frame of video ``video_id``: its image (``file_name``, relative to the images folder) and
        an annotation per object in ``labels`` (H×W object ids, 0 = background); returns those ids."""
        height, width = labels.shape
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width),
                            "video_id": video_id, "frame_id": frame_id})
        found_ids = []
        for found in object_masks(labels):
            found_ids.append(found.object_id)
            instance = self._instances.setdefault((video_id, found.object_id), len(self._instances) + 1)
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id,
                "category_id": self.categories.of(found.object_id), "segmentation": found.rle, "area": found.area,
                "bbox": found.bbox, "iscrowd": 0, "video_id": video_id, "instance_id": instance,
                "object_id": found.object_id,
            })
        return found_ids

    def summary(self) -> str:
        return f"{len(self.images)} images, {len(self.annotations)} masks"

    def document(self) -> dict[str, Any]:
        """The COCO JSON document."""
        return {"info": info(self.description), "licenses": [], "categories": self.categories.listing(),
                "videos": self.videos, "images": self.images, "annotations": self.annotations}


def info(description: str) -> dict[str, str]:
    """A document's ``info``: what it is and when it was written (UTC)."""
    return {"description": description, "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
