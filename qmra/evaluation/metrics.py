"""DAVIS metrics, defined exactly as the official toolkit (davis2017-evaluation) computes them.

- J (region similarity): |S∩G| / |S∪G|, and 1 when both are empty.
- F (boundary F-measure): boundary pixels are those that differ from their east, south or
  south-east neighbour (the last row and column compare along the image edge only); a boundary
  pixel matches if a boundary pixel of the other mask lies within a disk of radius
  ceil(0.008 × image diagonal) pixels; P=1, R=0 when only the truth has a boundary, P=0, R=1 when
  only the prediction has one, F=1 when neither has.
- Per object: Mean, Recall (fraction of frames scoring > 0.5) and Decay (mean of the first of 4
  bins minus the last). The official code casts the bin edges to uint8, so for more than 256
  scored frames they wrap around; ``official_decay=True`` (default) reproduces that, and the
  evaluation warns when it happens.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.spatial import cKDTree

BOUNDARY_TOLERANCE = 0.008  # fraction of the image diagonal
DECAY_BINS = 4


def region_similarity(prediction: np.ndarray, truth: np.ndarray) -> float:
    """J of two H×W boolean masks."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    union = np.count_nonzero(prediction | truth)
    if union == 0:
        return 1.0
    return np.count_nonzero(prediction & truth) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """H×W bool → H×W bool boundary (pixels that differ from the east, south or south-east neighbour)."""
    seg = mask.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_radius(height: int, width: int, tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """The matching distance in pixels: ceil(tolerance × diagonal) (8 at 854×480)."""
    return int(tolerance) if tolerance >= 1 else int(math.ceil(tolerance * math.hypot(height, width)))


def _matched(sources: np.ndarray, targets: np.ndarray, radius: int) -> int:
    """How many ``targets`` pixels (K×2 coordinates) lie within ``radius`` of some ``sources`` pixel.

    Euclidean distance ≤ r is the official dilation with a disk (integer offsets x² + y² ≤ r²).
    Squared distances between pixels are integers, so the bound r + 1e-6 is exact.
    """
    distances, _ = cKDTree(sources).query(targets, k=1, distance_upper_bound=radius + 1e-6)
    return int(np.count_nonzero(np.isfinite(distances)))


def boundary_f_measure(prediction: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F of two H×W boolean masks."""
    predicted_boundary = boundary_map(prediction)
    true_boundary = boundary_map(truth)
    n_predicted = int(np.count_nonzero(predicted_boundary))
    n_true = int(np.count_nonzero(true_boundary))
    if n_predicted == 0 and n_true > 0:
        precision, recall = 1.0, 0.0
    elif n_predicted > 0 and n_true == 0:
        precision, recall = 0.0, 1.0
    elif n_predicted == 0 and n_true == 0:
        precision, recall = 1.0, 1.0
    else:
        radius = boundary_radius(*prediction.shape, tolerance=tolerance)
        predicted_points = np.argwhere(predicted_boundary)
        true_points = np.argwhere(true_boundary)
        precision = _matched(true_points, predicted_points, radius) / n_predicted
        recall = _matched(predicted_points, true_points, radius) / n_true
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def decay_bin_edges(count: int, official: bool = True) -> np.ndarray:
    """The 5 edges of the 4 decay bins over ``count`` values (wrapping at 256 like the official code)."""
    edges = np.round(np.linspace(1, count, DECAY_BINS + 1) + 1e-10) - 1
    return edges.astype(np.uint8) if official else edges.astype(np.int64)


def decay_wraps(count: int) -> bool:
    """Whether the official uint8 bin edges differ from the true ones for ``count`` scored frames."""
    return not np.array_equal(decay_bin_edges(count, True).astype(np.int64), decay_bin_edges(count, False))


def statistics(values: np.ndarray, official_decay: bool = True) -> tuple[float, float, float]:
    """Per-frame scores of one object → (Mean, Recall, Decay); NaN frames are ignored as officially."""
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        edges = decay_bin_edges(len(values), official_decay)
        bins = [values[edges[i] : edges[i + 1] + 1] for i in range(DECAY_BINS)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay
