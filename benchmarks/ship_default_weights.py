"""Choose the inference settings of trained weights on validation sequences, score them once on test
sequences, and ship them as qmra's default weights with their card.

Every candidate (checkpoint × working resolution × test-time adaptation × memory top-k) runs under the box protocol
on the validation sequences, scored by qmra.evaluation (the code of ``qmra eval``); the best mean J&F
wins. A candidate that adapts runs once per adaptation seed (``--seeds``) and is scored by the mean
over them: one seed's J&F moves by several points, more than most differences between candidates.
Candidates that adapt several times per seed (``--ensemble N``: N copies adapted with seeds
N·s … N·s + N − 1; ``--adapt-average N``: N adaptations averaged into one network; both: their
product) are compared on the same adaptation draws: with a largest count of M, a candidate of n
runs the seeds that give it the draws M·s … M·s + M − 1 of the listed seeds s (n = 1: M times as
many runs), so that an ensemble is not compared with fewer, luckier or unluckier, single runs.
With ``--tolerance T`` (J&F points), a candidate that does less work per frame than the best one
(a smaller ensemble, a smaller working size) wins instead when its mean J&F is within T of the best:
the speed a user gets counts too, decided before the candidates run.
With ``--reencode 95,90`` the real validation sequences are also scored on copies whose frames are
re-encoded as JPEG at those qualities (:mod:`benchmarks.reencode`), and score the mean over the
original and the copies: whether a mask spreads onto look-alike background can turn on that small a
change, and a choice should not rest on one draw of it.
With ``--report DIR`` (repeatable), each candidate is also scored on those videos (the small-object
made videos, say), reported under ``"reported"`` in its trial and never part of the choice.
Only the winner is then run on the test sequences, once per seed, with the two box baselines beside it.
The weights are stored as fp16 safetensors with ``"inference"`` metadata (the chosen resolution,
adaptation and top-k), so ``Segmenter()``, ``qmra segment``, ``qmra eval`` and ``qmra demo`` use them by
default; a JSON card beside them records the data, the commands, the split and every score.

    .venv/bin/python -m benchmarks.ship_default_weights --checkpoints runs/gpu1/weights.safetensors,runs/gpu2/weights.safetensors \\
        --davis ../shared/data/davis2016 --validation goat,parkour,scooter-black \\
        --test car-shadow,dog,horsejump-high,kite-surf --candidates 320:0,320:10,256:10,400:10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.box_baselines import write_baselines
from benchmarks.reencode import reencoded_copy
from qmra.data import DavisDataset
from qmra.data.atomic import atomic_path
from qmra.evaluation import evaluate_davis
from qmra.evaluation.box_noise import BoxNoise
from qmra.evaluation.protocol import predict_davis
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.card import DEFAULT_WEIGHTS
from qmra.inference.settings import parse_top_k
from qmra.model.checkpoint import load_model, save_checkpoint
from qmra.options import add_options, from_options

REPORTED = ("J&F-Mean", "J-Mean", "J-Recall", "F-Mean", "F-Recall", "J-Decay", "F-Decay")


def score_predictions(davis: DavisDataset, folder: Path) -> dict:
    result = evaluate_davis(davis, folder, processes=1)
    scores = {k: round(float(v), 4) for k, v in result.global_scores().items() if k in REPORTED}
    scores["per_object"] = {name: round(float((j + f) / 2), 4) for name, j, f in result.per_object()}
    scores["lost"] = result.lost_objects()
    return scores


#: The settings a candidate chooses, which the shipped weights then recommend (their "inference" metadata).
CHOSEN = ("resolution", "adapt_steps", "adapt_lr", "memory_top_k", "adapt_mask_weight", "ensemble", "adapt_average",
          "stage2_box", "mem_every", "previous_every", "min_piece", "redetect", "adapt_target")


def candidate_settings(text: str) -> tuple[str, InferenceSettings]:
    """``RESOLUTION:ADAPT_STEPS[:ADAPT_LR[:TOP_K[:MASK_WEIGHT[:ENSEMBLE[:AVERAGE[:STAGE2_BOX[:MEM_EVERY[:PRECISION[:PREVIOUS_EVERY[:MIN_PIECE[:REDETECT[:ADAPT_TARGET]]]]]]]]]]]]``
    (resolution a number or 'native', top-k a number or 'all', the adaptation's mask-loss weight a
    number, the ensemble's network count, the adaptations each network averages, what stage 2's box
    surrounds: 'all' or 'largest-blob', every how many frames one joins the memory, fp32 or bf16,
    every how many frames the previous frame in memory is renewed, the share of an object's largest
    piece under which its other pieces are dropped, 'redetect' to find lost objects again by their
    look (anything else: not), what stage 1 learns to answer in adaptation: 'box' or 'mask-box') →
    (label, settings)."""
    parts = text.split(":")
    resolution = None if parts[0] == "native" else int(parts[0])
    steps = int(parts[1]) if len(parts) > 1 else 0
    lr = float(parts[2]) if len(parts) > 2 else InferenceSettings().adapt_lr
    top_k = parse_top_k(parts[3]) if len(parts) > 3 else None
    mask_weight = float(parts[4]) if len(parts) > 4 else InferenceSettings().adapt_mask_weight
    ensemble = int(parts[5]) if len(parts) > 5 else InferenceSettings().ensemble
    average = int(parts[6]) if len(parts) > 6 else InferenceSettings().adapt_average
    box = parts[7] if len(parts) > 7 else InferenceSettings().stage2_box
    mem_every = int(parts[8]) if len(parts) > 8 else InferenceSettings().mem_every
    precision = parts[9] if len(parts) > 9 else InferenceSettings().precision
    previous_every = int(parts[10]) if len(parts) > 10 else InferenceSettings().previous_every
    min_piece = float(parts[11]) if len(parts) > 11 else InferenceSettings().min_piece
    redetect = parts[12] == "redetect" if len(parts) > 12 else InferenceSettings().redetect
    target = parts[13] if len(parts) > 13 else InferenceSettings().adapt_target
    return text, InferenceSettings(resolution=resolution, adapt_steps=steps, adapt_lr=lr, memory_top_k=top_k,
                                   adapt_mask_weight=mask_weight, ensemble=ensemble, adapt_average=average,
                                   stage2_box=box, mem_every=mem_every, precision=precision,
                                   previous_every=previous_every, min_piece=min_piece, redetect=redetect,
                                   adapt_target=target)


def frame_work(settings: InferenceSettings) -> float:
    """The network work per frame of a candidate, up to a constant: the networks it runs times the
    pixels they see (a native-size candidate counts as more than any fixed size)."""
    return settings.copies * (float("inf") if settings.resolution is None else settings.resolution ** 2)


def choose(trials: dict[str, dict[str, dict]], tolerance: float) -> tuple[str, str]:
    """The (checkpoint, candidate) with the best mean validation J&F, unless a candidate doing less
    work per frame (:func:`frame_work`: fewer networks, or a smaller working size) scores within
    ``tolerance`` J&F points (0–100) of it: then the best of those with the least work."""
    pairs = [(c, k) for c, t in trials.items() for k in t]
    score = lambda pair: trials[pair[0]][pair[1]]["J&F-Mean"]  # noqa: E731
    best = max(score(pair) for pair in pairs)
    work = {pair: frame_work(candidate_settings(pair[1])[1]) for pair in pairs if score(pair) >= best - tolerance / 100}
    least = min(work.values())
    return max((pair for pair, w in work.items() if w == least), key=score)


def draws_per_seed(settings: InferenceSettings) -> int:
    """How many adaptations one seed of a candidate runs: its ensemble's copies times the
    adaptations each averages."""
    return settings.ensemble * settings.adapt_average


def score_model(model, davis: DavisDataset, settings: InferenceSettings, noise: BoxNoise = BoxNoise()) -> dict:
    segmenter = Segmenter(model, settings=settings)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        speed = predict_davis(segmenter, davis, folder, noise=noise)
        scores = score_predictions(davis, Path(folder))
    scores["model_fps_cpu"] = round(speed["model_fps"], 2)
    scores["seconds"] = round(time.perf_counter() - started, 1)
    return scores


def candidate_seeds(seeds: list[int], copies: int, largest: int) -> list[int]:
    """The adaptation seeds a candidate of ``copies`` networks runs so that it sees the draws
    ``largest·s … largest·s + largest − 1`` of each listed seed ``s`` (see the module docstring)."""
    if largest % copies:
        raise SystemExit(f"ensembles of {copies} and {largest} copies cannot share adaptation draws")
    return [(largest * seed + offset) // copies for seed in seeds for offset in range(0, largest, copies)]


def score_over_seeds(model, davis: DavisDataset, settings: InferenceSettings, seeds: list[int],
                     noise: BoxNoise = BoxNoise()) -> dict:
    """:func:`score_model` once per adaptation seed (once in all without adaptation): the mean J&F
    and per-object scores over the seeds, ``"lost"``: the objects lost with at least one seed, each
    seed's own scores under ``"by_seed"``."""
    runs = {seed: score_model(model, davis, replace(settings, adapt_seed=seed), noise)
            for seed in (seeds if settings.adapt_steps else seeds[:1])}
    return {**_pooled(list(runs.values())), "by_seed": {str(seed): r for seed, r in runs.items()}}


def _pooled(runs: list[dict]) -> dict:
    """Runs of one set (one per seed, or per copy): the mean J&F and per-object scores, the range of
    J&F over the runs (and within each, where a run has its own range), the objects lost in any run."""
    mean = lambda values: round(sum(values) / len(runs), 4)  # noqa: E731
    ranges = [r.get("J&F-range", [r["J&F-Mean"]] * 2) for r in runs]
    return {
        "J&F-Mean": mean(r["J&F-Mean"] for r in runs),
        "J&F-range": [min(low for low, _ in ranges), max(high for _, high in ranges)],
        "per_object": {name: mean(r["per_object"][name] for r in runs) for name in runs[0]["per_object"]},
        "lost": sorted({name for r in runs for name in r["lost"]}),
        "seconds": round(sum(r["seconds"] for r in runs), 1),
    }


def score_copies(model, copies: list[DavisDataset], settings: InferenceSettings, seeds: list[int],
                 noise: BoxNoise = BoxNoise()) -> dict:
    """:func:`score_over_seeds` on each copy of one set (the original and its re-encoded copies,
    :mod:`benchmarks.reencode`): the mean J&F and per-object scores over the copies, ``"lost"``: the
    objects lost in at least one copy, each copy's own scores under ``"by_copy"``."""
    runs = [score_over_seeds(model, davis, settings, seeds, noise) for davis in copies]
    return runs[0] if len(runs) == 1 else {**_pooled(runs), "by_copy": runs}


def score_sets(model, sets: dict[str, list[DavisDataset]], settings: InferenceSettings, seeds: list[int],
               noise: BoxNoise = BoxNoise()) -> dict:
    """:func:`score_copies` on each validation set; ``"J&F-Mean"``: the mean of the sets' J&F, so that
    a few real sequences weigh as much as many made ones."""
    runs = {name: score_copies(model, copies, settings, seeds, noise) for name, copies in sets.items()}
    if len(runs) == 1:
        return next(iter(runs.values()))
    return {
        "J&F-Mean": round(sum(r["J&F-Mean"] for r in runs.values()) / len(runs), 4),
        "J&F-range": [round(sum(r["J&F-range"][i] for r in runs.values()) / len(runs), 4) for i in (0, 1)],
        "per_object": {name: v for r in runs.values() for name, v in r["per_object"].items()},
        "lost": sorted({name for r in runs.values() for name in r["lost"]}),
        "seconds": round(sum(r["seconds"] for r in runs.values()), 1),
        "by_set": runs,
    }


def choose_with_margin(trials: dict[str, dict[str, dict]], base: str, margin: float) -> tuple[str, str]:
    """The best (checkpoint, candidate); a candidate other than ``base`` (the first listed, the fewest
    moving parts) wins only where it beats the same checkpoint's ``base`` by ``margin`` J&F points."""
    score = lambda pair: trials[pair[0]][pair[1]]["J&F-Mean"]  # noqa: E731
    pairs = [(c, k) for c, t in trials.items() for k in t
             if k == base or score((c, k)) >= score((c, base)) + margin / 100]
    return max(pairs, key=score)


def baselines(davis: DavisDataset) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        write_baselines(davis, Path(folder))
        for name in ("still-box", "true-box"):
            out[name] = score_predictions(davis, Path(folder) / name)
    return out


def training_record(metadata: dict) -> dict | None:
    """The trainer's record of a checkpoint: its own, or, for weights shipped before (whose
    metadata is their card), the card's."""
    card = metadata.get("card")
    if metadata.get("training") is None and isinstance(card, dict):
        return card.get("training", {}).get("record")
    return metadata.get("training")


def validate(args: argparse.Namespace, sets: dict[str, DavisDataset], seeds: list[int], largest: int) -> dict[str, dict[str, dict]]:
    """Every (checkpoint, candidate)'s validation scores, those in ``args.trials`` read back rather than run again."""
    stored = json.loads(Path(args.trials).read_text()) if args.trials and Path(args.trials).exists() else {}
    trials: dict[str, dict[str, dict]] = {}
    noise = from_options(args, BoxNoise)
    for checkpoint in [c for c in args.checkpoints.split(",") if c]:
        model = None
        trials[checkpoint] = {}
        for text in args.candidates.split(","):
            label, settings = candidate_settings(text)
            scores = stored.get(checkpoint, {}).get(label)
            candidate_draws = candidate_seeds(seeds, draws_per_seed(settings), largest)
            # Scores of another protocol (other copies, other boxes) run again.
            if scores is None or scores.get("reencoded", []) != args.reencode or scores.get("boxes", {}) != noise.record():
                model = model or load_model(checkpoint)[0]
                scores = score_sets(model, sets, settings, candidate_draws, noise)
                scores["reencoded"] = args.reencode
                scores["adaptation_seeds"] = candidate_draws if settings.adapt_steps else []
                if not noise.tight:
                    scores["boxes"] = noise.record()
            missing = [folder for folder in args.report if folder not in scores.get("reported", {})]
            if missing:
                model = model or load_model(checkpoint)[0]
                scores["reported"] = {**scores.get("reported", {}), **{
                    folder: score_over_seeds(model, DavisDataset(folder), settings, candidate_draws, noise)
                    for folder in missing}}
            trials[checkpoint][label] = scores
            print(f"{checkpoint} {label}: validation J&F {scores['J&F-Mean']:.3f} "
                  f"(range over seeds and copies {scores['J&F-range']}) "
                  f"{scores['per_object']} lost {scores['lost']} ({scores['seconds']} s)", flush=True)
            for folder, reported in scores.get("reported", {}).items():
                print(f"  reported, never choosing: {folder} J&F {reported['J&F-Mean']:.3f} lost {reported['lost']}",
                      flush=True)
            if args.trials:
                with atomic_path(Path(args.trials)) as temporary:
                    merged = {**stored, **{c: {**stored.get(c, {}), **labels} for c, labels in trials.items()}}
                    temporary.write_text(json.dumps(merged, indent=2) + "\n")
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", required=True, help="comma-separated qmra checkpoints to choose from")
    parser.add_argument("--davis", required=True)
    parser.add_argument("--validation", required=True, help="comma-separated sequences that choose")
    parser.add_argument("--test", required=True, help="comma-separated sequences that only report")
    parser.add_argument("--candidates", default="320:0,320:10",
                        help="RESOLUTION:ADAPT_STEPS[:ADAPT_LR[:TOP_K[:MASK_WEIGHT[:ENSEMBLE[:AVERAGE[:STAGE2_BOX"
                             "[:MEM_EVERY[:PRECISION[:PREVIOUS_EVERY]]]]]]]]], comma-separated")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="J&F points (0-100) a candidate with less work per frame (fewer networks, fewer pixels) may "
                             "trail the best by and win")
    parser.add_argument("--margin", type=float, default=None,
                        help="J&F points (0-100) by which a candidate must beat the first one (the fewest moving parts) to "
                             "be chosen; fixed before measuring (replaces --tolerance)")
    parser.add_argument("--flying", help="a folder of held-out made videos in the DAVIS layout (benchmarks.flying_validation); "
                                         "validation J&F is then the mean of the real and the made sets' J&F")
    parser.add_argument("--reencode", type=lambda text: [int(q) for q in text.split(",") if q], default=[],
                        help="JPEG qualities, comma-separated: the real validation sequences are also scored re-encoded at "
                             "each (copies under runs/reencoded/), their J&F the mean over the original and the copies; "
                             "whether a mask spreads can turn on that small a change (benchmarks.reencode)")
    parser.add_argument("--report", action="append", default=[], metavar="DIR",
                        help="held-out videos in the DAVIS layout that every candidate is also scored on, reported beside "
                             "its validation scores and never part of the choice; repeatable")
    add_options(parser, BoxNoise)  # validation with boxes as people draw them (qmra eval's --box-* options)
    parser.add_argument("--validate-only", action="store_true", help="score the candidates on validation and stop")
    parser.add_argument("--trials", help="a JSON file of validation scores: written as each candidate is scored, and "
                                         "read back by a later run, which scores only the pairs it lacks (so a "
                                         "validate-only pass is not repeated before the test run)")
    parser.add_argument("--trained-from", default="scratch (no ImageNet weights on the machines this was trained on)",
                        help="the encoders' initialisation, recorded in the card")
    parser.add_argument("--seeds", default="0,1,2", help="adaptation seeds each candidate runs with, comma-separated")
    parser.add_argument("--test-seeds", help="adaptation seeds of the test run (default: --seeds); 0, what users get, "
                                             "belongs there even where validation ran other seeds")
    parser.add_argument("--command", action="append", default=[], help="the training command(s), recorded in the card")
    parser.add_argument("--training-note", default="", help="how the weights were trained, recorded in the card")
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    args = parser.parse_args()

    validation = DavisDataset(args.davis, sequences=[s for s in args.validation.split(",") if s])
    copies = [reencoded_copy(validation, quality, Path("runs/reencoded") / f"q{quality}") for quality in args.reencode]
    sets = {"davis": [validation, *copies]}
    if args.flying:
        sets["flying"] = [DavisDataset(args.flying)]
    test = DavisDataset(args.davis, sequences=[s for s in args.test.split(",") if s])
    if set(validation.names) & set(test.names):
        raise SystemExit("a sequence cannot both choose and report")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    largest = max(draws_per_seed(candidate_settings(text)[1]) for text in args.candidates.split(","))
    trials = validate(args, sets, seeds, largest)
    if args.validate_only:
        return
    first = args.candidates.split(",")[0]
    chosen, label = choose(trials, args.tolerance) if args.margin is None else choose_with_margin(trials, first, args.margin)
    _, settings = candidate_settings(label)
    recommended = {name: getattr(settings, name) for name in CHOSEN}
    model, metadata = load_model(chosen)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, metadata={"inference": recommended}, dtype=torch.float16)
    shipped, _ = load_model(out)
    listed = [int(s) for s in args.test_seeds.split(",") if s] if args.test_seeds else seeds
    test_seeds = candidate_seeds(listed, draws_per_seed(settings), largest)
    test_scores = score_over_seeds(shipped, test, settings, test_seeds)  # the one look at the test sequences
    print(f"chosen {chosen} {label}; test J&F {test_scores['J&F-Mean']:.3f} (seeds {test_scores['J&F-range']}) "
          f"{test_scores['per_object']} lost {test_scores['lost']}", flush=True)
    card = {
        "name": "qmra default weights",
        "architecture": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float16",
        "trained_from": args.trained_from,
        "training": {"record": training_record(metadata), "note": args.training_note, "commands": args.command},
        "split_davis2016": {"validation": validation.names, "test": test.names,
                            "training": "the other sequences of the folder (see the training data specs)"},
        "inference": recommended,
        "adaptation_seeds": test_seeds,
        "chosen_checkpoint": chosen,
        "validation_scores": trials,
        "validation_box_baselines": {name: baselines(copies[0]) for name, copies in sets.items()},
        "test_scores": test_scores,
        "test_box_baselines": baselines(test),
        "note": "box protocol (first-frame tight box only), scored by qmra.evaluation; the checkpoint and the inference "
                "settings (working resolution, adaptation, memory top-k, ensemble, stage 2's box, memory schedule) were "
                "chosen on the validation sequences by the mean J&F over the adaptation seeds ("
                + (f"candidates with less work per frame winning within {args.tolerance} points of the best"
                   if args.margin is None else f"a candidate beyond the first chosen only by a margin of {args.margin} points")
                + "); the test sequences were run once per seed "
                "(users get seed 0 unless they ask for another: by_seed)",
    }
    save_checkpoint(out, model, metadata={"inference": recommended, "card": card}, dtype=torch.float16)
    with atomic_path(out.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {out} ({out.stat().st_size / 2**20:.1f} MiB, fp16)")


if __name__ == "__main__":
    main()
