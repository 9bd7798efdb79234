"""Scoring predictions against DAVIS annotations the official way, and the official CSV files."""

from __future__ import annotations

import csv
import io
import json
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from qmra.data.atomic import write_text_atomic
from qmra.data.davis import DavisDataset, DavisSequence
from qmra.data.masks import open_image
from qmra.errors import DataError
from qmra.evaluation.metrics import boundary_f_measure, decay_wraps, region_similarity, statistics

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
GLOBAL_CSV = "global_results-val.csv"
SEQUENCE_CSV = "per-sequence_results-val.csv"
SPEED_FILE = "speed.json"
#: An object whose mean J over the last quarter of its scored frames is under this is lost
#: (followed at first, not found again): :meth:`EvaluationResult.lost_objects`.
LOST_J = 0.1


@dataclass
class ObjectScores:
    """One object's per-frame J and F over the scored frames (all but the first and the last)."""

    sequence: str
    object_id: int
    j: np.ndarray
    f: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.sequence}_{self.object_id}"


@dataclass
class EvaluationResult:
    objects: list[ObjectScores]
    speed: dict | None = None
    official_decay: bool = True
    notes: list[str] = field(default_factory=list)

    def global_scores(self) -> dict[str, float]:
        """Averages over objects (not sequences), as the official toolkit does."""
        if not self.objects:
            raise DataError("nothing was scored")
        j_stats = np.array([statistics(o.j, self.official_decay) for o in self.objects])
        f_stats = np.array([statistics(o.f, self.official_decay) for o in self.objects])
        j_mean, j_recall, j_decay = j_stats.mean(axis=0)
        f_mean, f_recall, f_decay = f_stats.mean(axis=0)
        return {"J&F-Mean": (j_mean + f_mean) / 2, "J-Mean": j_mean, "J-Recall": j_recall, "J-Decay": j_decay,
                "F-Mean": f_mean, "F-Recall": f_recall, "F-Decay": f_decay}

    def per_object(self) -> list[tuple[str, float, float]]:
        return [(o.name, statistics(o.j)[0], statistics(o.f)[0]) for o in self.objects]

    def lost_objects(self, threshold: float = LOST_J) -> list[str]:
        """Objects whose mean J over the last quarter of their scored frames is below ``threshold``:
        the tracker lost them and did not find them again."""
        lost = []
        for o in self.objects:
            tail = o.j[-max(1, len(o.j) // 4):]
            if tail.size and float(tail.mean()) < threshold:
                lost.append(o.name)
        return lost

    def write_csvs(self, folder: str | Path) -> tuple[Path, Path]:
        """``global_results-val.csv`` and ``per-sequence_results-val.csv`` in the official format."""
        folder = Path(folder)
        scores = self.global_scores()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(GLOBAL_COLUMNS)
        writer.writerow([f"{scores[c]:.3f}" for c in GLOBAL_COLUMNS])
        write_text_atomic(folder / GLOBAL_CSV, buffer.getvalue())
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(("Sequence", "J-Mean", "F-Mean"))
        for name, j_mean, f_mean in self.per_object():
            writer.writerow([name, f"{j_mean:.3f}", f"{f_mean:.3f}"])
        write_text_atomic(folder / SEQUENCE_CSV, buffer.getvalue())
        return folder / GLOBAL_CSV, folder / SEQUENCE_CSV

    def table(self, label: str = "qmra") -> str:
        """The paper's table layout (percent)."""
        s = self.global_scores()
        fps = "-" if not self.speed else f"{self.speed.get('model_fps', float('nan')):.2f}"
        header = f"{'':<12}{'J-Mean':>8}{'J-Recall':>10}{'J-Decay':>9}{'F-Mean':>8}{'F-Recall':>10}{'F-Decay':>9}{'J&F':>7}{'FPS':>8}"
        row = (f"{label:<12}{100 * s['J-Mean']:>8.1f}{100 * s['J-Recall']:>10.1f}{100 * s['J-Decay']:>9.1f}"
               f"{100 * s['F-Mean']:>8.1f}{100 * s['F-Recall']:>10.1f}{100 * s['F-Decay']:>9.1f}{100 * s['J&F-Mean']:>7.1f}{fps:>8}")
        return f"{header}\n{row}"


def read_prediction(path: Path, size: tuple[int, int], where: str) -> np.ndarray:
    """A predicted PNG → H×W object ids: palette ids as they are; greyscale 0/255 (DAVIS 2016 style) → 0/1."""
    if not path.is_file():
        raise DataError(f"{where}: prediction missing: {path}")
    image = open_image(path)
    if image.mode not in ("P", "L", "1"):
        raise DataError(f"{where}: {path.name} must be a palette or greyscale PNG, not mode {image.mode}")
    labels = np.asarray(image).astype(np.uint8)
    if image.mode != "P":
        values = np.unique(labels)
        if values.max(initial=0) == 255 and set(values.tolist()) <= {0, 255}:
            labels = (labels == 255).astype(np.uint8)
    if labels.shape != size:
        raise DataError(f"{where}: {path.name} is {labels.shape[1]}x{labels.shape[0]}, the annotation is {size[1]}x{size[0]}")
    return labels


def evaluate_sequence(sequence: DavisSequence, results_dir: Path) -> list[ObjectScores]:
    """Score one sequence's predictions in ``results_dir/<sequence>/<frame>.png``."""
    folder = results_dir / sequence.name
    if not folder.is_dir():
        raise DataError(f"sequence {sequence.name}: no predictions folder {folder}")
    names = set(sequence.frame_names)
    extra = sorted(p.name for p in folder.glob("*.png") if p.stem not in names)
    if extra:
        raise DataError(f"sequence {sequence.name}: prediction files for frames the sequence does not have: {', '.join(extra[:5])}")
    annotated = sequence.annotated_indices
    first = sequence.labels(annotated[0])
    num_objects = int(first.max())  # the official toolkit scores ids 1..max of the first frame
    scored = annotated[1:-1]
    j = np.zeros((num_objects, len(scored)))
    f = np.zeros((num_objects, len(scored)))
    for column, index in enumerate(scored):
        truth = sequence.labels(index)
        name = sequence.frame_names[index]
        prediction = read_prediction(folder / f"{name}.png", truth.shape, f"sequence {sequence.name} frame {name}")
        if prediction.max(initial=0) > num_objects:
            raise DataError(f"sequence {sequence.name} frame {name}: prediction has object id {int(prediction.max())}, "
                            f"the sequence has {num_objects} object(s)")
        for row in range(num_objects):
            object_id = row + 1
            j[row, column] = region_similarity(prediction == object_id, truth == object_id)
            f[row, column] = boundary_f_measure(prediction == object_id, truth == object_id)
    return [ObjectScores(sequence.name, row + 1, j[row], f[row]) for row in range(num_objects)]


def _score(arguments: tuple[str, str, str | None, str]) -> list[ObjectScores]:
    root, name, layout_year, results = arguments
    davis = DavisDataset(root, sequences=[name], year={"2016": 2016, "2017": 2017}.get(layout_year or ""))
    return evaluate_sequence(davis.sequence(name), Path(results))


def evaluate_davis(davis: DavisDataset, results_dir: str | Path, processes: int = 2, official_decay: bool = True) -> EvaluationResult:
    """Score every selected sequence (in ``processes`` worker processes); read ``speed.json`` if present."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"results folder not found: {results_dir}")
    year = {"binary": "2016", "palette": "2017"}.get(davis.layout)
    jobs = [(str(davis.root), name, year, str(results_dir)) for name in davis.names]
    if processes > 1 and len(jobs) > 1:
        # The platform's default start method (fork on Linux): workers only use numpy and scipy.
        with ProcessPoolExecutor(min(processes, len(jobs))) as pool:
            scored = list(pool.map(_score, jobs))
    else:
        scored = [_score(job) for job in jobs]
    objects = [o for per_sequence in scored for o in per_sequence]
    result = EvaluationResult(objects, official_decay=official_decay)
    long_ones = sorted({o.sequence for o in objects if decay_wraps(len(o.j))})
    if long_ones and official_decay:
        note = (f"{', '.join(long_ones[:3])} {'has' if len(long_ones) == 1 else 'have'} more than 256 scored frames: the "
                "official toolkit's decay bins wrap there (uint8 edges), and so do these numbers (use --exact-decay)")
        result.notes.append(note)
        warnings.warn(note, stacklevel=2)
    speed_file = results_dir / SPEED_FILE
    if speed_file.is_file():
        try:
            result.speed = json.loads(speed_file.read_text())
        except json.JSONDecodeError:
            result.speed = None
    return result


def write_speed(results_dir: Path, speed: dict) -> None:
    write_text_atomic(results_dir / SPEED_FILE, json.dumps(speed, indent=2))


def select_sequences(root: str | Path, sequences: Sequence[str] | None) -> DavisDataset:
    """The DAVIS sequences to score: the named ones, or all."""
    return DavisDataset(root, sequences=list(sequences) if sequences else None)
