"""``qmra segment``: boxes in, masks for every frame out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from qmra.commands.common import add_speed_arguments, show_progress, speed_settings
from qmra.data.boxes import Box
from qmra.errors import BoxError, QmraError


@dataclass(frozen=True)
class BoxPrompt:
    object_id: int
    frame: int
    box: Box


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment the boxed objects in every frame of a video")
    parser.add_argument("source", help="a video file (mp4, mov, webm, mkv) or a folder of frames")
    prompts = parser.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--box", action="append", metavar="X0,Y0,X1,Y1",
                         help="a box on the first frame, in pixels; repeat for more objects (ids 1, 2, ...)")
    prompts.add_argument("--boxes", metavar="FILE.json",
                         help='a JSON list of {"id": 1, "frame": 0, "box": [x0, y0, x1, y1]}, for objects that start later')
    parser.add_argument("--out", required=True, help="folder for the DAVIS palette PNGs (named after the frames)")
    add_model_arguments(parser)
    parser.add_argument("--overlay", metavar="FILE.mp4", help="also write an H.264 overlay video")
    parser.add_argument("--rle", metavar="FILE.json", help="also write the masks as COCO RLE")
    parser.add_argument("--per-object", action="store_true", help="also write one binary PNG per object: OUT/<id>/<frame>.png")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace results already in OUT")
    existing.add_argument("--resume", action="store_true",
                          help="continue an interrupted run (same arguments): the frames already in OUT are recomputed "
                               "to rebuild the memory but not rewritten, the rest are written; the overlay and RLE "
                               "cover every frame")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    parser.set_defaults(handler=run)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="FILE", help="a qmra checkpoint (.safetensors); default: the weights qmra ships")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    add_speed_arguments(parser)


def make_segmenter(args: argparse.Namespace, progress: bool):
    import warnings

    from qmra.inference import InferenceSettings, Segmenter
    from qmra.inference.segmenter import DEFAULT_WEIGHTS, recommended_settings
    from qmra.model.checkpoint import read_checkpoint_config
    from qmra.presets import get_preset

    base = get_preset(args.preset).settings if args.preset else InferenceSettings()
    weights = args.weights or (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None)
    if weights is not None and not args.preset:
        base = recommended_settings(read_checkpoint_config(weights)[1], base)
    settings = speed_settings(args, base)
    if args.weights:
        return Segmenter.from_checkpoint(args.weights, args.device, settings, progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said below, loudly, instead
        segmenter = Segmenter(device=args.device, settings=settings, progress=progress)
    if segmenter.random_weights:
        print("WARNING: qmra has no trained weights yet and none were given (--weights): the network runs with RANDOM\n"
              "         weights, so the masks are meaningless.", file=sys.stderr)
    return segmenter


def parse_prompts(boxes: list[str] | None, boxes_file: str | None) -> list[BoxPrompt]:
    if boxes:
        return [BoxPrompt(index, 0, _box(text, f"--box {text}")) for index, text in enumerate(boxes, start=1)]
    path = Path(boxes_file or "")
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise QmraError(f"boxes file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise QmraError(f"cannot read boxes file {path}: {error}") from None
    if not isinstance(document, list) or not document:
        raise QmraError(f"{path}: expected a non-empty JSON list of {{\"id\", \"frame\", \"box\"}} objects")
    prompts: list[BoxPrompt] = []
    for number, entry in enumerate(document, start=1):
        where = f"{path} entry {number}"
        if not isinstance(entry, dict) or "id" not in entry or "box" not in entry:
            raise QmraError(f"{where}: expected an object with \"id\", \"box\" and optionally \"frame\"")
        object_id, frame = entry["id"], entry.get("frame", 0)
        if isinstance(object_id, bool) or not isinstance(object_id, int) or not 1 <= object_id <= 255:
            raise QmraError(f"{where}: object id must be an integer 1..255, got {object_id!r}")
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise QmraError(f"{where}: frame must be an integer >= 0, got {frame!r}")
        if any(p.object_id == object_id for p in prompts):
            raise QmraError(f"{where}: object id {object_id} is given twice")
        try:
            box = Box.from_sequence(entry["box"])
        except BoxError as error:
            raise QmraError(f"{where}: {error}") from None
        prompts.append(BoxPrompt(object_id, frame, box))
    return prompts


def _box(text: str, where: str) -> Box:
    try:
        return Box.parse(text)
    except BoxError as error:
        raise QmraError(f"{where}: {error}") from None


def run(args: argparse.Namespace) -> int:
    from qmra.data import open_frames
    from qmra.inference.outputs import ResultWriter, check_outputs, finished_frames

    prompts = parse_prompts(args.box, args.boxes)
    source = open_frames(args.source)
    out_dir = Path(args.out)
    overlay, rle = (Path(p) if p else None for p in (args.overlay, args.rle))
    check_outputs(out_dir, overlay, rle, overwrite=args.overwrite, resume=args.resume)  # before the weights load
    keep = finished_frames(out_dir, source) if args.resume else 0
    progress = show_progress(args.quiet)
    segmenter = make_segmenter(args, progress)
    session = segmenter.start(source)
    for prompt in prompts:
        session.add_box(prompt.object_id, prompt.box, prompt.frame)
    if keep and not args.quiet:
        print(f"qmra: resuming: frames 0-{keep - 1} are already in {out_dir}; they are recomputed to rebuild the memory, "
              "not rewritten", file=sys.stderr)
    info = source.info
    writer = ResultWriter(out_dir, height=info.height, width=info.width, fps=info.fps, video_name=Path(args.source).stem,
                          per_object=args.per_object, overlay=overlay, rle=rle, keep=keep)
    start = time.perf_counter()
    try:
        for _, result in session.propagate():
            writer.write(result)
    except KeyboardInterrupt:
        writer.close()
        print(f"qmra: interrupted; {_finished(writer.frames_finished, out_dir)} (--resume continues)", file=sys.stderr)
        return 130
    except QmraError as error:  # a truncated video, a prompt past its end: say what was kept
        writer.close()
        raise QmraError(f"{error}; {_finished(writer.frames_finished, out_dir)}") from None
    except BaseException:
        writer.close()  # keep what finished: complete PNGs, a playable overlay, a valid RLE file
        raise
    writer.close()
    seconds = time.perf_counter() - start
    if not args.quiet:
        outputs = [f"{out_dir}/ (palette PNGs{', per-object PNGs' if args.per_object else ''})"]
        outputs += [str(p) for p in (overlay, rle) if p]
        adapted = session.adaptation
        adaptation = f" (after adapting to the first frame: {adapted.steps} steps, {adapted.seconds:.1f} s)" if adapted else ""
        resumed = f" ({keep} of them were already there)" if keep else ""
        print(f"segmented {len(prompts)} object(s) in {writer.frames_written} frames{resumed} at "
              f"{writer.frames_written / seconds:.2f} frames/s on {segmenter.device}{adaptation}; wrote {', '.join(outputs)}")
    return 0


def _finished(count: int, out_dir: Path) -> str:
    """What an interrupted or failed run leaves, for its last message."""
    if count == 0:
        return f"no frame was finished in {out_dir}"
    return f"the {count} finished frame{'s' if count != 1 else ''} {'are' if count != 1 else 'is'} in {out_dir}"
