"""``qmra segment``: boxes in, masks for every frame out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from qmra.commands.common import add_model_arguments, make_segmenter, progress_style, say_threads
from qmra.data.boxes import BOX_FORMATS, Box
from qmra.errors import BoxError, QmraError
from qmra.inference.prompts import Prompt
from qmra.inference.settings import InferenceSettings

#: ``--fail-on-lost``: the exit code when an object is lost at the end of the video.
EXIT_LOST = 3


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment the boxed objects in every frame of a video")
    given = parser.add_argument_group("input and output")
    given.add_argument("source", help="a video file (mp4, mov, webm, mkv) or a folder of frames")
    given.add_argument("--out", required=True, help="folder for the DAVIS palette PNGs (named after the frames)")
    given.add_argument("--overlay", metavar="FILE.mp4", help="also write an H.264 overlay video")
    given.add_argument("--rle", metavar="FILE.json", help="also write the masks as COCO RLE")
    given.add_argument("--per-object", action="store_true", help="also write one binary PNG per object: OUT/<id>/<frame>.png")
    existing = given.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace results already in OUT")
    existing.add_argument("--resume", action="store_true",
                          help="continue an interrupted run (same arguments): the frames already in OUT are recomputed "
                               "to rebuild the memory but not rewritten, the rest are written; the overlay and RLE "
                               "cover every frame")
    given.add_argument("--fail-on-lost", action="store_true",
                       help=f"exit with code {EXIT_LOST} when an object is lost at the end (its mask empty from some frame "
                            "to the last); lost objects are always reported on stderr")
    given.add_argument("--fail-on-doubt", action="store_true",
                       help=f"exit with code {EXIT_LOST} when an object's mask is doubtful on some frame (it fills its box, "
                            "fades or jumps: qmra.inference.quality); doubtful masks are always reported")
    given.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    given.add_argument("--verbose", action="store_true", help="also say how many CPU threads the network uses, and why")
    boxes = parser.add_argument_group("prompts")
    prompts = boxes.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--box", action="append", metavar="X0,Y0,X1,Y1",
                         help="a box on the first frame, in pixels (see --box-format); repeat for more objects (ids 1, "
                              "2, ...)")
    prompts.add_argument("--boxes", metavar="FILE.json",
                         help='a JSON list of {"id": 1, "frame": 0, "box": [x0, y0, x1, y1]}, for objects that start later')
    boxes.add_argument("--box-format", choices=BOX_FORMATS, default="xyxy",
                       help="how --box and --boxes give a box: xyxy = corners X0,Y0,X1,Y1 (default); xywh = top-left "
                            "corner and size X,Y,W,H, as COCO and many tools export them")
    add_model_arguments(parser)
    parser.set_defaults(handler=run)


def parse_prompts(boxes: list[str] | None, boxes_file: str | None, box_format: str = "xyxy") -> list[Prompt]:
    """``--box`` texts (objects 1, 2, ... on frame 0) or a ``--boxes`` JSON file → prompts; four
    numbers per box in ``box_format`` (xyxy or xywh)."""
    if boxes:
        return [_prompt(index, 0, text, box_format, f"--box {text}") for index, text in enumerate(boxes, start=1)]
    path = Path(boxes_file or "")
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise QmraError(f"boxes file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise QmraError(f"cannot read boxes file {path}: {error}") from None
    if not isinstance(document, list) or not document:
        raise QmraError(f"{path}: expected a non-empty JSON list of {{\"id\", \"frame\", \"box\"}} objects")
    prompts: list[Prompt] = []
    for number, entry in enumerate(document, start=1):
        where = f"{path} entry {number}"
        if not isinstance(entry, dict) or "id" not in entry or "box" not in entry:
            raise QmraError(f"{where}: expected an object with \"id\", \"box\" and optionally \"frame\"")
        prompt = _prompt(entry["id"], entry.get("frame", 0), entry["box"], box_format, where)
        if any(p.object_id == prompt.object_id for p in prompts):
            raise QmraError(f"{where}: object id {prompt.object_id} is given twice")
        prompts.append(prompt)
    return prompts


class CornersOutOfOrder(BoxError):
    """A box whose corners are out of order (x1 <= x0 or y1 <= y0): often x,y,w,h given as corners."""

    def __init__(self, message: str, values: tuple[float, ...]) -> None:
        super().__init__(message)
        self.values = values

    def hint(self, width: int, height: int) -> str:
        """The advice, where the four numbers read as x, y, width, height fit a ``width`` × ``height`` frame."""
        x, y, w, h = self.values
        if w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height:
            return "; if these are x,y,width,height, add --box-format xywh"
        return ""


def _prompt(object_id: object, frame: object, box: object, box_format: str, where: str) -> Prompt:
    """One prompt, its errors prefixed with where it came from."""
    try:
        parsed = Box.parse(box, box_format) if isinstance(box, str) else Box.from_values(box, box_format)
        return Prompt(object_id, frame, parsed)  # type: ignore[arg-type]
    except QmraError as error:
        values = _four_numbers(box)
        if box_format == "xyxy" and values is not None and (values[2] <= values[0] or values[3] <= values[1]):
            raise CornersOutOfOrder(f"{where}: {error}", values) from None
        raise QmraError(f"{where}: {error}") from None


def _four_numbers(box: object) -> tuple[float, ...] | None:
    parts = box.split(",") if isinstance(box, str) else box
    try:
        values = tuple(float(v) for v in parts)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return values if len(values) == 4 else None


def warn_if_clipped(prompt: Prompt, width: int, height: int) -> None:
    """One line on stderr when a box reaches outside the frame (the session clips it)."""
    try:
        used = prompt.box.clip(width, height)
    except QmraError as error:  # wholly outside: the session's error says so
        raise QmraError(f"object {prompt.object_id}: {error}") from None
    if used != prompt.box:
        print(f"qmra: warning: object {prompt.object_id}'s box {prompt.box.format()} reaches outside the {width}x{height} "
              f"frame; clipped to {used.format()}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from qmra.data import open_frames
    from qmra.inference.lost import LostObjects
    from qmra.inference.outputs import ResultWriter, check_outputs, finished_frames
    from qmra.inference.quality import DoubtfulObjects

    try:
        prompts = parse_prompts(args.box, args.boxes, args.box_format)
    except CornersOutOfOrder as error:
        info = open_frames(args.source).info  # a video that cannot be read says so instead
        raise BoxError(f"{error}{error.hint(info.width, info.height)}") from None
    source = open_frames(args.source)
    out_dir = Path(args.out)
    overlay, rle = (Path(p) if p else None for p in (args.overlay, args.rle))
    check_outputs(out_dir, overlay, rle, overwrite=args.overwrite, resume=args.resume)  # before the weights load
    keep = finished_frames(out_dir, source) if args.resume else 0
    progress = progress_style(args.quiet)
    segmenter = make_segmenter(args, progress)
    for prompt in prompts:
        warn_if_clipped(prompt, source.info.width, source.info.height)
    session = segmenter.start(source, prompts=prompts)
    if args.verbose:
        say_threads(segmenter)
    _say_resuming(keep, out_dir, args.quiet)
    info = source.info
    writer = ResultWriter(out_dir, height=info.height, width=info.width, fps=info.fps, video_name=Path(args.source).stem,
                          per_object=args.per_object, overlay=overlay, rle=rle, keep=keep)
    start = time.perf_counter()
    lost, doubtful = LostObjects(), DoubtfulObjects()
    try:
        for _, result in session.propagate():
            writer.write(result)
            _warn(result, lost, doubtful, bool(session.adaptations))
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
        adaptation = _adaptation_summary(session.adaptations)
        resumed = f" ({keep} of them were already there)" if keep else ""
        print(f"segmented {len(prompts)} object(s) in {writer.frames_written} frames{resumed} at "
              f"{writer.frames_written / seconds:.2f} frames/s on {segmenter.device}{adaptation}; {lost.summary(len(prompts))}; "
              f"{doubtful.summary()}; wrote {', '.join(outputs)}")
    if lost.lost_at_end:
        print(f"qmra: warning: {lost.summary(len(prompts))}{_reseed_hint(session.adaptations, segmenter.settings)}",
              file=sys.stderr)
    if (args.fail_on_lost and lost.lost_at_end) or (args.fail_on_doubt and doubtful.frames):
        return EXIT_LOST
    return 0


def _say_resuming(keep: int, out_dir: Path, quiet: bool) -> None:
    if keep and not quiet:
        print(f"qmra: resuming: frames 0-{keep - 1} are already in {out_dir}; they are recomputed to rebuild the memory, "
              "not rewritten", file=sys.stderr)


def _warn(result, lost, doubtful, adapted: bool) -> None:
    """One line on stderr for each object lost on this frame, and each whose mask became doubtful."""
    from qmra.inference.quality import warning

    for object_id in lost.update(result):
        print(f"qmra: warning: object {object_id} is lost on frame {result.index} ({result.name}): its mask is empty",
              file=sys.stderr)
    for object_id, signals in doubtful.update(result):
        print(f"qmra: warning: {warning(object_id, result, signals, adapted)}", file=sys.stderr)


def _reseed_hint(adaptations: dict, settings: InferenceSettings) -> str:
    """After a loss, when adaptation ran: its random views decide much of the result
    (docs/results-history.md), so another seed is the cheapest thing to try. '' without adaptation."""
    if not adaptations:
        return ""
    return (f"; adaptation draws random views and its seed changes the result: another --adapt-seed "
            f"(e.g. {settings.adapt_seed + 1}) may keep the object")


def _adaptation_summary(adaptations: dict) -> str:
    """What test-time adaptation cost, for the last line: '' when none ran."""
    if not adaptations:
        return ""
    first = next(iter(adaptations.values()))
    steps = first.steps if first.copies == 1 else f"{first.copies} adaptations × {first.steps}"
    seconds = sum(report.seconds for report in adaptations.values())
    if len(adaptations) == 1:
        return f" (after adapting to the first frame: {steps} steps, {seconds:.1f} s)"
    frames = ", ".join(map(str, sorted(adaptations)))
    return f" (after adapting to frames {frames}, where objects start: {steps} steps each, {seconds:.1f} s in all)"


def _finished(count: int, out_dir: Path) -> str:
    """What an interrupted or failed run leaves, for its last message."""
    if count == 0:
        return f"no frame was finished in {out_dir}"
    return f"the {count} finished frame{'s' if count != 1 else ''} {'are' if count != 1 else 'is'} in {out_dir}"
