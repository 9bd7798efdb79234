"""What many tests share: the tiny network they run (random weights: fast on a CPU, the real code
paths), a small YouTube-VOS split on disk, and a way to make objects go missing on chosen frames."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from qmra.data import SyntheticConfig, SyntheticVideo, write_palette_png
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import save_checkpoint

TINY = ModelConfig(backbone="resnet18", key_channels=16, value_channels=32, decoder_channels=16)


class Clock:
    """A clock for progress displays that moves only when a test sets ``now`` (seconds)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def no_masks_on(monkeypatch, frames) -> None:
    """Every frame in ``frames`` comes out of the network with no object's mask (as if none was found),
    whatever the random weights would give: patches the merge every predicted frame goes through."""
    import dataclasses

    import numpy as np

    from qmra.inference import predict

    merge = predict.merge_frame

    def merged(index, *args, **kwargs):
        result = merge(index, *args, **kwargs)
        return dataclasses.replace(result, labels=np.zeros_like(result.labels)) if index in frames else result

    monkeypatch.setattr(predict, "merge_frame", merged)


def tiny_checkpoint(path: str | Path, metadata: dict | None = None) -> Path:
    """A qmra checkpoint of :data:`TINY` with random weights at ``path``."""
    return save_checkpoint(path, QMRA(TINY), metadata=metadata)


def exported_video(root: Path, video: SyntheticVideo, indices: list[int], name: str = "shot",
                   annotations: str = "coco") -> Path:
    """``qmra export`` of ``video``'s frames (PNG files in ``root/name``) with its true masks on
    ``indices`` (as if segmented with ``--every``), in the ``annotations`` format (``coco`` or
    ``youtube-vis``): the dataset folder, ``root/ds-<name>``."""
    from qmra.cli import main

    (root / name).mkdir(parents=True)
    (root / f"{name}-masks").mkdir()
    for index in range(video.config.num_frames):
        Image.fromarray(video.image(index)).save(root / name / f"{index:05d}.png")
        if index in indices:
            write_palette_png(root / f"{name}-masks" / f"{index:05d}.png", video.labels(index))
    assert main(["export", str(root / f"{name}-masks"), "--video", str(root / name), "--out", str(root / f"ds-{name}"),
                 "--image-format", "png", "--format", annotations, "--quiet"]) == 0
    return root / f"ds-{name}"


def write_youtube_vos_split(root: Path, height: int = 48, width: int = 64) -> Path:
    """A YouTube-VOS split folder at ``root``: one video ``v1`` of 4 frames named every 5th
    (00000, 00005, ...), object 1 annotated on 00000 and object 2 appearing on 00010."""
    video = SyntheticVideo(SyntheticConfig(height=height, width=width, num_frames=4, num_objects=2, seed=4))
    (root / "JPEGImages" / "v1").mkdir(parents=True)
    for index in range(4):
        Image.fromarray(video.image(index)).save(root / "JPEGImages" / "v1" / f"{index * 5:05d}.jpg")
    first = video.labels(0).copy()
    first[first == 2] = 0
    write_palette_png(root / "Annotations" / "v1" / "00000.png", first)
    later = video.labels(2).copy()
    later[later == 1] = 0
    write_palette_png(root / "Annotations" / "v1" / "00010.png", later)
    meta = {"videos": {"v1": {"objects": {"1": {"frames": ["00000", "00005"]}, "2": {"frames": ["00010", "00015"]}}}}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root
