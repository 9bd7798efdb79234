import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from qmra.evaluation.metrics import (boundary_f_measure, boundary_map, boundary_radius, decay_wraps, region_similarity,
                                     statistics)


def test_region_similarity_by_hand():
    truth = np.zeros((4, 4), bool)
    truth[0, :3] = True
    prediction = np.zeros((4, 4), bool)
    prediction[0, 2:] = True
    assert region_similarity(prediction, truth) == pytest.approx(1 / 4)
    assert region_similarity(np.zeros((4, 4)), truth) == 0.0
    assert region_similarity(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_boundary_map_by_hand():
    seg = np.zeros((5, 5), bool)
    seg[1:4, 1:4] = True
    expected = np.array([
        [1, 1, 1, 1, 0],
        [1, 0, 0, 1, 0],
        [1, 0, 0, 1, 0],
        [1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    ], bool)
    assert np.array_equal(boundary_map(seg), expected)


def _reference_f(prediction, truth, tolerance=0.008):
    """The official recipe written out with an explicit disk dilation (no distance transform)."""
    radius = math.ceil(tolerance * math.hypot(*prediction.shape))
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1) if dy * dy + dx * dx <= radius**2]

    def dilate(mask):
        out = np.zeros_like(mask)
        h, w = mask.shape
        for y, x in zip(*np.nonzero(mask)):
            for dy, dx in offsets:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    out[y + dy, x + dx] = True
        return out

    pb, tb = boundary_map(prediction), boundary_map(truth)
    n_p, n_t = pb.sum(), tb.sum()
    if n_p == 0 and n_t > 0:
        p, r = 1, 0
    elif n_p > 0 and n_t == 0:
        p, r = 0, 1
    elif n_p == 0 and n_t == 0:
        p, r = 1, 1
    else:
        p, r = (pb & dilate(tb)).sum() / n_p, (tb & dilate(pb)).sum() / n_t
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def test_boundary_tolerance_is_8_pixels_at_davis_size():
    assert boundary_radius(480, 854) == 8
    assert boundary_radius(100, 100) == 2


def test_boundary_f_edge_cases():
    empty = np.zeros((20, 20), bool)
    square = np.zeros((20, 20), bool)
    square[5:10, 5:10] = True
    assert boundary_f_measure(empty, square) == 0.0  # P = 1, R = 0
    assert boundary_f_measure(square, empty) == 0.0  # P = 0, R = 1
    assert boundary_f_measure(empty, empty) == 1.0
    assert boundary_f_measure(square, square) == 1.0


def test_one_pixel_objects():
    truth = np.zeros((30, 30), bool)
    truth[10, 10] = True
    near = np.zeros((30, 30), bool)
    near[10, 11] = True
    far = np.zeros((30, 30), bool)
    far[20, 25] = True
    assert region_similarity(truth, truth) == 1.0 and boundary_f_measure(truth, truth) == 1.0
    assert region_similarity(near, truth) == 0.0 and boundary_f_measure(near, truth) == 1.0  # within 1 pixel
    assert boundary_f_measure(far, truth) == 0.0


@settings(max_examples=60, deadline=None)
@given(arrays(bool, (24, 31)), arrays(bool, (24, 31)))
def test_boundary_f_matches_the_explicit_dilation(prediction, truth):
    assert boundary_f_measure(prediction, truth) == pytest.approx(_reference_f(prediction, truth), abs=1e-12)


def test_boundary_f_on_shifted_shapes_at_davis_size():
    truth = np.zeros((480, 854), bool)
    yy, xx = np.mgrid[0:480, 0:854]
    truth[(yy - 240) ** 2 / 150**2 + (xx - 400) ** 2 / 220**2 < 1] = True
    for shift in (0, 5, 12, 30):
        prediction = np.roll(truth, shift, axis=1)
        assert boundary_f_measure(prediction, truth) == pytest.approx(_reference_f(prediction, truth), abs=1e-12)


def test_statistics_on_three_frames():
    mean, recall, decay = statistics(np.array([1.0, 0.0, 0.5]))
    assert mean == pytest.approx(0.5) and recall == pytest.approx(1 / 3)
    # Bin edges round(linspace(1, 3, 5) + 1e-10) - 1 = [0, 1, 1, 2, 2]: first bin [1, 0], last bin [0.5].
    assert decay == pytest.approx(0.5 - 0.5)
    _, _, decay = statistics(np.array([0.9, 0.8, 0.3]))
    assert decay == pytest.approx(0.85 - 0.3)


def test_statistics_on_300_frames_official_wrap_and_exact():
    values = np.linspace(1.0, 0.0, 300)
    assert decay_wraps(300) and not decay_wraps(100)
    mean, recall, decay = statistics(values)
    assert mean == pytest.approx(0.5) and recall == pytest.approx(150 / 300)
    # The official uint8 edges are [0, 75, 150, 224, 43]: the last bin is empty, so its decay is NaN.
    assert math.isnan(decay)
    _, _, exact = statistics(values, official_decay=False)
    assert exact == pytest.approx(values[0:76].mean() - values[224:300].mean())


def test_statistics_ignore_nan_frames():
    mean, recall, _ = statistics(np.array([1.0, np.nan, 0.0, 1.0]))
    assert mean == pytest.approx(2 / 3) and recall == pytest.approx(2 / 4)  # as nanmean(x > 0.5) counts NaN as False
