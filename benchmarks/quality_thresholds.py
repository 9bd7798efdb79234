"""The quality signals (qmra.inference.quality) against the truth: where do they fire, how good is the mask there?

Runs the shipped weights at their recommended settings on DAVIS 2016 sequences (each object from the
tight box of its first mask) and writes, per frame after the first, the object's J against the true
mask and the measures the signals are made of, one JSON line each:

    .venv/bin/python -m benchmarks.quality_thresholds measure --davis ../shared/data/davis2016 \\
        --sequences breakdance,car-roundabout,cows,dance-twirl,drift-straight,motocross-jump,paragliding-launch,soapbox,goat,parkour,scooter-black \\
        --out quality-trainval.jsonl
    .venv/bin/python -m benchmarks.quality_thresholds summary quality-trainval.jsonl

Choose thresholds on the training and validation sequences only; the summary of the test sequences
reports how the chosen ones do, nothing more.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np


def measure(args: argparse.Namespace) -> None:
    from qmra.data import DavisDataset, box_from_mask
    from qmra.inference import Segmenter
    from qmra.inference.quality import QualityWatch

    segmenter = Segmenter(device=args.device)
    wanted = args.sequences.split(",")
    sequences = {s.name: s for s in DavisDataset(args.davis) if s.name in wanted}
    with open(args.out, "a") as out:
        for name in wanted:
            sequence = sequences[name]
            truth0 = sequence.labels(0) > 0
            session = segmenter.start(sequence.frames_dir, prompts={1: box_from_mask(truth0)})
            watch = QualityWatch()
            for index, result in session.propagate():
                measured = watch.measure(result, {1} if index == 0 else set())
                if index == 0:
                    continue
                truth, mask = sequence.labels(index) > 0, result.labels == 1
                union = np.logical_or(truth, mask).sum()
                j = float(np.logical_and(truth, mask).sum() / union) if union else 1.0
                row = {"sequence": name, "frame": index, "J": j, "lost": bool(result.lost[1])}
                if 1 in measured:
                    row.update(asdict(measured[1]))
                out.write(json.dumps(row) + "\n")
                out.flush()
            print(f"{name}: done", flush=True)


def summary(args: argparse.Namespace) -> None:
    from qmra.inference.quality import Measures, QualityThresholds

    rows = [json.loads(line) for path in args.files for line in Path(path).read_text().splitlines() if line]
    thresholds = QualityThresholds(**{name: None if value.lower() == "none" else float(value)
                                      for name, value in (a.split("=", 1) for a in args.set)})
    names = {f.name for f in fields(Measures)}
    bad = [r for r in rows if r["J"] < 0.5]
    good = [r for r in rows if r["J"] >= 0.8]
    print(f"{len(rows)} frames: {len(bad)} with J < 0.5, {len(good)} with J >= 0.8; thresholds {thresholds}")
    for signal in ("flood", "spill", "fading", "jump", "any"):
        def fires(r) -> bool:
            if not names <= set(r):
                return False
            fired = Measures(**{k: r[k] for k in names}).signals(thresholds)
            return bool(fired) if signal == "any" else signal in fired
        on_bad, on_good = sum(map(fires, bad)), sum(map(fires, good))
        print(f"  {signal:7s} fires on {on_bad:4d} of {len(bad)} frames with J < 0.5 ({on_bad / max(1, len(bad)):.0%}), "
              f"{on_good:4d} of {len(good)} with J >= 0.8 ({on_good / max(1, len(good)):.0%})")


#: Candidates per signal; each takes the candidate that fires on the most frames with J < 0.5 among
#: those that fire on at most MAX_FALSE_ALARMS of the frames with J >= 0.8 (fixed before any result).
GRID = {"flood": [{"growth": g} for g in (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0)],
        "spill": [{"fill": f, "outside": o} for f in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9)
                  for o in (None, 0.1, 0.2, 0.3, 0.4, 0.5)],
        "fading": [{"fading": v} for v in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)],
        "jump": [{"jump": v} for v in (0.3, 0.5, 0.75, 1.0, 1.5, 2.0)]}
MAX_FALSE_ALARMS = 0.03


def choose(args: argparse.Namespace) -> None:
    """The thresholds the rule above picks on ``args.files`` (training and validation frames only)."""
    from qmra.inference.quality import Measures, QualityThresholds

    rows = [json.loads(line) for path in args.files for line in Path(path).read_text().splitlines() if line]
    names = {f.name for f in fields(Measures)}
    measured = [(r["J"], Measures(**{k: r[k] for k in names})) for r in rows if names <= set(r)]
    bad, good = [m for j, m in measured if j < 0.5], [m for j, m in measured if j >= 0.8]
    chosen = {}
    for signal, candidates in GRID.items():
        best = None
        for values in candidates:
            thresholds = QualityThresholds(**values)
            hits = sum(signal in m.signals(thresholds) for m in bad)
            alarms = sum(signal in m.signals(thresholds) for m in good) / max(1, len(good))
            # The most bad frames caught; of thresholds that catch as many, the one that fires on fewest good ones.
            if alarms <= MAX_FALSE_ALARMS and (best is None or (hits, -alarms) > (best[0], -best[1])):
                best = (hits, alarms, values)
        if best is None:
            print(f"{signal}: no candidate stays under {MAX_FALSE_ALARMS:.0%} of good frames")
            continue
        chosen.update(best[2])
        print(f"{signal}: {best[2]}: fires on {best[0]} of {len(bad)} frames with J < 0.5, {best[1]:.1%} of "
              f"{len(good)} with J >= 0.8")
    print("chosen:", json.dumps(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("measure")
    run.add_argument("--davis", required=True)
    run.add_argument("--sequences", required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--device", default="cpu")
    report = commands.add_parser("summary")
    report.add_argument("files", nargs="+")
    report.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a threshold other than the default (none: off)")
    pick = commands.add_parser("choose")
    pick.add_argument("files", nargs="+")
    args = parser.parse_args()
    {"measure": measure, "summary": summary, "choose": choose}[args.command](args)


if __name__ == "__main__":
    main()
