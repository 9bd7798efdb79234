"""What every video with annotations offers: DAVIS and YouTube-VOS sequences, synthetic videos."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from qmra.data.frames import IMAGE_SUFFIXES, list_files
from qmra.data.masks import MaskLayout, open_image, read_labels, read_rgb
from qmra.errors import DataError


@runtime_checkable
class VideoSequence(Protocol):
    """A video whose frames and label maps are read on demand (nothing is held in memory).

    ``labels(i)`` is an H×W uint8 map of object ids (0 = background) for an index in
    ``annotated_indices``; other frames have no annotation (YouTube-VOS annotates every 5th).
    """

    name: str

    @property
    def num_frames(self) -> int: ...

    @property
    def frame_names(self) -> list[str]: ...

    @property
    def object_ids(self) -> list[int]: ...

    @property
    def annotated_indices(self) -> list[int]: ...

    def image(self, index: int) -> np.ndarray: ...

    def labels(self, index: int) -> np.ndarray: ...


class FolderSequence:
    """A video stored as a folder of frames plus a folder of (possibly sparse) annotation PNGs.

    Lists both at once and checks that every annotation has a frame of the same stem; reads lazily
    and checks sizes on read. DAVIS sequences and YouTube-VOS videos are this with their own layout.
    """

    kind = "sequence"  # how errors name it

    def __init__(self, name: str, frames_dir: Path, annotations_dir: Path, layout: MaskLayout,
                 annotations_required: bool = True) -> None:
        self.name = name
        self.frames_dir = frames_dir
        self.annotations_dir = annotations_dir
        if not frames_dir.is_dir():
            raise DataError(f"{self.kind} {name}: frame folder not found: {frames_dir}")
        self.frame_paths = list_files(frames_dir, IMAGE_SUFFIXES)
        if not self.frame_paths:
            raise DataError(f"{self.kind} {name}: no frames in {frames_dir}")
        if annotations_required and not annotations_dir.is_dir():
            raise DataError(f"{self.kind} {name}: annotation folder not found: {annotations_dir}")
        annotation_paths = list_files(annotations_dir, (".png",)) if annotations_dir.is_dir() else []
        if annotations_required and not annotation_paths:
            raise DataError(f"{self.kind} {name}: no annotations in {annotations_dir}")
        self.index_of = {p.stem: i for i, p in enumerate(self.frame_paths)}
        orphans = [p.name for p in annotation_paths if p.stem not in self.index_of]
        if orphans:
            raise DataError(f"{self.kind} {name}: annotations without a frame: {', '.join(orphans[:5])}")
        self.annotation_paths = {self.index_of[p.stem]: p for p in annotation_paths}
        if layout == "auto" and annotation_paths:
            layout = "palette" if open_image(annotation_paths[0]).mode == "P" else "binary"
        self.layout: MaskLayout = layout

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self.frame_paths]

    @property
    def annotated_indices(self) -> list[int]:
        return sorted(self.annotation_paths)

    @cached_property
    def size(self) -> tuple[int, int]:
        """(H, W) of the first frame."""
        image = open_image(self.frame_paths[0])
        return image.height, image.width

    def image(self, index: int) -> np.ndarray:
        image = read_rgb(self.frame_paths[index])
        if image.shape[:2] != self.size:
            raise DataError(f"{self.kind} {self.name}: frame {self.frame_paths[index].name} is {image.shape[1]}x{image.shape[0]}, "
                            f"the first frame is {self.size[1]}x{self.size[0]}")
        return image

    def labels(self, index: int) -> np.ndarray:
        path = self.annotation_paths.get(index)
        if path is None:
            raise DataError(f"{self.kind} {self.name}: frame {self.frame_paths[index].name} has no annotation")
        labels = read_labels(path, self.layout)
        if labels.shape != self.size:
            raise DataError(f"{self.kind} {self.name}: annotation {path.name} is {labels.shape[1]}x{labels.shape[0]}, "
                            f"the frames are {self.size[1]}x{self.size[0]}")
        return labels
