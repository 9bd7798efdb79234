"""Copies of DAVIS sequences with every frame re-encoded as JPEG: an imperceptible change that tells
how much a score is worth.

Each frame's mask feeds the next frame's box and memory, so whether a mask spreads onto background
that looks like the object can turn on a change nobody would see: re-encoded at quality 95 (0.4
grey levels on average) goat's J&F fell from 56.9 to 25.5 with the weights shipped on 2026-12-04.
``benchmarks.ship_default_weights --reencode`` scores validation on such copies beside the
originals, so a choice does not rest on one draw of that chance. With ``--grey`` the copies are
greyscale (ITU-R 601 luma), as infrared cameras and microscopes record: the weights' score there is
reported beside validation (``train_imagenet_weights.sh ship``).

    .venv/bin/python -m benchmarks.reencode --davis ../shared/data/davis2016 --sequences goat,parkour,scooter-black \\
        --quality 95 --out runs/val-q95
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from qmra.data import DavisDataset


def reencoded_copy(davis: DavisDataset, quality: int, root: Path, grey: bool = False) -> DavisDataset:
    """``davis``'s sequences under ``root`` in the same layout, frames re-encoded as JPEG at
    ``quality`` (1–95), in greyscale with ``grey``, masks copied as they are; a copy already complete
    there is kept."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be 1-95, got {quality}")
    resolution = davis.frames_root.name
    for name in davis.names:
        frames = root / "JPEGImages" / resolution / name
        sources = sorted((davis.frames_root / name).glob("*.jpg"))
        if not (frames.is_dir() and len(list(frames.glob("*.jpg"))) == len(sources)):
            partial = frames.with_name(name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for source in sources:
                with Image.open(source) as image:
                    image.convert("L" if grey else "RGB").save(partial / source.name, quality=quality)
            shutil.rmtree(frames, ignore_errors=True)
            partial.rename(frames)
        shutil.copytree(davis.annotations_root / name, root / "Annotations" / resolution / name, dirs_exist_ok=True)
    return DavisDataset(root, resolution=resolution, sequences=list(davis.names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", required=True, help="a DAVIS root")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the copies (1-95)")
    parser.add_argument("--grey", action="store_true", help="greyscale copies")
    parser.add_argument("--out", required=True, type=Path, help="the copy's root")
    args = parser.parse_args()
    names = [s for s in args.sequences.split(",") if s] or None
    copy = reencoded_copy(DavisDataset(args.davis, sequences=names), args.quality, args.out, args.grey)
    print(f"wrote {len(copy.names)} {'greyscale ' if args.grey else ''}sequence(s) at JPEG quality {args.quality} "
          f"under {args.out}")


if __name__ == "__main__":
    main()
