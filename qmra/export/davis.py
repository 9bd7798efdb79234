"""Masks as a DAVIS dataset: the layout video object segmentation code reads (DAVIS 2017, and the
YouTube-VOS-style loaders of STM, XMem and Cutie), and ``qmra eval --davis`` and ``qmra train --data
davis:`` too.

``JPEGImages/480p/<video>/<frame>.jpg`` beside ``Annotations/480p/<video>/<frame>.png``: one palette
PNG per frame whose indices are the objects' ids (0 = background), named after the frame. ("480p" is
the layout's folder name, whatever the frames' size.) The frames' and objects' list, with the
categories ``--category`` gives, goes in ``qmra-export.json``, written last.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qmra.export.coco import info
from qmra.export.objects import DEFAULT_CATEGORY


class DavisDocument:
    """Built video by video, frame by frame; ``names``: object id → category name. The masks themselves
    are written by the export as palette PNGs under :attr:`MASKS`."""

    #: Where the export writes the frames, the masks, and (last) this document.
    IMAGES = "JPEGImages/480p"
    MASKS: str | None = "Annotations/480p"
    ANNOTATIONS = "qmra-export.json"

    def __init__(self, names: dict[int, str] | None = None, description: str = "") -> None:
        self.description = description
        self.names = dict(names or {})
        self.videos: list[dict[str, Any]] = []

    def add_video(self, name: str) -> int:
        """A new video; returns its id (1, 2, ...)."""
        self.videos.append({"id": len(self.videos) + 1, "name": name, "frames": [], "objects": []})
        return len(self.videos)

    def add_frame(self, video_id: int, frame_id: int, file_name: str, labels: np.ndarray) -> list[int]:
        """The next frame of video ``video_id`` (``file_name`` under the images folder) and its ``labels``
        (H×W object ids); returns the ids it holds."""
        video = self.videos[video_id - 1]
        video["frames"].append({"file_name": file_name, "frame_id": frame_id})
        found = [int(i) for i in np.unique(labels) if i != 0]
        video["objects"] = sorted(set(video["objects"]) | set(found))
        return found

    def summary(self) -> str:
        frames = sum(len(video["frames"]) for video in self.videos)
        objects = sum(len(video["objects"]) for video in self.videos)
        return f"{len(self.videos)} video{'s' if len(self.videos) != 1 else ''}, {frames} frames, {objects} objects"

    def document(self) -> dict[str, Any]:
        """What the export holds: its videos (frames and object ids) and each object id's category name."""
        ids = sorted({object_id for video in self.videos for object_id in video["objects"]})
        return {"info": info(self.description),
                "categories": {str(i): self.names.get(i, DEFAULT_CATEGORY) for i in ids}, "videos": self.videos}
