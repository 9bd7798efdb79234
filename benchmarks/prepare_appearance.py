"""Build an appearance pack for ``--data flying:PACK``: object cut-outs with alpha masks and background
photographs, from Debian's image packages and the DAVIS sequences we may train on.

    python -m benchmarks.prepare_appearance --davis ../shared/data/davis2016 \\
        --train-sequences breakdance,car-roundabout,cows,dance-twirl,drift-straight,motocross-jump,paragliding-launch,soapbox

The pack goes to ``$XDG_CACHE_HOME/qmra/appearance`` (``~/.cache/qmra/appearance``) unless ``--out``
says otherwise; it is never part of the repository, and no test needs it. Sources (``SOURCES.md`` in
the pack repeats this with counts):

- ``tuxpaint-stamps-default`` (GPL-2): stamps, many of them photographs of animals, vehicles, plants,
  food, cut out with alpha. Letters, symbols, flags and road signs are left out.
- ``openclipart-png`` (public domain): clip-art with alpha: more shapes and colours. Kept only where
  the alpha is an object (neither a full rectangle nor thin line art).
- ``plasma-workspace-wallpapers`` (GPL-2+) and ``gnome-backgrounds`` (CC-BY-SA 3.0): backgrounds.
- DAVIS 2016 (Perazzi et al., CVPR 2016), the training sequences only: each object cut out with its
  mask every few frames, and whole frames as backgrounds.

The Debian packages are fetched with ``apt-get download`` (no installation) and unpacked with
``dpkg -x`` under the cache; ``gcompris-qt-data`` was looked at and left out (its images are inside
Qt resource bundles).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from qmra.data.boxes import box_from_mask

PACKAGES = {
    "tuxpaint-stamps-default": "GPL-2",
    "openclipart-png": "public domain",
    "plasma-workspace-wallpapers": "GPL-2+",
    "gnome-backgrounds": "CC-BY-SA 3.0",
}
TUX_SKIP = ("/symbols/", "/alphabets/", "/roadsigns/", "/flags/", "_thumb", "/money/")
MAX_OBJECT_SIDE = 320
MAX_BACKGROUND_SIDE = 1024


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qmra"


def unpack(packages: list[str], cache: Path) -> dict[str, Path]:
    """Download each Debian package (no installation) and unpack it under ``cache/src``."""
    debs, src = cache / "debs", cache / "src"
    debs.mkdir(parents=True, exist_ok=True)
    roots = {}
    for package in packages:
        root = src / package
        if not (root / ".done").exists():
            if not list(debs.glob(f"{package}_*.deb")):
                subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
            deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
            (root / ".done").touch()
        roots[package] = root
    return roots


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text``: deterministic subsampling independent of file order."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 2**32


def cutout(rgba: np.ndarray, max_side: int = MAX_OBJECT_SIDE, margin: float = 0.05) -> Image.Image | None:
    """Crop an RGBA array to its alpha's box (plus a margin) and shrink it to ``max_side``."""
    box = box_from_mask(rgba[..., 3] > 127)
    if box is None:
        return None
    pad_x, pad_y = int(box.width * margin) + 1, int(box.height * margin) + 1
    y0, y1 = max(0, int(box.y0) - pad_y), min(rgba.shape[0], int(box.y1) + pad_y)
    x0, x1 = max(0, int(box.x0) - pad_x), min(rgba.shape[1], int(box.x1) + pad_x)
    image = Image.fromarray(np.ascontiguousarray(rgba[y0:y1, x0:x1]), "RGBA")
    image.thumbnail((max_side, max_side), Image.LANCZOS)
    return image


def is_object(rgba: np.ndarray, min_side: int, coverage: tuple[float, float], min_colour_std: float = 0.0) -> bool:
    """Whether the alpha looks like one object: big enough, neither a filled rectangle nor line art."""
    alpha = rgba[..., 3] > 127
    box = box_from_mask(alpha)
    if box is None:
        return False
    height, width = box.height, box.width
    if min(height, width) < min_side or max(height, width) > 12 * min(height, width):
        return False
    fill = alpha.sum() / (height * width)
    if not coverage[0] <= fill <= coverage[1]:
        return False
    return min_colour_std <= 0 or float(rgba[..., :3][alpha].std() / 255.0) >= min_colour_std


def debian_objects(roots: dict[str, Path], out: Path, openclipart_limit: int) -> dict[str, int]:
    counts = {"tuxpaint": 0, "openclipart": 0}
    tux = sorted((roots["tuxpaint-stamps-default"]).rglob("*.png"))
    for path in tux:
        if any(part in str(path) for part in TUX_SKIP):
            continue
        rgba = np.array(Image.open(path).convert("RGBA"))
        if is_object(rgba, 40, (0.12, 0.97)):
            image = cutout(rgba)
            if image is not None:
                image.save(out / f"tux-{path.parent.name}-{path.stem}.png", optimize=True)
                counts["tuxpaint"] += 1
    clipart = sorted((roots["openclipart-png"]).rglob("*.png"), key=lambda p: stable_fraction(p.name))
    for path in clipart:
        if counts["openclipart"] >= openclipart_limit:
            break
        try:
            rgba = np.array(Image.open(path).convert("RGBA"))
        except OSError:
            continue
        if is_object(rgba, 64, (0.2, 0.9), min_colour_std=0.08):
            image = cutout(rgba, max_side=256)
            if image is not None:
                image.save(out / f"clipart-{path.stem[:60]}.png", optimize=True)
                counts["openclipart"] += 1
    return counts


def debian_backgrounds(roots: dict[str, Path], out: Path) -> dict[str, int]:
    counts = {"plasma": 0, "gnome": 0}
    for folder in sorted((roots["plasma-workspace-wallpapers"] / "usr/share/wallpapers").iterdir()):
        images = sorted((folder / "contents/images").glob("*.*"), key=lambda p: p.stat().st_size)
        if images:
            save_background(Image.open(images[-1]), out / f"plasma-{folder.name}.jpg")
            counts["plasma"] += 1
    for path in sorted((roots["gnome-backgrounds"] / "usr/share/backgrounds").rglob("*")):
        if path.suffix.lower() in (".webp", ".jpg", ".png"):
            save_background(Image.open(path), out / f"gnome-{path.stem}.jpg")
            counts["gnome"] += 1
    return counts


def save_background(image: Image.Image, path: Path) -> None:
    image = image.convert("RGB")
    image.thumbnail((MAX_BACKGROUND_SIDE, MAX_BACKGROUND_SIDE), Image.LANCZOS)
    image.save(path, quality=90)


def davis_sources(davis: Path, sequences: list[str], objects: Path, backgrounds: Path, object_step: int,
                  background_step: int) -> dict[str, int]:
    counts = {"davis_objects": 0, "davis_backgrounds": 0}
    for name in sequences:
        frames = sorted((davis / "JPEGImages/480p" / name).glob("*.jpg"))
        if not frames:
            raise SystemExit(f"no frames for DAVIS sequence {name!r} under {davis}")
        for index, frame in enumerate(frames):
            if index % object_step == 0:
                rgb = np.array(Image.open(frame).convert("RGB"))
                mask = np.array(Image.open(davis / "Annotations/480p" / name / f"{frame.stem}.png").convert("L")) > 127
                if mask.sum() >= 400:
                    image = cutout(np.dstack([rgb, mask.astype(np.uint8) * 255]))
                    if image is not None:
                        image.save(objects / f"davis-{name}-{frame.stem}.png", optimize=True)
                        counts["davis_objects"] += 1
            if index % background_step == 0:
                save_background(Image.open(frame), backgrounds / f"davis-{name}-{frame.stem}.jpg")
                counts["davis_backgrounds"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=cache_root() / "appearance", help="the pack folder")
    parser.add_argument("--cache", type=Path, default=cache_root(), help="where Debian packages are downloaded and unpacked")
    parser.add_argument("--davis", type=Path, help="a DAVIS folder whose training sequences add objects and backgrounds")
    parser.add_argument("--train-sequences", default="", help="comma-separated DAVIS sequences we may train on")
    parser.add_argument("--openclipart", type=int, default=1200, help="at most this many clip-art cut-outs")
    parser.add_argument("--davis-object-step", type=int, default=3, help="cut the DAVIS object out of every N-th frame")
    parser.add_argument("--davis-background-step", type=int, default=6, help="every N-th DAVIS frame is a background")
    args = parser.parse_args()
    objects, backgrounds = args.out / "objects", args.out / "backgrounds"
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty: remove it to rebuild the pack")
    objects.mkdir(parents=True)
    backgrounds.mkdir(parents=True)
    roots = unpack(list(PACKAGES), args.cache)
    counts = debian_objects(roots, objects, args.openclipart)
    counts.update(debian_backgrounds(roots, backgrounds))
    sequences = [s for s in args.train_sequences.split(",") if s]
    if sequences:
        if args.davis is None:
            raise SystemExit("--train-sequences needs --davis")
        counts.update(davis_sources(args.davis, sequences, objects, backgrounds, args.davis_object_step, args.davis_background_step))
    manifest = {"counts": counts, "licences": PACKAGES, "davis_sequences": sequences}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    lines = ["# qmra appearance pack", "", "Built by `benchmarks/prepare_appearance.py`. Counts:", ""]
    lines += [f"- {key}: {value}" for key, value in counts.items()]
    lines += ["", "Licences of the Debian sources:", ""] + [f"- {k}: {v}" for k, v in PACKAGES.items()]
    if sequences:
        lines += ["", f"DAVIS 2016 (Perazzi et al., CVPR 2016), training sequences: {', '.join(sequences)}"]
    (args.out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
