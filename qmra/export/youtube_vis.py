"""Masks as a YouTube-VIS video instance-segmentation dataset.

The layout of the YouTube-VIS challenge's annotation files, which video instance segmentation code
reads (Detectron2's ``ytvis`` loaders, Mask2Former-VIS, mmdet): ``videos`` list each video's
``file_names`` in order (with ``width``, ``height``, ``length``); an annotation is one object
through a whole video: ``segmentations``, ``bboxes`` (x y w h, pixels) and ``areas``, one entry per
file name, null where the object has no mask. Masks are compressed RLE. Each video also keeps
``frame_ids`` (the frames' numbers in it), and each annotation its ``object_id`` (qmra's id).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qmra.export.coco import info
from qmra.data.coco_videos import ANNOTATIONS, IMAGES
from qmra.export.objects import Categories, object_masks


class YouTubeVisDocument:
    """Built video by video, frame by frame; ``names``: object id → category name."""

    #: Where the export writes the frames, the masks (here: in the document), and (last) this document.
    IMAGES = IMAGES
    MASKS: str | None = None
    ANNOTATIONS = ANNOTATIONS

    def __init__(self, names: dict[int, str] | None = None, description: str = "") -> None:
        self.description = description
        self.categories = Categories(names or {})
        self.videos: list[dict[str, Any]] = []
        self._tracks: dict[tuple[int, int], dict[str, Any]] = {}

    def add_video(self, name: str) -> int:
        """A new video; returns its id (1, 2, ...)."""
        self.videos.append({"id": len(self.videos) + 1, "name": name, "width": 0, "height": 0, "length": 0,
                            "file_names": [], "frame_ids": []})
        return len(self.videos)

    def add_frame(self, video_id: int, frame_id: int, file_name: str, labels: np.ndarray) -> list[int]:
        """The next frame of video ``video_id``: its image (``file_name``, relative to the images folder)
        and each object's mask in ``labels`` (H×W object ids, 0 = background); returns those ids."""
        video = self.videos[video_id - 1]
        height, width = labels.shape
        video["height"], video["width"] = int(height), int(width)
        position = video["length"]
        video["file_names"].append(file_name)
        video["frame_ids"].append(frame_id)
        video["length"] = position + 1
        found_ids = []
        for found in object_masks(labels):
            found_ids.append(found.object_id)
            track = self._tracks.get((video_id, found.object_id))
            if track is None:
                track = self._tracks[(video_id, found.object_id)] = {
                    "id": len(self._tracks) + 1, "video_id": video_id,
                    "category_id": self.categories.of(found.object_id), "iscrowd": 0,
                    "height": int(height), "width": int(width), "object_id": found.object_id,
                    "segmentations": [], "bboxes": [], "areas": []}
            for key, value in (("segmentations", found.rle), ("bboxes", found.bbox), ("areas", found.area)):
                track[key].extend([None] * (position - len(track[key])))  # frames without its mask
                track[key].append(value)
        return found_ids

    def summary(self) -> str:
        frames = sum(video["length"] for video in self.videos)
        return f"{len(self.videos)} video{'s' if len(self.videos) != 1 else ''}, {frames} frames, {len(self._tracks)} objects"

    def document(self) -> dict[str, Any]:
        """The YouTube-VIS JSON document: every annotation as long as its video."""
        annotations = []
        for (video_id, _), track in self._tracks.items():
            length = self.videos[video_id - 1]["length"]
            annotations.append({**track, **{key: track[key] + [None] * (length - len(track[key]))
                                            for key in ("segmentations", "bboxes", "areas")}})
        return {"info": info(self.description), "licenses": [], "categories": self.categories.listing(),
                "videos": self.videos, "annotations": annotations}
