"""DAVIS 2016 / 2017 in the official layout.

    ROOT/JPEGImages/<res>/<sequence>/00000.jpg ...
    ROOT/Annotations/<res>/<sequence>/00000.png ...   (2016: greyscale 0/255; 2017: palette ids 1..K)
    ROOT/ImageSets/<year>/<split>.txt                (optional: sequence names, one per line)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np

from qmra.data.frames import IMAGE_SUFFIXES, list_files
from qmra.data.masks import MaskLayout, open_image, read_labels, read_rgb
from qmra.errors import DataError


class DavisSequence:
    """One sequence: frames and annotations listed at once, read lazily, checked to match."""

    def __init__(self, name: str, frames_dir: Path, annotations_dir: Path, layout: MaskLayout) -> None:
        self.name = name
        self.frames_dir = frames_dir
        self.annotations_dir = annotations_dir
        if not frames_dir.is_dir():
            raise DataError(f"sequence {name}: frame folder not found: {frames_dir}")
        if not annotations_dir.is_dir():
            raise DataError(f"sequence {name}: annotation folder not found: {annotations_dir}")
        self.frame_paths = list_files(frames_dir, IMAGE_SUFFIXES)
        if not self.frame_paths:
            raise DataError(f"sequence {name}: no frames in {frames_dir}")
        annotation_paths = list_files(annotations_dir, (".png",))
        if not annotation_paths:
            raise DataError(f"sequence {name}: no annotations in {annotations_dir}")
        index_of = {p.stem: i for i, p in enumerate(self.frame_paths)}
        orphans = [p.name for p in annotation_paths if p.stem not in index_of]
        if orphans:
            raise DataError(f"sequence {name}: annotations without a frame: {', '.join(orphans[:5])}")
        self.annotation_paths = {index_of[p.stem]: p for p in annotation_paths}
        if layout == "auto":
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

    @cached_property
    def object_ids(self) -> list[int]:
        """Ids in the first annotated frame (DAVIS gives every object there)."""
        labels = self.labels(self.annotated_indices[0])
        return [int(i) for i in np.unique(labels) if i != 0]

    def image(self, index: int) -> np.ndarray:
        image = read_rgb(self.frame_paths[index])
        if image.shape[:2] != self.size:
            raise DataError(f"sequence {self.name}: frame {self.frame_paths[index].name} is {image.shape[1]}x{image.shape[0]}, "
                            f"the first frame is {self.size[1]}x{self.size[0]}")
        return image

    def labels(self, index: int) -> np.ndarray:
        path = self.annotation_paths.get(index)
        if path is None:
            raise DataError(f"sequence {self.name}: frame {self.frame_paths[index].name} has no annotation")
        labels = read_labels(path, self.layout)
        if labels.shape != self.size:
            raise DataError(f"sequence {self.name}: annotation {path.name} is {labels.shape[1]}x{labels.shape[0]}, "
                            f"the frames are {self.size[1]}x{self.size[0]}")
        return labels


class DavisDataset:
    """The sequences of a DAVIS root, all of them, a named split, or a given list.

    ``year``: 2016 (greyscale 0/255 masks) or 2017 (palette ids); None detects it from the masks.
    ``split``: e.g. ``"val"`` reads ``ImageSets/<year>/val.txt``.
    """

    def __init__(self, root: str | Path, resolution: str = "480p", year: Literal[2016, 2017] | None = None,
                 split: str | None = None, sequences: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        self.frames_root = self.root / "JPEGImages" / resolution
        self.annotations_root = self.root / "Annotations" / resolution
        for folder in (self.frames_root, self.annotations_root):
            if not folder.is_dir():
                raise DataError(f"not a DAVIS folder: {folder} is missing (expected JPEGImages/{resolution} and Annotations/{resolution})")
        self.layout: MaskLayout = {2016: "binary", 2017: "palette", None: "auto"}[year]
        available = sorted(p.name for p in self.frames_root.iterdir() if p.is_dir())
        if sequences is not None:
            names = list(sequences)
        elif split is not None:
            names = self._read_split(split, year)
        else:
            names = available
        unknown = [n for n in names if n not in available]
        if unknown:
            raise DataError(f"unknown DAVIS sequence(s) in {self.root}: {', '.join(unknown[:5])}")
        if not names:
            raise DataError(f"no sequences in {self.frames_root}")
        self.names = names

    def _read_split(self, split: str, year: int | None) -> list[str]:
        years = [str(year)] if year else ["2017", "2016"]
        for y in years:
            path = self.root / "ImageSets" / y / f"{split}.txt"
            if path.is_file():
                return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        raise DataError(f"no split file ImageSets/{'|'.join(years)}/{split}.txt in {self.root}")

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[DavisSequence]:
        return (self.sequence(name) for name in self.names)

    def sequence(self, name: str) -> DavisSequence:
        if name not in self.names:
            raise DataError(f"sequence {name} is not in this DAVIS selection")
        return DavisSequence(name, self.frames_root / name, self.annotations_root / name, self.layout)
