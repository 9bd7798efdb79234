"""The real clip that travels to a remote GPU machine for benchmarks/agreement.py: the first frames of one
DAVIS training sequence (frames and masks, files copied as they are) in the DAVIS layout.

    python -m benchmarks.agreement_clip --davis ../shared/data/davis2016 --out .device-data/agree
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, required=True)
    parser.add_argument("--sequence", default="breakdance", help="a training sequence (default: breakdance)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for kind, suffix in (("JPEGImages", ".jpg"), ("Annotations", ".png")):
        source = args.davis / kind / "480p" / args.sequence
        files = sorted(source.glob(f"*{suffix}"))[: args.frames]
        if not files:
            parser.error(f"no {suffix} files in {source}")
        target = args.out / kind / "480p" / args.sequence
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copyfile(file, target / file.name)
    print(f"{args.out}: {args.sequence}, {len(files)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
