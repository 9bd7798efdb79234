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

from qmra.data.masks import MaskLayout
from qmra.data.sequence import FolderSequence
from qmra.errors import DataError


class DavisSequence(FolderSequence):
    """One DAVIS sequence: frames and annotations listed at once, read lazily, checked to match."""

    kind = "sequence"

    @cached_property
    def object_ids(self) -> list[int]:
        """Ids in the first annotated frame (DAVIS gives every object there)."""
        labels = self.labels(self.annotated_indices[0])
        return [int(i) for i in np.unique(labels) if i != 0]


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
