"""YouTube-VOS: sparse annotations (every 5th frame) and objects that appear mid-video.

    ROOT/JPEGImages/<video>/00000.jpg ...
    ROOT/Annotations/<video>/00000.png ...   palette ids; only some frames
    ROOT/meta.json                            {"videos": {<video>: {"objects": {"1": {"frames": [...]}}}}}
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from qmra.data.frames import IMAGE_SUFFIXES, list_files
from qmra.data.masks import open_image, read_labels, read_rgb
from qmra.errors import DataError


class YouTubeVOSVideo:
    """One video. ``first_frames[id]`` is the index of the frame where each object first appears."""

    def __init__(self, name: str, frames_dir: Path, annotations_dir: Path, objects: dict[str, dict]) -> None:
        self.name = name
        if not frames_dir.is_dir():
            raise DataError(f"video {name}: frame folder not found: {frames_dir}")
        self.frame_paths = list_files(frames_dir, IMAGE_SUFFIXES)
        if not self.frame_paths:
            raise DataError(f"video {name}: no frames in {frames_dir}")
        index_of = {p.stem: i for i, p in enumerate(self.frame_paths)}
        annotations = list_files(annotations_dir, (".png",)) if annotations_dir.is_dir() else []
        orphans = [p.name for p in annotations if p.stem not in index_of]
        if orphans:
            raise DataError(f"video {name}: annotations without a frame: {', '.join(orphans[:5])}")
        self.annotation_paths = {index_of[p.stem]: p for p in annotations}
        self.first_frames: dict[int, int] = {}
        for key, info in objects.items():
            try:
                object_id = int(key)
            except ValueError:
                raise DataError(f"video {name}: object id {key!r} in meta.json is not a number") from None
            frames = [f for f in info.get("frames", []) if f in index_of]
            if not frames:
                raise DataError(f"video {name}: object {object_id} has no frame that exists in {frames_dir}")
            self.first_frames[object_id] = min(index_of[f] for f in frames)

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self.frame_paths]

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.first_frames)

    @property
    def annotated_indices(self) -> list[int]:
        return sorted(self.annotation_paths)

    @cached_property
    def size(self) -> tuple[int, int]:
        image = open_image(self.frame_paths[0])
        return image.height, image.width

    def image(self, index: int) -> np.ndarray:
        image = read_rgb(self.frame_paths[index])
        if image.shape[:2] != self.size:
            raise DataError(f"video {self.name}: frame {self.frame_paths[index].name} is {image.shape[1]}x{image.shape[0]}, "
                            f"the first frame is {self.size[1]}x{self.size[0]}")
        return image

    def labels(self, index: int) -> np.ndarray:
        path = self.annotation_paths.get(index)
        if path is None:
            raise DataError(f"video {self.name}: frame {self.frame_paths[index].name} has no annotation")
        labels = read_labels(path, "palette")
        if labels.shape != self.size:
            raise DataError(f"video {self.name}: annotation {path.name} is {labels.shape[1]}x{labels.shape[0]}, "
                            f"the frames are {self.size[1]}x{self.size[0]}")
        return labels


class YouTubeVOSDataset:
    """The videos of one YouTube-VOS split folder (``train`` or ``valid``), listed by ``meta.json``."""

    def __init__(self, root: str | Path, videos: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"not a YouTube-VOS split folder: {meta_path} is missing")
        try:
            meta = json.loads(meta_path.read_text())
            self._videos: dict[str, dict] = meta["videos"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"cannot read {meta_path}: {error}") from None
        names = list(videos) if videos is not None else sorted(self._videos)
        unknown = [n for n in names if n not in self._videos]
        if unknown:
            raise DataError(f"unknown YouTube-VOS video(s): {', '.join(unknown[:5])}")
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[YouTubeVOSVideo]:
        return (self.video(name) for name in self.names)

    def video(self, name: str) -> YouTubeVOSVideo:
        objects = self._videos[name].get("objects", {})
        return YouTubeVOSVideo(name, self.root / "JPEGImages" / name, self.root / "Annotations" / name, objects)
