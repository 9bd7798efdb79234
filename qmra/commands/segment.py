"""``qmra segment``: boxes in, masks for every frame out."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from qmra.commands.common import (BACKWARDS_HELP, EVERY_HELP, add_model_arguments, add_redaction_arguments, every_nth,
                                  make_segmenter, progress_style, redaction, say_hdr, say_threads, say_working_size)
from qmra.data.boxes import BOX_FORMATS
from qmra.errors import BoxError, QmraError
from qmra.inference.mask_prompts import prompts_from_masks
from qmra.inference.prompt_files import (CornersOutOfOrder, check_boxes_in_range, check_boxes_on_every, parse_frame_range,
                                         parse_prompts)
from qmra.inference.prompts import Prompt, check_prompt_masks
from qmra.inference.settings import InferenceSettings
from qmra.interrupt import Terminated, exit_code, terminate_interrupts

#: ``--fail-on-lost``: the exit code when an object is lost at the end of the video.
EXIT_LOST = 3


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment the boxed objects in every frame of a video")
    given = parser.add_argument_group("input and output")
    given.add_argument("source", help="a video file (mp4, mov, webm, mkv, avi, mpg, ts, gif, ...), a multi-page TIFF (a "
                                      "microscope's or ImageJ's stack: a frame a page), a folder of frames (jpg, png, tif, "
                                      "...), or - for a video piped to standard input (a camera's stream through ffmpeg "
                                      "... -f matroska -)")
    given.add_argument("--out", required=True, help="folder for the DAVIS palette PNGs (named after the frames)")
    given.add_argument("--overlay", metavar="FILE.mp4", help="also write an H.264 overlay video")
    given.add_argument("--rle", metavar="FILE.json", help="also write the masks as COCO RLE")
    given.add_argument("--per-object", action="store_true", help="also write one binary PNG per object: OUT/<id>/<frame>.png")
    given.add_argument("--tracks", metavar="FILE.csv",
                       help="also write each object's box and state per frame as CSV: frame, name, object, x0, y0, x1, "
                            "y1 (the mask's tight box, pixels; empty when lost), area, confidence, lost, doubts (the "
                            "signs the mask went wrong)")
    given.add_argument("--cutout", metavar="FILE.webm|FILE.mov",
                       help="also write the objects cut out on a transparent background, at the frames' size: .webm "
                            "(VP9 with transparency: plays in browsers) or .mov (ProRes 4444 with transparency: for "
                            "video editors)")
    given.add_argument("--redact", metavar="FILE.mp4",
                       help="also write the video with the objects hidden (H.264): blurred, pixelated or blacked out "
                            "(--redact-style); an object whose mask comes back empty stays hidden where it was last "
                            "seen for a second, and the summary names the frames to check")
    add_redaction_arguments(given)
    given.add_argument("--frames", metavar="FIRST-LAST", type=frame_range, default=(0, None),
                       help="segment only frames FIRST to LAST (0-based, both included; FIRST- runs to the end): --box "
                            "boxes are on FIRST, --boxes frames count from the video's start; objects boxed before "
                            "FIRST are followed from their box and written from FIRST on")
    given.add_argument("--every", metavar="N", type=every_nth, default=1, help=EVERY_HELP)
    existing = given.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the results already in OUT (its PNGs, and the overlay, RLE, cut-out and "
                               "redacted files named here)")
    existing.add_argument("--resume", action="store_true",
                          help="continue an interrupted run (same arguments): the frames already in OUT are recomputed "
                               "to rebuild the memory but not rewritten, the rest are written; the overlay, RLE, "
                               "cut-out and redacted video cover every frame")
    given.add_argument("--fail-on-lost", action="store_true",
                       help=f"exit with code {EXIT_LOST} when an object is lost at the end (its mask empty from some frame "
                            "to the last); lost objects are always reported on stderr")
    given.add_argument("--fail-on-doubt", action="store_true",
                       help=f"exit with code {EXIT_LOST} when an object's mask is doubtful on some frame (its confidence "
                            "fades or it jumps: qmra.inference.quality); doubtful masks are always reported")
    given.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    given.add_argument("--verbose", action="store_true",
                       help="also say the size the network sees the frames at, and how many CPU threads it uses, and why")
    _add_prompt_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(handler=run)


def _add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """The prompts group: boxes, a boxes file or masks, and how they are read."""
    boxes = parser.add_argument_group("prompts")
    prompts = boxes.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--box", action="append", metavar="X0,Y0,X1,Y1",
                         help="a box on the first frame, in pixels (see --box-format); repeat for more objects (ids 1, "
                              "2, ...)")
    prompts.add_argument("--boxes", metavar="FILE.json",
                         help='a JSON list of {"id": 1, "frame": 0, "box": [x0, y0, x1, y1]}, for objects that start later '
                              '(or "mask": "PATH.png" instead of "box": a mask, relative to the file, as --masks reads one); '
                              'a later entry for an object corrects it from its frame on')
    prompts.add_argument("--masks", metavar="MASK.png|DIR|RLE.json",
                         help="objects' masks instead of boxes: a PNG at the frames' size (palette indices or greyscale "
                              "values are object ids; 0/255: object 1), a folder of them named after their frames "
                              "(DAVIS's Annotations/<video>/), or COCO RLE in JSON (qmra segment --rle's file, or a list "
                              "of RLE masks on the first frame, objects 1, 2, ..., as SAM's coco_rle output); "
                              "each object starts on the first mask that holds it, from "
                              "the tight box of its pixels, and that mask is its result there (the network, box-prompted, "
                              "learns the shape only in adaptation: --adapt with --adapt-mask-weight). A PNG not named "
                              "after a frame is on the first frame")
    boxes.add_argument("--backwards", action="store_true", help=BACKWARDS_HELP)
    boxes.add_argument("--box-format", choices=BOX_FORMATS, default="xyxy",
                       help="how --box and --boxes give a box: xyxy = corners X0,Y0,X1,Y1 (default); xywh = top-left "
                            "corner and size X,Y,W,H, as COCO and many tools export them")


def frame_range(text: str) -> tuple[int, int | None]:
    """``--frames``: 'FIRST-LAST', 'FIRST-' or '-LAST' → (first, last or None), 0-based, both included."""
    try:
        return parse_frame_range(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    from qmra.data import open_frames
    from qmra.data.redaction import Redaction
    from qmra.inference.video_run import OutputPlan, VideoRun, finished_text

    first, last = args.frames
    prompts = _read_prompts(args, first)
    check_boxes_in_range(prompts, first, last, "--frames")  # before anything is loaded or replaced
    check_boxes_on_every(prompts, first, args.every)
    source = open_frames(args.source)
    check_prompt_masks(prompts, source.info.width, source.info.height)
    overlay, rle, cutout, redact, tracks = (Path(p) if p else None
                                            for p in (args.overlay, args.rle, args.cutout, args.redact, args.tracks))
    plan = OutputPlan(Path(args.out), overlay, rle, args.per_object, cutout, redact, redaction(args) or Redaction(), tracks)
    plan.check(overwrite=args.overwrite, resume=args.resume)  # before the weights load
    keep = plan.finished(source, first, args.every) if args.resume else 0
    segmenter = make_segmenter(args, progress_style(args.quiet))
    name = "stdin" if args.source == "-" else Path(args.source).stem
    video = VideoRun(segmenter, source, prompts, plan, video_name=name, keep=keep,
                     warn=lambda line: print(f"qmra: warning: {line}", file=sys.stderr), backwards=args.backwards,
                     first=first, last=last, overwrite=args.overwrite, every=args.every)
    if args.verbose:
        say_working_size(segmenter, source.info.width, source.info.height)
        say_hdr(source.info)
        say_threads(segmenter)
    _say_resuming(first, keep, args.every, plan.out_dir, args.quiet)
    _say_skipping(source, first, min(p.frame for p in prompts), args.quiet)
    try:
        with terminate_interrupts():
            video.run()
    except KeyboardInterrupt as interruption:  # Ctrl-C or SIGTERM: the files are closed
        print(f"qmra: {'terminated' if isinstance(interruption, Terminated) else 'interrupted'}; "
              f"{finished_text(video.frames_finished, plan.out_dir)} (--resume continues)", file=sys.stderr)
        return exit_code(interruption)
    except QmraError as error:  # a truncated video, a prompt past its end: say what was kept
        if not video.started:
            raise
        raise QmraError(f"{error}; {finished_text(video.frames_finished, plan.out_dir)}") from None
    objects = len({prompt.object_id for prompt in prompts})
    if not args.quiet:
        resumed = f" ({keep} of them were already there)" if keep else ""
        print(f"segmented {objects} object(s) in {video.frames_written} frames{resumed} at "
              f"{video.frames_written / max(video.seconds, 1e-9):.2f} frames/s on {segmenter.device}"
              f"{adaptation_summary(video.adaptations)}; {video.lost.summary(objects)}; "
              f"{video.doubtful.summary()}; wrote {plan.describe()}")
        for line in video.earlier.summary():
            print(line)
    say_redaction(video.redaction_report, plan.redact, args.quiet)
    if video.lost.lost_at_end:
        print(f"qmra: warning: {video.lost.summary(objects)}{_reseed_hint(video.adaptations, segmenter.settings)}",
              file=sys.stderr)
    if (args.fail_on_lost and video.lost.lost_at_end) or (args.fail_on_doubt and video.doubtful.frames):
        return EXIT_LOST
    return 0


def _read_prompts(args: argparse.Namespace, first: int) -> list[Prompt]:
    """The prompts given (``--box``, ``--boxes`` or ``--masks``), those "on the first frame" on
    ``first``, the first frame of the run."""
    from qmra.data import open_frames

    masks = prompts_from_masks(args.masks) if args.masks else None
    try:
        prompts = masks.prompts if masks else parse_prompts(args.box, args.boxes, args.box_format)
    except CornersOutOfOrder as error:
        info = open_frames(args.source).info  # a video that cannot be read says so instead
        raise BoxError(f"{error}{error.hint(info.width, info.height)}") from None
    if args.box or (masks and masks.on_first_frame):
        prompts = [replace(prompt, frame=first) for prompt in prompts]
    return prompts


def say_redaction(report, path: Path | None, quiet: bool) -> None:
    """After a run with ``--redact``: the frames where an object was hidden only where it was last
    seen, or not at all, which a person should look at before the video is shared (warnings, even
    with ``quiet``)."""
    if report is None or path is None:
        return
    lines = report.lines()
    if not lines and not quiet:
        print(f"{path}: every object hidden on every frame from its box on")
    for line in lines:
        print(f"qmra: warning: {path}: {line}; look at those frames before sharing it", file=sys.stderr)


def _say_resuming(first: int, keep: int, every: int, out_dir: Path, quiet: bool) -> None:
    if keep and not quiet:
        last = first + (keep - 1) * every
        print(f"qmra: resuming: frames {first}-{last}{f' (one in {every})' if every > 1 else ''} are already in "
              f"{out_dir}; they are recomputed to rebuild the memory, not rewritten", file=sys.stderr)


def _say_skipping(source, first: int, earliest_box: int, quiet: bool) -> None:
    """Before a range that starts late in a video file: the wait before its first frame is reading."""
    from qmra.data import VideoFile

    start = min(first, earliest_box)
    if start and isinstance(source, VideoFile) and not quiet:
        print(f"qmra: reading {source.path.name} up to frame {start}", file=sys.stderr)


def _reseed_hint(adaptations: dict, settings: InferenceSettings) -> str:
    """After a loss, when adaptation ran: its random views decide much of the result
    (docs/results-history.md), so another seed is the cheapest thing to try. '' without adaptation."""
    if not adaptations:
        return ""
    return (f"; adaptation draws random views and its seed changes the result: another --adapt-seed "
            f"(e.g. {settings.adapt_seed + 1}) may keep the object")


def adaptation_summary(adaptations: dict) -> str:
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
