"""Held-out flying-object videos for choosing on validation: three real validation sequences are too
few to choose many settings, so validation adds videos made from cut-outs and photographs that no
training run sees.

    # split an appearance pack: ~12 % of the cut-outs and photographs (not DAVIS ones) held out
    python -m benchmarks.flying_validation split .device-small/appearance --train .flying-split/train --val .flying-split/val
    # render the held-out part as videos in the DAVIS layout (JPEGImages/480p, Annotations/480p)
    python -m benchmarks.flying_validation render .flying-split/val --out .flying-split/videos --videos 12
    # small targets (0.3-3 % of the frame) at DAVIS's frame size
    python -m benchmarks.flying_validation render .flying-split/val --out .flying-small/videos --size 480x854 \
        --box-area 0.003-0.03 --seed 20261205

The split is a pure function of the file names (a hash), so it is the same on every machine; files
are hard-linked (copied where links fail). Videos are a pure function of ``--seed``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data.clips import ClipSettings
from qmra.data.flying import FlyingObjectsClipDataset, FlyingSettings, open_pack, parse_box_area


def held_out(name: str, fraction: float) -> bool:
    """Whether a file of this name belongs to validation. DAVIS-made files stay in training: they
    come from the training sequences, which validation must not resemble."""
    if name.startswith("davis"):
        return False
    digest = hashlib.sha1(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def split(pack: Path, train: Path, val: Path, fraction: float) -> dict[str, int]:
    counts = {"train": 0, "val": 0}
    for part in ("objects", "backgrounds"):
        for path in sorted((pack / part).iterdir()):
            side = "val" if held_out(path.name, fraction) else "train"
            _link(path, (val if side == "val" else train) / part / path.name)
            counts[side] += 1
    return counts


def render(pack: Path, out: Path, videos: int, frames: int, size: tuple[int, int], seed: int,
           box_area: tuple[float, float] = (0.03, 0.5)) -> list[str]:
    """``videos`` clips of ``frames`` frames (h×w = ``size``) as DAVIS sequences ``flying-NN``; the
    target's box covers ``box_area`` (low, high) of the frame."""
    objects, backgrounds = open_pack(pack)
    settings = ClipSettings(size=size, num_frames=frames, hflip=False, colour_jitter=0.0)
    # Validation objects fly at the box sizes users draw (by default), with the same distractors and
    # occluders as training.
    dataset = FlyingObjectsClipDataset(objects, backgrounds, length=videos, settings=settings, seed=seed,
                                       flying=FlyingSettings(box_area=box_area))
    names = []
    for index in range(videos):
        clip = dataset[index]
        name = f"flying-{index:02d}"
        images = (clip["images"].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        masks = clip["masks"][:, 0].numpy() > 0.5
        image_dir, mask_dir = out / "JPEGImages" / "480p" / name, out / "Annotations" / "480p" / name
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for t in range(frames):
            Image.fromarray(images[t]).save(image_dir / f"{t:05d}.jpg", quality=92)
            Image.fromarray(np.where(masks[t], 255, 0).astype(np.uint8)).save(mask_dir / f"{t:05d}.png")
        names.append(name)
    return names


def _box_area(text: str) -> tuple[float, float]:
    try:
        return parse_box_area(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    split_parser = commands.add_parser("split")
    split_parser.add_argument("pack", type=Path)
    split_parser.add_argument("--train", type=Path, required=True)
    split_parser.add_argument("--val", type=Path, required=True)
    split_parser.add_argument("--fraction", type=float, default=0.12)
    render_parser = commands.add_parser("render")
    render_parser.add_argument("pack", type=Path)
    render_parser.add_argument("--out", type=Path, required=True)
    render_parser.add_argument("--videos", type=int, default=12)
    render_parser.add_argument("--frames", type=int, default=30)
    render_parser.add_argument("--size", default="272x480", help="HEIGHTxWIDTH")
    render_parser.add_argument("--seed", type=int, default=20261203)
    render_parser.add_argument("--box-area", type=_box_area, default=(0.03, 0.5),
                               help="LOW-HIGH: the target's box as a fraction of the frame (log-uniform; default 0.03-0.5)")
    args = parser.parse_args()
    if args.command == "split":
        print(split(args.pack, args.train, args.val, args.fraction))
    else:
        height, width = (int(v) for v in args.size.split("x"))
        print(",".join(render(args.pack, args.out, args.videos, args.frames, (height, width), args.seed, args.box_area)))


if __name__ == "__main__":
    main()
