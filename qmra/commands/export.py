"""``qmra export``: a run's masks and frames as a COCO, YouTube-VIS or DAVIS dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qmra import __version__
from qmra.commands.common import every_nth, progress_style


def category(text: str) -> tuple[int, str]:
    """``ID=NAME`` → (object id, category name)."""
    object_id, equals, name = text.partition("=")
    if not equals or not object_id.strip().isdigit() or int(object_id) < 1 or not name.strip():
        raise argparse.ArgumentTypeError(f"expected OBJECT_ID=NAME with an id of 1 or more (1=dog), got {text!r}")
    return int(object_id), name.strip()


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export", help="write a run's masks with their frames as a COCO, YouTube-VIS or DAVIS dataset",
        description="Write the frames that have masks as images (DATASET/images/<video>/<frame>.jpg) and the "
                    "masks as one annotation file (DATASET/annotations.json, compressed RLE, boxes, areas): COCO "
                    "instance segmentation with the CocoVID video fields (each object one instance_id across its "
                    "frames), or YouTube-VIS (each object one annotation per video); or DAVIS's layout "
                    "(DATASET/JPEGImages/480p/<video>/ and a palette PNG per frame in DATASET/Annotations/480p/<video>/).")
    parser.add_argument("results", help="a qmra batch output folder (its index.jsonl names each video), or the --out "
                                        "folder of qmra segment (then name its input with --video)")
    parser.add_argument("--out", required=True, metavar="DATASET", help="folder for the images and annotations")
    parser.add_argument("--video", metavar="SOURCE", help="the video file or frame folder qmra segment segmented "
                                                         "(only for a qmra segment folder)")
    parser.add_argument("--format", choices=("coco", "youtube-vis", "davis"), default="coco",
                        help="coco: an annotation per object and frame (image models, detectors, qmra train); "
                             "youtube-vis: one per object and video (video instance segmentation); davis: a palette "
                             "PNG per frame (video object segmentation code, qmra eval --davis); default: coco")
    parser.add_argument("--every", metavar="N", type=every_nth, default=1,
                        help="export only every N-th frame with masks of each video, from its first (a sample of a "
                             "run that segmented every frame)")
    parser.add_argument("--category", action="append", type=category, default=[], metavar="ID=NAME",
                        help="the category name of object ID (repeatable; in a batch, for that id in every video); "
                             "objects not named are 'object'")
    parser.add_argument("--image-format", choices=("jpg", "png"), default="jpg",
                        help="jpg (quality 95, full-resolution colour; the default) or png (lossless, larger)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export already in DATASET (its annotation file and images)")
    parser.add_argument("--quiet", action="store_true", help="no progress and no line per video")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.errors import QmraError
    from qmra.export import FORMATS, export_videos, find_results

    names: dict[int, str] = {}
    for object_id, name in args.category:
        if names.get(object_id, name) != name:
            raise QmraError(f"--category gives object {object_id} two names: {names[object_id]} and {name}")
        names[object_id] = name
    out = Path(args.out)
    found = find_results(Path(args.results), None if args.video is None else Path(args.video))
    for line in found.skipped:
        print(f"qmra: warning: {line}", file=sys.stderr)
    document = FORMATS[args.format](names, description=f"qmra {__version__} export of {args.results}")

    def say(video) -> None:
        if not args.quiet:
            print(f"{video.id}: {video.frames} frames, {video.objects} object{'s' if video.objects != 1 else ''}",
                  flush=True)

    export_videos(found.videos, out, document, args.image_format, args.overwrite, say, progress_style(args.quiet),
                  every=args.every)
    if not args.quiet:
        masks = f", {out}/{document.MASKS}/" if document.MASKS else ""
        print(f"wrote {out}/{document.ANNOTATIONS} ({args.format}: {document.summary()}), {out}/{document.IMAGES}/{masks}")
    return 0
