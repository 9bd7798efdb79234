"""``qmra eval``: official DAVIS scores for predictions, or for qmra itself under the box protocol."""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from qmra.commands.common import add_model_arguments, make_segmenter, progress_style
from qmra.errors import QmraError
from qmra.evaluation.box_noise import BoxNoise
from qmra.options import add_options, declared_options, flag_of, from_options


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval", help="score predictions against DAVIS (official J, F, CSVs), or run qmra under the box protocol first")
    dataset = parser.add_mutually_exclusive_group(required=True)
    dataset.add_argument("--davis", metavar="ROOT", help="a DAVIS 2016 or 2017 root (JPEGImages/480p, Annotations/480p)")
    dataset.add_argument("--youtube-vos", metavar="ROOT", help="a YouTube-VOS split folder (valid/): writes a submission")
    parser.add_argument("--results", metavar="DIR", help="existing predictions DIR/<sequence>/<frame>.png to score")
    parser.add_argument("--out", metavar="DIR", help="run qmra and write its predictions (and the scores) here")
    parser.add_argument("--sequences", help="comma-separated names (default: all)")
    add_options(parser, BoxNoise)
    add_model_arguments(parser)
    parser.add_argument("--processes", type=int, default=2, help="scoring processes (default 2)")
    parser.add_argument("--exact-decay", action="store_true",
                        help="do not reproduce the official toolkit's uint8 wrap of decay bins past 256 frames")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace predictions already in --out")
    existing.add_argument("--resume", action="store_true",
                          help="continue an interrupted --out run (same arguments): complete sequences are skipped, a "
                               "partial one resumes (its finished frames are recomputed, not rewritten)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.evaluation.davis_eval import LOST_J, evaluate_davis, select_sequences, write_speed
    from qmra.inference.outputs import check_folder

    if args.results and args.out:
        raise QmraError("give --results (score existing predictions) or --out (run qmra first), not both")
    if not args.results and not args.out:
        raise QmraError("give --results DIR to score predictions, or --out DIR to run qmra and score it")
    if args.processes < 1:
        raise QmraError("--processes must be at least 1")
    if args.resume and not args.out:
        raise QmraError("--resume continues a run of qmra: it goes with --out DIR")
    noise = from_options(args, BoxNoise)
    box_flags = [flag_of(f, o) for f, o in declared_options(BoxNoise) if hasattr(args, f.name)]
    if args.results and box_flags:
        raise QmraError(f"{box_flags[0]} sets the prompts qmra is given: it goes with --out DIR (running qmra), not --results")
    if args.out:
        check_folder(Path(args.out), "--out")  # before the dataset is read and the weights load
    sequences = [s for s in (args.sequences or "").split(",") if s] or None
    if args.youtube_vos:
        return _youtube_vos(args, sequences, noise)
    davis = select_sequences(args.davis, sequences)
    if args.results:
        results_dir = Path(args.results)
    else:
        results_dir = Path(args.out)
        clashes = [n for n in davis.names if (results_dir / n).is_dir() and any((results_dir / n).glob("*.png"))]
        if clashes and not (args.overwrite or args.resume):
            raise QmraError(f"{results_dir / clashes[0]} already holds predictions (use --overwrite to replace them, or "
                            "--resume to continue)")
        if args.resume:
            _check_same_boxes(results_dir, noise)
        segmenter = make_segmenter(args, progress_style(args.quiet))
        from qmra.evaluation.protocol import predict_davis

        print(f"predicting {len(davis)} sequence(s) under the {noise.protocol} protocol ({noise.describe()}) into "
              f"{results_dir}/ ...", flush=True)
        speed = predict_davis(segmenter, davis, results_dir, resume=args.resume, noise=noise)
        _report_skipped(speed.get("skipped_sequences", []), results_dir)
        _report_greyscale(speed.get("greyscale_adapted", []), segmenter.settings.grey_adapt_steps)
        if speed["frames"]:
            write_speed(results_dir, speed)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True):
        result = evaluate_davis(davis, results_dir, processes=args.processes, official_decay=not args.exact_decay)
    seconds = time.perf_counter() - started
    global_csv, sequence_csv = result.write_csvs(results_dir)
    for note in result.notes:
        print(f"note: {note}")
    print(result.table())
    lost = result.lost_objects()
    print(f"lost: {len(lost) or 'none'} of {len(result.objects)} object(s) (mean J under {LOST_J:g} over the last quarter of "
          f"their frames){': ' + _listed(lost) if lost else ''}")
    if result.speed:
        print(f"speed: {result.speed['model_fps']:.2f} frames/s for the model, {result.speed['end_to_end_fps']:.2f} "
              f"end to end with I/O ({result.speed.get('device', '?')})")
    print(f"scored {len(result.objects)} object(s) in {len(davis)} sequence(s) in {seconds:.1f} s; wrote {global_csv} "
          f"and {sequence_csv}")
    return 0


def _youtube_vos(args: argparse.Namespace, sequences, noise: BoxNoise) -> int:
    from qmra.data import YouTubeVOSDataset
    from qmra.evaluation.protocol import predict_youtube_vos
    from qmra.inference.outputs import check_folder

    if not args.out:
        raise QmraError("YouTube-VOS has no public validation masks: give --out DIR to write a submission")
    dataset = YouTubeVOSDataset(args.youtube_vos, sequences)
    annotations = Path(args.out) / "Annotations"
    check_folder(annotations, "--out")
    if annotations.is_dir() and any(annotations.iterdir()) and not (args.overwrite or args.resume):
        raise QmraError(f"{annotations} already holds predictions (use --overwrite to replace them, or --resume to continue)")
    segmenter = make_segmenter(args, progress_style(args.quiet))
    speed = predict_youtube_vos(segmenter, dataset, args.out, resume=args.resume, noise=noise)
    _report_greyscale(speed.get("greyscale_adapted", []), segmenter.settings.grey_adapt_steps)
    skipped = f" ({speed['skipped']} complete video(s) skipped)" if speed["skipped"] else ""
    print(f"wrote {speed['frames']} frames of {speed['videos']} video(s){skipped} to {annotations}/ at "
          f"{speed['model_fps']:.2f} frames/s; zip it for the server: (cd {args.out} && zip -r submission.zip Annotations)")
    return 0


def _check_same_boxes(results_dir: Path, noise: BoxNoise) -> None:
    """A resumed run must give the boxes the interrupted one gave (its speed record says which)."""
    from qmra.evaluation.davis_eval import SPEED_FILE

    record = results_dir / SPEED_FILE
    if not record.is_file():
        return
    before = {k: v for k, v in json.loads(record.read_text()).items() if k in BoxNoise.__dataclass_fields__}
    if before != noise.record():
        said = BoxNoise(**before).describe() if before else "tight boxes"
        raise QmraError(f"{results_dir} was predicted with {said}, not {noise.describe()}: give the same --box-* "
                        "and --first-masks options to --resume, or --overwrite")


def _listed(names: list[str]) -> str:
    """The first five names, and how many more."""
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _report_greyscale(names: list[str], steps: int) -> None:
    """Say which sequences were greyscale, so that the weights (colour only) adapted to them first."""
    if names:
        print(f"note: {len(names)} sequence(s) are greyscale, and the weights learned from colour only: the network "
              f"adapted to each one's boxed frame first ({steps} steps, --grey-adapt; 0 turns it off): "
              f"{_listed(names)}", flush=True)


def _report_skipped(skipped: list[str], results_dir: Path) -> None:
    """Say which sequences --resume found complete (their speed is not measured again)."""
    if skipped:
        print(f"skipped {len(skipped)} sequence(s) already complete in {results_dir}/: {_listed(skipped)}", flush=True)
