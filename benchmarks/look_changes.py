"""Copies of DAVIS sequences under a change of look that real cameras make: how much each costs the
weights (docs/results-history.md, "Greyscale video"; greyscale itself: ``benchmarks.reencode --grey``).

Changes: ``dark`` (every value × 0.3 and Gaussian noise of 3 levels: an underexposed night scene),
``q20`` (JPEG quality 20), ``sepia`` (the usual sepia matrix: a tinted old film), ``thermal`` (luma
through a black-purple-red-orange-yellow-white palette: a thermal camera's false colour),
``blurS`` (a Gaussian blur of S pixels: a soft focus, or a video scaled up from a smaller one),
``everyN`` (every N-th frame and its mask kept, renumbered: a time-lapse or a slow camera), and
through a phone's HDR video (HEVC, 10 bits, BT.2020, reference white as BT.2408 has it): ``hlg`` and
``pq`` read as stored (the signal shown as SDR, flat and pale: how qmra read them before it
tone-mapped HDR), ``hlg-read`` and ``pq-read`` read by qmra, and ``hevc-read``, the same video
in SDR (BT.709): what the compression alone costs; through an interlaced camera's H.264
(:func:`interlaced_video`): ``interlaced`` read as stored, ``interlaced-read`` read by qmra. Frames are saved as JPEG (quality 90,
except ``q20``).

    .venv/bin/python -m benchmarks.look_changes --davis ../shared/data/davis2016 \\
        --sequences goat,parkour,scooter-black --change sepia --out runs/val-sepia
    .venv/bin/qmra eval --davis runs/val-sepia --out runs/val-sepia/eval
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageFilter

from qmra.data import DavisDataset
from qmra.data.frames import open_frames
from qmra.data.hdr import hdr_signal

CHANGES = ("dark", "q20", "sepia", "thermal", "blurS", "everyN")
VIDEO_CHANGES = {"hlg": "HLG", "pq": "PQ", "hlg-read": "HLG", "pq-read": "PQ", "hevc-read": "SDR",
                 "interlaced": "interlaced", "interlaced-read": "interlaced"}
#: FFmpeg's tags (matrix and primaries, transfer) of the videos :func:`hevc_video` writes.
COLOUR_TAGS = {"HLG": (9, 18), "PQ": (9, 16), "SDR": (1, 1)}
SEPIA = np.array([[0.393, 0.349, 0.272], [0.769, 0.686, 0.534], [0.189, 0.168, 0.131]], np.float32)
THERMAL = np.array([[0, 0, 0], [40, 0, 110], [160, 20, 120], [230, 90, 20], [255, 200, 40], [255, 255, 230]], np.float32)


def changed(image: np.ndarray, change: str, rng: np.random.Generator) -> np.ndarray:
    """An H×W×3 uint8 frame with ``change`` applied (``q20`` and ``everyN`` leave the pixels alone)."""
    blur = re.fullmatch(r"blur([0-9]+(?:\.[0-9]+)?)", change)
    if blur:
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(blur.group(1)))))
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


def hevc_video(path: Path, frames: Sequence[np.ndarray], transfer: str, quality: int = 18) -> Path:
    """H×W×3 uint8 sRGB frames (even sides: 4:2:0) as a phone films them: an HEVC mp4 at ``path``, 10
    bits, in HDR (``transfer`` "HLG" or "PQ": that signal in BT.2020) or SDR ("SDR": BT.709), tagged."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx265", rate=25, options={"x265-params": "log-level=error", "crf": str(quality)})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p10le"
        context = stream.codec_context
        space, trc = COLOUR_TAGS[transfer]
        context.colorspace, context.color_primaries, context.color_trc = space, space, trc
        context.color_range = 1  # limited, as cameras record
        for index, rgb in enumerate(frames):
            signal = (hdr_signal(rgb / 255, transfer) if transfer != "SDR" else rgb / 255) * 65535
            frame = av.VideoFrame.from_ndarray(signal.round().astype(np.uint16), format="rgb48le")
            frame = frame.reformat(format="yuv420p10le", dst_colorspace=space, dst_color_range=1)
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def interlaced_video(path: Path, frames: Sequence[np.ndarray], quality: int = 18) -> Path:
    """H×W×3 uint8 frames as an interlaced camera films them: an H.264 mp4 at ``path`` coded as
    interlaced (top field first), each frame's bottom field (odd rows) taken from the next frame.
    Fields a frame apart: combs about twice as wide as 50i or 60i video's, from 24-30 fps frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1", "crf": str(quality)})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for index, rgb in enumerate(frames):
            woven = rgb.copy()
            woven[1::2] = frames[min(index + 1, len(frames) - 1)][1::2]
            frame = av.VideoFrame.from_ndarray(woven, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def through_video(frames: list[np.ndarray], change: str, folder: Path) -> Iterator[np.ndarray]:
    """``frames`` filmed as a phone's or an interlaced camera's video (:func:`hevc_video`,
    :func:`interlaced_video`), then read as stored or by qmra (changes ending in ``-read``)."""
    kind = VIDEO_CHANGES[change]
    path = interlaced_video(folder / "v.mp4", frames) if kind == "interlaced" else hevc_video(folder / "v.mp4", frames, kind)
    if change.endswith("-read"):
        yield from open_frames(path)
        return
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def changed_copy(davis: DavisDataset, change: str, root: Path, seed: int = 0) -> DavisDataset:
    """``davis``'s sequences under ``root`` in the same layout, with ``change`` (see the module)."""
    every = re.fullmatch(r"every([1-9][0-9]*)", change)
    step = int(every.group(1)) if every else 1
    if not every and change not in CHANGES + tuple(VIDEO_CHANGES) and not re.fullmatch(r"blur[0-9.]+", change):
        names = ", ".join(CHANGES + tuple(VIDEO_CHANGES))
        raise ValueError(f"unknown change {change!r}: one of {names} (blurS: blur2, blur1.5; everyN: every3, ...)")
    rng = np.random.default_rng(seed)
    resolution = davis.frames_root.name
    for name in davis.names:
        frames, masks = root / "JPEGImages" / resolution / name, root / "Annotations" / resolution / name
        shutil.rmtree(frames, ignore_errors=True)
        shutil.rmtree(masks, ignore_errors=True)
        frames.mkdir(parents=True)
        masks.mkdir(parents=True)
        sources = sorted((davis.frames_root / name).glob("*.jpg"))[::step]
        originals = [np.asarray(Image.open(source).convert("RGB")) for source in sources]
        with tempfile.TemporaryDirectory() as folder:
            if change in VIDEO_CHANGES:
                looks = list(through_video(originals, change, Path(folder)))
            else:
                looks = [changed(pixels, "none" if every else change, rng) for pixels in originals]
        for number, (source, pixels) in enumerate(zip(sources, looks, strict=True)):
            Image.fromarray(pixels).save(frames / f"{number:05d}.jpg", quality=20 if change == "q20" else 90)
            label = davis.annotations_root / name / f"{source.stem}.png"
            if label.is_file():
                shutil.copy(label, masks / f"{number:05d}.png")
    return DavisDataset(root, resolution=resolution, sequences=list(davis.names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", required=True, help="a DAVIS root")
    parser.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    names = ", ".join(CHANGES + tuple(VIDEO_CHANGES))
    parser.add_argument("--change", required=True, help=f"one of {names} (blurS: blur2, blur1.5; everyN: every3, ...)")
    parser.add_argument("--out", required=True, type=Path, help="the copy's root")
    args = parser.parse_args()
    names = [s for s in args.sequences.split(",") if s] or None
    copy = changed_copy(DavisDataset(args.davis, sequences=names), args.change, args.out)
    print(f"wrote {len(copy.names)} sequence(s) with the change {args.change} under {args.out}")


if __name__ == "__main__":
    main()
