"""Copies of DAVIS sequences under a change of look that real cameras make: how much each costs the
weights (docs/results-history.md, "Greyscale video"; greyscale itself: ``benchmarks.reencode --grey``).

Changes: ``dark`` (every value × 0.3 and Gaussian noise of 3 levels: an underexposed night scene),
``q20`` (JPEG quality 20), ``sepia`` (the usual sepia matrix: a tinted old film), ``thermal`` (luma
through a black-purple-red-orange-yellow-white palette: a thermal camera's false colour),
``everyN`` (every N-th frame and its mask kept, renumbered: a time-lapse or a slow camera). Frames
are saved as JPEG (quality 90, except ``q20``).

    .venv/bin/python -m benchmarks.look_changes --davis ../shared/data/davis2016 \\
        --sequences goat,parkour,scooter-black --change sepia --out runs/val-sepia
    .venv/bin/qmra eval --davis runs/val-sepia --out runs/val-sepia/eval
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data import DavisDataset

CHANGES = ("dark", "q20", "sepia", "thermal", "everyN")
SEPIA = np.array([[0.393, 0.349, 0.272], [0.769, 0.686, 0.534], [0.189, 0.168, 0.131]], np.float32)
THERMAL = np.array([[0, 0, 0], [40, 0, 110], [160, 20, 120], [230, 90, 20], [255, 200, 40], [255, 255, 230]], np.float32)


def changed(image: np.ndarray, change: str, rng: np.random.Generator) -> np.ndarray:
    """An H×W×3 uint8 frame with ``change`` applied (``q20`` and ``everyN`` leave the pixels alone)."""
    pixels = image.astype(np.float32)
    if change == "dark":
        pixels = pixels * 0.3 + rng.normal(0, 3, image.shape[:2] + (1,))
    elif change == "sepia":
        pixels = pixels @ SEPIA
    elif change == "thermal":
        luma = pixels @ np.array([0.299, 0.587, 0.114], np.float32) / 255 * (len(THERMAL) - 1)
        low = np.clip(luma.astype(int), 0, len(THERMAL) - 2)
        share = (luma - low)[..., None]
        pixels = THERMAL[low] * (1 - share) + THERMAL[low + 1] * share
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def changed_copy(davis: DavisDataset, change: str, root: Path, seed: int = 0) -> DavisDataset:
    """``davis``'s sequences under ``root`` in the same layout, with ``change`` (see the module)."""
    every = re.fullmatch(r"every([1-9][0-9]*)", change)
    step = int(every.group(1)) if every else 1
    if not every and change not in CHANGES:
        raise ValueError(f"unknown change {change!r}: one of {', '.join(CHANGES)} (everyN: every3, every6, ...)")
    rng = np.random.default_rng(seed)
    resolution = davis.frames_root.name
    for name in davis.names:
        frames, masks = root / "JPEGImages" / resolution / name, root / "Annotations" / resolution / name
        shutil.rmtree(frames, ignore_errors=True)
        shutil.rmtree(masks, ignore_errors=True)
        frames.mkdir(parents=True)
        masks.mkdir(parents=True)
        for number, source in enumerate(sorted((davis.frames_root / name).glob("*.jpg"))[::step]):
            with Image.open(source) as image:
                pixels = changed(np.asarray(image.convert("RGB")), "none" if every else change, rng)
            Image.fromarray(pixels).save(frames / f"{number:05d}.jpg", quality=20 if change == "q20" else 90)
            label = davis.annotations_root / name / f"{source.stem}.png"
            if label.is_file():
                shutil.copy(label, masks / f"{number:05d}.png")
    return DavisDataset(root, resolution=resolution, sequences=list(davis.names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", required=True, help="a DAVIS root")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    parser.add_argument("--change", required=True, help=f"one of {', '.join(CHANGES)} (everyN: every3, every6, ...)")
    parser.add_argument("--out", required=True, type=Path, help="the copy's root")
    args = parser.parse_args()
    names = [s for s in args.sequences.split(",") if s] or None
    copy = changed_copy(DavisDataset(args.davis, sequences=names), args.change, args.out)
    print(f"wrote {len(copy.names)} sequence(s) with the change {args.change} under {args.out}")


if __name__ == "__main__":
    main()
