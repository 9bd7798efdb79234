"""Score a training run's checkpoint on the held-out DAVIS sequences and ship it as qmra's default weights.

For each working resolution asked for, the checkpoint runs under the box protocol on the held-out
sequences and is scored with qmra.evaluation (the same code as ``qmra eval``); the two box baselines are
scored on the same sequences. The (checkpoint, resolution) pair that scores best is written into the weights' metadata
(``"inference": {"resolution": R}``), so ``Segmenter()``, ``qmra segment`` and ``qmra demo`` use it by
default. The weights are stored as fp16 safetensors and re-scored after the cast; a JSON card beside
them records the data, the commands, the held-out sequences and every score.

    .venv/bin/python -m benchmarks.ship_default_weights --run bench-results/default-davis \\
        --davis ../shared/data/davis2016 --held-out car-shadow,dog,horsejump-high,kite-surf \\
        --resolutions 96,128,160,224 --command "bash benchmarks/train_default_weights.sh"
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.box_baselines import write_baselines
from qmra.data import DavisDataset
from qmra.data.atomic import atomic_path
from qmra.evaluation import evaluate_davis
from qmra.evaluation.protocol import predict_davis
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.segmenter import DEFAULT_WEIGHTS
from qmra.model.checkpoint import load_model, save_checkpoint

REPORTED = ("J&F-Mean", "J-Mean", "J-Recall", "F-Mean", "F-Recall", "J-Decay", "F-Decay")


def score_predictions(davis: DavisDataset, folder: Path) -> dict:
    result = evaluate_davis(davis, folder, processes=1)
    scores = {k: round(float(v), 4) for k, v in result.global_scores().items() if k in REPORTED}
    scores["per_object"] = {name: round(float((j + f) / 2), 4) for name, j, f in result.per_object()}
    return scores


def score_model(model, davis: DavisDataset, resolution: int | None) -> dict:
    segmenter = Segmenter(model, settings=InferenceSettings(resolution=resolution))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        speed = predict_davis(segmenter, davis, folder)
        scores = score_predictions(davis, Path(folder))
    scores["model_fps_cpu"] = round(speed["model_fps"], 2)
    scores["seconds"] = round(time.perf_counter() - started, 1)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a qmra train RUN_DIR")
    parser.add_argument("--checkpoints", default="best.safetensors,last.safetensors",
                        help="the run's checkpoints to try (comma-separated)")
    parser.add_argument("--davis", required=True)
    parser.add_argument("--held-out", required=True, help="comma-separated sequences never trained on")
    parser.add_argument("--resolutions", default="96,128,160,224", help="working short sides to try ('native' allowed)")
    parser.add_argument("--command", action="append", default=[], help="the training command(s), recorded in the card")
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    args = parser.parse_args()

    run = Path(args.run)
    held_out = [s for s in args.held_out.split(",") if s]
    davis = DavisDataset(args.davis, sequences=held_out)
    resolutions = [None if r == "native" else int(r) for r in args.resolutions.split(",")]

    trials: dict[str, dict[str, dict]] = {}
    for checkpoint in [c for c in args.checkpoints.split(",") if c]:
        model, _ = load_model(run / checkpoint)
        step = json.loads((run / checkpoint).with_suffix(".json").read_text())["step"]
        trials[checkpoint] = {"step": step}
        for resolution in resolutions:
            scores = score_model(model, davis, resolution)
            trials[checkpoint][str(resolution or "native")] = scores
            print(f"{checkpoint} (step {step}) at resolution {resolution or 'native'}: J&F {scores['J&F-Mean']:.3f} "
                  f"(J {scores['J-Mean']:.3f}, F {scores['F-Mean']:.3f}), {scores['model_fps_cpu']} model FPS on this CPU",
                  flush=True)
    chosen, best_key = max(((c, k) for c, t in trials.items() for k in t if k != "step"),
                           key=lambda pair: trials[pair[0]][pair[1]]["J&F-Mean"])
    best_resolution = None if best_key == "native" else int(best_key)
    model, _ = load_model(run / chosen)
    record = json.loads((run / chosen).with_suffix(".json").read_text())

    baselines = {}
    with tempfile.TemporaryDirectory() as folder:
        write_baselines(davis, Path(folder))
        for name in ("still-box", "true-box"):
            baselines[name] = score_predictions(davis, Path(folder) / name)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    card = {
        "name": "qmra default weights",
        "architecture": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float16",
        "trained_from": "scratch (no ImageNet weights on the machines this was trained on)",
        "training": {"step": record.get("step"), "data": record.get("data"), "val": record.get("val"),
                     "settings": record.get("train"), "best_validation_jf": record.get("best_jf"), "commands": args.command},
        "held_out_davis2016": held_out,
        "inference": {"resolution": best_resolution},
        "shipped_checkpoint": chosen,
        "scores_by_checkpoint_and_resolution": trials,
        "box_baselines": baselines,
        "note": "scores on the held-out DAVIS 2016 sequences under the box protocol (first-frame tight box only), "
                "computed by qmra.evaluation; the checkpoint and the resolution were chosen on these same sequences",
    }
    save_checkpoint(out, model, metadata={"inference": {"resolution": best_resolution}, "card": card}, dtype=torch.float16)
    shipped, _ = load_model(out)
    card["fp16_scores"] = score_model(shipped, davis, best_resolution)
    save_checkpoint(out, model, metadata={"inference": {"resolution": best_resolution}, "card": card}, dtype=torch.float16)
    with atomic_path(out.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {out} ({out.stat().st_size / 2**20:.1f} MiB, fp16), resolution {best_key}: held-out J&F "
          f"{card['fp16_scores']['J&F-Mean']:.3f} after the fp16 cast; still box {baselines['still-box']['J&F-Mean']:.3f}, "
          f"true box {baselines['true-box']['J&F-Mean']:.3f}")


if __name__ == "__main__":
    main()
