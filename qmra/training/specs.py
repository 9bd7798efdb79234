"""``--data`` / ``--val`` specs → clip datasets.

    synthetic[:N]                      N procedural videos (default 64)
    davis:PATH[:seq1,seq2 | :-seq1,seq2]   video clips from a DAVIS folder (a list to use, or to hold out)
    davis-static:PATH[:...]            the paper's simulated clips (TPS views) from DAVIS frames
    composite:PATH[:...]               DAVIS objects moved over other DAVIS frames (not in the paper)
    flying:PACK[:LOW-HIGH]             cut-outs flying over photographs (qmra.data.flying; not in the paper),
                                       the target's box LOW-HIGH of the frame (default 0.05-0.8)
    youtube-vos:PATH                   video clips from a YouTube-VOS split folder
    images:PATH                        static clips from an image–mask folder (DUTS, HKU-IS, MSRA, ECSSD)
    coco:ANNOTATIONS.json:IMAGES       static clips from COCO instances (or coco:FOLDER: a folder holding
                                       annotations.json and images/, as qmra export writes)
    cocovid:FOLDER                     video clips from COCO instances with videos (CocoVID: qmra export's
                                       default; or cocovid:ANNOTATIONS.json:IMAGES)
    youtube-vis:ANNOTATIONS.json:IMAGES   video clips from a YouTube-VIS file (YouTube-VIS, OVIS; or
                                       youtube-vis:FOLDER, as qmra export --format youtube-vis writes)

Each may end with ``@WEIGHT`` (default 1): how often it is drawn relative to the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from qmra.data import (ClipSettings, CocoInstances, CompositeClipDataset, DavisDataset, ImageMaskFolder, SequenceFrames,
                       StaticClipDataset, SyntheticConfig, SyntheticVideo, VideoClipDataset, YouTubeVOSDataset)
from qmra.data.coco_videos import CocoVideo, coco_videos, dataset_paths, youtube_vis_videos
from qmra.data.flying import FlyingObjectsClipDataset, FlyingSettings, open_pack, parse_box_area
from qmra.data.sequence import VideoSequence
from qmra.errors import QmraError

KINDS = ("synthetic", "davis", "davis-static", "composite", "flying", "youtube-vos", "images", "coco", "cocovid",
         "youtube-vis")
VIRTUAL_LENGTH = 1_000_000_000  # clips are drawn by index; the trainer never exhausts a source


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: str | None
    selection: str | None  # sequences (DAVIS), count (synthetic), or the image folder (COCO, CocoVID)
    weight: float
    text: str

    @classmethod
    def parse(cls, text: str) -> "DataSpec":
        body, weight = text, 1.0
        if "@" in text:
            body, _, weight_text = text.rpartition("@")
            try:
                weight = float(weight_text)
            except ValueError:
                raise QmraError(f"data spec {text!r}: the weight after @ must be a number") from None
            if not weight > 0:
                raise QmraError(f"data spec {text!r}: the weight must be positive")
        kind, _, rest = body.partition(":")
        if kind not in KINDS:
            raise QmraError(f"data spec {text!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        if kind == "synthetic":
            if rest and not rest.isdigit():
                raise QmraError(f"data spec {text!r}: synthetic takes a number of videos, e.g. synthetic:64")
            return cls(kind, None, rest or None, weight, text)
        if not rest:
            raise QmraError(f"data spec {text!r}: {kind} needs a path, e.g. {kind}:PATH")
        path, _, selection = rest.partition(":")
        if kind in ("coco", "cocovid", "youtube-vis") and not selection and path.lower().endswith(".json"):
            raise QmraError(f"data spec {text!r}: {kind} needs {kind}:ANNOTATIONS.json:IMAGE_FOLDER, or {kind}:FOLDER "
                            "for a folder holding annotations.json and images/ (as qmra export writes)")
        spec = cls(kind, path, selection or None, weight, text)
        if kind == "flying":
            spec.flying_settings()  # a bad box area is refused here, before any data is read
        return spec

    def flying_settings(self) -> FlyingSettings:
        """A ``flying`` spec's settings: the target's box area as a fraction of the frame, from
        ``:LOW-HIGH`` (the default's without it)."""
        if not self.selection:
            return FlyingSettings()
        try:
            return FlyingSettings(box_area=parse_box_area(self.selection))
        except ValueError as error:
            raise QmraError(f"data spec {self.text!r}: {error}") from None

    def davis(self) -> DavisDataset:
        """The DAVIS sequences this spec names (all, a list, or all but a list after '-')."""
        davis = DavisDataset(self.path)  # type: ignore[arg-type]
        if not self.selection:
            return davis
        if self.selection.startswith("-"):
            held_out = {s for s in self.selection[1:].split(",") if s}
            unknown = sorted(held_out - set(davis.names))
            if unknown:
                raise QmraError(f"data spec {self.text!r}: unknown sequence(s) to hold out: {', '.join(unknown)}")
            return DavisDataset(self.path, sequences=[n for n in davis.names if n not in held_out])  # type: ignore[arg-type]
        return DavisDataset(self.path, sequences=[s for s in self.selection.split(",") if s])  # type: ignore[arg-type]

    def synthetic_videos(self, seed: int, height: int = 240, width: int = 320, frames: int = 40) -> list[SyntheticVideo]:
        count = int(self.selection or 64)
        return [SyntheticVideo(SyntheticConfig(height, width, frames, num_objects=1 + (i % 3), num_distractors=1 + (i % 2),
                                               seed=seed * 100_003 + i), name=f"synthetic-{seed}-{i}") for i in range(count)]

    def videos(self, seed: int) -> list[VideoSequence]:
        """The whole videos behind this spec (its training videos for synthetic, given the same seed);
        none for image sources."""
        if self.kind == "synthetic":
            return list(self.synthetic_videos(seed))
        if self.kind in ("davis", "davis-static", "composite"):
            return list(self.davis())
        if self.kind == "youtube-vos":
            return list(YouTubeVOSDataset(self.path))  # type: ignore[arg-type]
        if self.kind in ("cocovid", "youtube-vis"):
            return self.annotated_videos()
        return []

    def annotated_videos(self) -> list[CocoVideo]:
        """The videos a ``cocovid`` or ``youtube-vis`` spec's annotation file lists."""
        read = coco_videos if self.kind == "cocovid" else youtube_vis_videos
        return read(*dataset_paths(self.path, self.selection))  # type: ignore[arg-type]

    def build(self, settings: ClipSettings, seed: int) -> Dataset:
        """The clip dataset of this spec."""
        kind = self.kind
        if kind == "synthetic":
            return VideoClipDataset(self.synthetic_videos(seed), VIRTUAL_LENGTH, settings, seed)
        if kind in ("davis", "davis-static", "composite"):
            sequences = list(self.davis())
            if kind == "davis":
                return VideoClipDataset(sequences, VIRTUAL_LENGTH, settings, seed)
            frames = SequenceFrames(sequences)
            if kind == "davis-static":
                return StaticClipDataset(frames, VIRTUAL_LENGTH, settings, seed)
            return CompositeClipDataset(frames, frames, VIRTUAL_LENGTH, settings, seed)
        if kind == "flying":
            objects, backgrounds = open_pack(self.path)  # type: ignore[arg-type]
            return FlyingObjectsClipDataset(objects, backgrounds, VIRTUAL_LENGTH, settings, seed, self.flying_settings())
        if kind == "youtube-vos":
            return VideoClipDataset(list(YouTubeVOSDataset(self.path)), VIRTUAL_LENGTH, settings, seed)  # type: ignore[arg-type]
        if kind == "images":
            return StaticClipDataset(ImageMaskFolder(self.path), VIRTUAL_LENGTH, settings, seed)
        if kind in ("cocovid", "youtube-vis"):
            return VideoClipDataset(self.annotated_videos(), VIRTUAL_LENGTH, settings, seed)
        return StaticClipDataset(CocoInstances(*dataset_paths(self.path, self.selection)), VIRTUAL_LENGTH, settings, seed)  # type: ignore[arg-type]
