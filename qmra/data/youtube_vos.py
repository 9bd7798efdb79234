"""YouTube-VOS: sparse annotations (every 5th frame) and objects that appear mid-video.

    ROOT/JPEGImages/<video>/00000.jpg ...
    ROOT/Annotations/<video>/00000.png ...   palette ids; only some frames
    ROOT/meta.json                            {"videos": {<video>: {"objects": {"1": {"frames": [...]}}}}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from qmra.data.sequence import FolderSequence
from qmra.errors import DataError


class YouTubeVOSVideo(FolderSequence):
    """One video. ``first_frames[id]`` is the index of the frame where each object first appears."""

    kind = "video"

    def __init__(self, name: str, frames_dir: Path, annotations_dir: Path, objects: dict[str, dict]) -> None:
        super().__init__(name, frames_dir, annotations_dir, "palette", annotations_required=False)
        self.first_frames: dict[int, int] = {}
        for key, info in objects.items():
            try:
                object_id = int(key)
            except ValueError:
                raise DataError(f"video {name}: object id {key!r} in meta.json is not a number") from None
            frames = [f for f in info.get("frames", []) if f in self.index_of]
            if not frames:
                raise DataError(f"video {name}: object {object_id} has no frame that exists in {frames_dir}")
            self.first_frames[object_id] = min(self.index_of[f] for f in frames)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.first_frames)


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
