"""qmra's J and F against an independent implementation: the PyPI package vos-benchmark, which
uses OpenCV's dilation and the same definitions (test extra)."""

import numpy as np
import pytest

from qmra.evaluation import boundary_f_measure, region_similarity

evaluator = pytest.importorskip("vos_benchmark.evaluator", reason="vos-benchmark (test extra) is not installed")


def _ours(predictions, truths, object_id):
    j = np.mean([region_similarity(p == object_id, t == object_id) for p, t in zip(predictions, truths)])
    f = np.mean([boundary_f_measure(p == object_id, t == object_id) for p, t in zip(predictions, truths)])
    return j, f


def _theirs(predictions, truths):
    reference = evaluator.Evaluator()
    for prediction, truth in zip(predictions, truths):
        reference.feed_frame(prediction, truth)
    j, f = reference.conclude()
    return {k: v / 100 for k, v in j.items()}, {k: v / 100 for k, v in f.items()}


def _blobs(rng, shape, count):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    labels = np.zeros(shape, np.uint8)
    for object_id in range(1, count + 1):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ry, rx = rng.uniform(3, shape[0] / 3), rng.uniform(3, shape[1] / 3)
        angle = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        labels[(u / rx) ** 2 + (v / ry) ** 2 < 1 + 0.3 * np.sin(5 * np.arctan2(v, u))] = object_id
    return labels


def test_random_noise_masks_agree():
    rng = np.random.default_rng(0)
    truths = [rng.integers(0, 3, (37, 53)).astype(np.uint8) for _ in range(6)]
    predictions = [np.where(rng.random((37, 53)) < 0.3, rng.integers(0, 3, (37, 53)), t).astype(np.uint8) for t in truths]
    j_ref, f_ref = _theirs(predictions, truths)
    for object_id in (1, 2):
        j, f = _ours(predictions, truths, object_id)
        assert abs(j - j_ref[object_id]) < 1e-6 and abs(f - f_ref[object_id]) < 1e-6


def test_real_shaped_masks_at_davis_size_agree():
    rng = np.random.default_rng(1)
    truths = [_blobs(rng, (480, 854), 3) for _ in range(4)]
    predictions = [np.roll(_blobs(rng, (480, 854), 3) if i == 3 else t, rng.integers(-12, 12), axis=i % 2) for i, t in enumerate(truths)]
    predictions[1][predictions[1] == 2] = 0  # an object lost in one frame
    j_ref, f_ref = _theirs(predictions, truths)
    for object_id in (1, 2, 3):
        j, f = _ours(predictions, truths, object_id)
        assert abs(j - j_ref[object_id]) < 1e-6 and abs(f - f_ref[object_id]) < 1e-6


def test_real_davis_masks_agree(davis_root):
    from qmra.data import DavisDataset

    sequence = DavisDataset(davis_root, sequences=["dog"]).sequence("dog")
    truths = [sequence.labels(i) for i in range(1, 30, 4)]
    predictions = [np.roll(t, shift, axis=1) for t, shift in zip(truths, (0, 3, 9, 20, -5, 40, 1, -15))]
    j_ref, f_ref = _theirs(predictions, truths)
    j, f = _ours(predictions, truths, 1)
    assert abs(j - j_ref[1]) < 1e-6 and abs(f - f_ref[1]) < 1e-6
