"""``qmra batch``: many videos from a manifest, on local worker processes or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from qmra.commands.common import (BACKWARDS_HELP, EVERY_HELP, add_model_arguments, add_redaction_arguments, every_nth,
                                  progress_style, redaction, speed_settings)
from qmra.data.boxes import BOX_FORMATS
from qmra.errors import QmraError
from qmra.inference.prompt_files import check_boxes_on_every
from qmra.interrupt import exit_code, terminate_interrupts

#: Exit code when some videos failed (the others are done).
EXIT_SOME_FAILED = 1
#: Worker processes per GPU when the device is CUDA (host work of one overlaps another's network).
WORKERS_PER_GPU = 2
#: CPU cores per Ray actor on CPUs without --threads (as local workers: one core each).
CORES_PER_ACTOR = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch", help="segment many videos listed in a manifest, on worker processes or a Ray cluster",
        description="Each video's results go to OUT/<id>/, as `qmra segment` writes them; OUT/index.jsonl says how "
                    "each went. Running the same command again skips finished videos and continues partly done ones. "
                    "Exit code: 0 all done, 1 some failed, 2 bad manifest or arguments, 130 interrupted (143 on "
                    "SIGTERM), everything finished kept.")
    given = parser.add_argument_group("input and output")
    given.add_argument("manifest", help="JSON Lines ({\"video\": PATH, \"boxes\": [...], \"id\": NAME, \"box_format\": "
                                        "..., \"frames\": \"FIRST-LAST\"} a line), a JSON list of those (.json), a "
                                        "CSV with those columns, or a folder of videos (or multi-page TIFF stacks) with "
                                        "NAME.boxes.json, NAME.masks.png, NAME.masks.json or NAME.masks/ beside each; "
                                        "relative paths are from the manifest's folder")
    given.add_argument("--out", required=True, help="folder for the results: OUT/<id>/ per video, and OUT/index.jsonl")
    given.add_argument("--overlay", action="store_true", help="also write each video's H.264 overlay: OUT/<id>/overlay.mp4")
    given.add_argument("--rle", action="store_true", help="also write each video's masks as COCO RLE: OUT/<id>/masks.rle.json")
    given.add_argument("--tracks", action="store_true",
                       help="also write each object's box and state per frame as CSV: OUT/<id>/tracks.csv (qmra segment "
                            "--tracks)")
    given.add_argument("--per-object", action="store_true",
                       help="also write one binary PNG per object: OUT/<id>/<obj>/<frame>.png")
    given.add_argument("--cutout", choices=("webm", "mov"),
                       help="also write each video's objects cut out on a transparent background: OUT/<id>/cutout.webm "
                            "(VP9, plays in browsers) or OUT/<id>/cutout.mov (ProRes 4444, for video editors)")
    given.add_argument("--redact", action="store_true",
                       help="also write each video with its objects hidden (H.264): OUT/<id>/redacted.mp4; frames "
                            "where an object was not found are named among the warnings")
    add_redaction_arguments(given)
    given.add_argument("--overwrite", action="store_true",
                       help="segment every video again, replacing its results (default: finished videos are skipped, "
                            "partly done ones continued)")
    given.add_argument("--backwards", action="store_true", help=BACKWARDS_HELP)
    given.add_argument("--every", metavar="N", type=every_nth, default=1, help=EVERY_HELP)
    given.add_argument("--box-format", choices=BOX_FORMATS, default="xyxy",
                       help="how the manifest's boxes are given where an entry has no \"box_format\": xyxy = corners "
                            "(default), xywh = top-left corner and size")
    given.add_argument("--quiet", action="store_true", help="no progress bar and no summary (warnings and errors stay)")
    work = parser.add_argument_group("workers")
    work.add_argument("--workers", type=int, metavar="N",
                      help="videos segmented at once: worker processes here, or Ray actors; the CPU threads are split "
                           f"between them (default: one per CPU core as memory allows, or {WORKERS_PER_GPU} per GPU; "
                           "with --ray, one per GPU or per CPU of the cluster as its memory allows)")
    work.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                      help="run the workers as Ray actors: 'auto' joins the cluster this machine belongs to (ray start), "
                           "an address joins that one, no value starts Ray on this machine alone; needs "
                           "pip install 'qmra[ray]' and an --out every node reaches")
    work.add_argument("--videos-per-worker", type=int, default=1, metavar="K",
                      help="videos each worker segments at once, in threads sharing its network: their frames go through "
                           "the query encoder as one batch where their working sizes match (for a GPU, which one video "
                           "leaves idle between network calls; videos adapted with --adapt share nothing); default 1")
    work.add_argument("--retries", type=int, default=1, metavar="N",
                      help="times a video is retried when its worker dies (killed, out of memory, node lost); default 1")
    add_model_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.batch.index import ResultIndex, run_fingerprint
    from qmra.batch.job import BatchOutputs, Job
    from qmra.batch.manifest import read_manifest
    from qmra.batch.schedule import BatchTally
    from qmra.inference.outputs import check_folder

    started = time.perf_counter()
    items = read_manifest(args.manifest, args.box_format)  # a bad manifest stops here, before any work
    for item in items:  # a box off the frames --every segments: refused before any work, as a bad manifest is
        try:
            check_boxes_on_every(list(item.prompts), item.first, args.every)
        except QmraError as error:
            raise QmraError(f"{item.where}: {error}") from None
    out = Path(args.out)
    check_folder(out, "--out")
    weights, settings = _check_network(args)
    if args.workers is not None and args.workers < 1:
        raise QmraError(f"--workers must be at least 1, got {args.workers}")
    if args.videos_per_worker < 1:
        raise QmraError(f"--videos-per-worker must be at least 1, got {args.videos_per_worker}")
    if args.retries < 0:
        raise QmraError(f"--retries must be 0 or more, got {args.retries}")
    # Absolute: Ray actors do not share this process's working folder (on other machines, nor always here).
    outputs = BatchOutputs(out.absolute(), args.overlay, args.rle, args.per_object, args.overwrite, args.backwards,
                           args.cutout, args.every if args.every > 1 else None, redaction(args), args.tracks or None)
    index, tally = ResultIndex(out / "index.jsonl"), BatchTally()
    run = run_fingerprint(weights, settings, replace(outputs, out=Path("."), overwrite=False))
    jobs = []
    for item in items:
        finished = None if args.overwrite else index.done(item.id, run)
        if finished is not None and outputs.complete(item, int(finished.get("frames", -1))):
            tally.skipped += 1
        else:
            jobs.append(Job(item, run=run))
    if not args.quiet:
        print(f"qmra batch: {len(items)} video{'s' if len(items) != 1 else ''}: {len(jobs)} to segment, "
              f"{tally.skipped} already done", file=sys.stderr)
    if jobs:
        code = _run_jobs(args, jobs, outputs, index, tally, weights)
        if code:
            return code
    if not args.quiet:
        print(_summary(tally, time.perf_counter() - started, out))
    return EXIT_SOME_FAILED if tally.failed else 0


def _run_jobs(args: argparse.Namespace, jobs: list, outputs, index, tally, weights: Path) -> int:
    """Segment ``jobs``; the interrupted exit code, or 0 once every job ended."""
    from qmra.batch.progress import BatchProgress
    from qmra.batch.schedule import run_batch

    pool = _pool(args, outputs, len(jobs), weights)
    progress = BatchProgress(progress_style(args.quiet), len(jobs))
    try:
        with terminate_interrupts():
            run_batch(jobs, pool, index, progress, tally, retries=args.retries)
    except KeyboardInterrupt as interruption:
        progress.close()
        stopped = ", ".join(r.id for r in tally.interrupted) or "none"
        print(f"qmra: {'terminated' if exit_code(interruption) == 143 else 'interrupted'}: {len(tally.done)} videos "
              f"done in this run, stopped: {stopped} (their finished frames are kept; the same command continues)",
              file=sys.stderr)
        return exit_code(interruption)
    finally:
        progress.close()  # before any error line: a bar left open would swallow it
    return 0


def _check_network(args: argparse.Namespace):
    """The weights and settings the workers will load, checked here so that a mistake is one error
    before any work, not one per video; returns the weights file and the settings."""
    from qmra.inference.card import read_card, shipped_card
    from qmra.presets import get_preset

    card = read_card(args.weights) if args.weights else shipped_card()
    settings = speed_settings(args, get_preset(args.preset).settings if args.preset else card.settings)
    if args.ray is None:  # a cluster's nodes may have the GPUs this machine lacks
        from qmra.inference.segmenter import resolve_device

        resolve_device(args.device)
    return card.path, settings


def _pool(args: argparse.Namespace, outputs, videos: int, weights: Path):
    """The pool of workers the flags ask for: Ray actors (their number, without --workers, from the
    cluster's resources once Ray runs), or local processes that load ``weights``."""
    from qmra.batch.local_pool import LocalPool, available_memory, cpu_workers, split_threads
    from qmra.inference.threads import usable_cores

    worker_args = argparse.Namespace(**vars(args))
    if args.ray is not None:  # other nodes find their own installation's weights, or the path given
        from qmra.batch.ray_pool import RayPool

        worker_args.threads = getattr(args, "threads", None) or CORES_PER_ACTOR
        return RayPool(worker_args, outputs, args.workers, None if args.ray == "local" else args.ray,
                       worker_args.threads, args.videos_per_worker)
    cores = usable_cores()
    if args.workers is not None:
        workers = args.workers
    elif args.device.startswith("cuda"):
        import torch

        workers = WORKERS_PER_GPU * max(1, torch.cuda.device_count() if args.device == "cuda" else 1)
    else:
        workers = cpu_workers(cores, available_memory())
    lanes = min(args.videos_per_worker, videos)
    workers = max(1, min(workers, videos // lanes))
    # Each lane's CPU operations run a thread team of their own: the cores are split between them all.
    worker_args.threads = getattr(args, "threads", None) or split_threads(cores, workers * lanes)
    worker_args.weights = str(weights.resolve())  # the very file checked here
    return LocalPool(worker_args, outputs, workers, lanes)


def _summary(tally, seconds: float, out: Path) -> str:
    """'batch: 18 done, 1 failed, 1 skipped; 1234 frames in 5.4 min (3.8 frames/s); objects lost in 2 videos; ...'."""
    from qmra.inference.progress import duration

    frames = sum(r.frames for r in tally.done)
    lost = sum(1 for r in tally.done if r.lost)
    failed = f" ({', '.join(r.id for r in tally.failed[:5])}{', ...' if len(tally.failed) > 5 else ''})" if tally.failed else ""
    return (f"batch: {len(tally.done)} done, {len(tally.failed)} failed{failed}, {tally.skipped} skipped (done before); "
            f"{frames} frames in {duration(seconds)} ({frames / max(seconds, 1e-9):.2f} frames/s); "
            f"{'no object lost' if not lost else f'objects lost in {lost} video' + ('s' if lost != 1 else '')}; "
            f"index: {out / 'index.jsonl'}")
