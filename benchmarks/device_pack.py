"""A compact copy of the training data for a remote GPU machine with a small upload limit (e.g. 64 MiB with the checkout).

    python -m benchmarks.device_pack --appearance ~/.cache/qmra/appearance --davis ../shared/data/davis2016 \\
        --sequences breakdance,car-roundabout,cows,dance-twirl,drift-straight,motocross-jump,paragliding-launch,soapbox \\
        --out .device-data

Cut-outs become lossy WebP with alpha (a fifth of the PNG size), backgrounds and DAVIS frames JPEG at
``--quality``; DAVIS frames and masks may be scaled down (``--davis-scale``; masks nearest). The layout is the one the data specs read:
``OUT/appearance/{objects,backgrounds}`` for ``flying:``, ``OUT/davis/{JPEGImages,Annotations}/480p``
for ``davis:``, ``davis-static:`` and ``composite:``. Keep OUT out of git (``.git/info/exclude``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appearance", type=Path, required=True)
    parser.add_argument("--davis", type=Path, required=True)
    parser.add_argument("--sequences", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--max-background-side", type=int, default=768)
    parser.add_argument("--davis-scale", type=float, default=1.0, help="scale DAVIS frames and masks by this factor")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    objects, backgrounds = args.out / "appearance/objects", args.out / "appearance/backgrounds"
    objects.mkdir(parents=True)
    backgrounds.mkdir(parents=True)
    for path in sorted((args.appearance / "objects").glob("*.png")):
        Image.open(path).save(objects / f"{path.stem}.webp", quality=args.quality, method=4)
    for path in sorted((args.appearance / "backgrounds").glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        image.thumbnail((args.max_background_side, args.max_background_side), Image.LANCZOS)
        image.save(backgrounds / path.name, quality=args.quality)
    for name in [s for s in args.sequences.split(",") if s]:
        frames_out = args.out / "davis/JPEGImages/480p" / name
        frames_out.mkdir(parents=True)
        masks_out = args.out / "davis/Annotations/480p" / name
        masks_out.mkdir(parents=True)
        for frame in sorted((args.davis / "JPEGImages/480p" / name).glob("*.jpg")):
            image = Image.open(frame)
            mask = Image.open(args.davis / "Annotations/480p" / name / f"{frame.stem}.png")
            if args.davis_scale != 1.0:
                size = (round(image.width * args.davis_scale), round(image.height * args.davis_scale))
                image, mask = image.resize(size, Image.LANCZOS), mask.resize(size, Image.NEAREST)
            image.save(frames_out / frame.name, quality=args.quality)
            mask.save(masks_out / f"{frame.stem}.png")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
