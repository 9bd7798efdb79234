import numpy as np

from qmra.inference.pieces import drop_small_pieces


def test_pieces_under_the_share_of_the_largest_go_and_the_rest_stay():
    labels = np.zeros((40, 60), np.uint8)
    labels[5:25, 5:25] = 1      # object 1: 400 pixels
    labels[30:35, 5:12] = 1     # 35 pixels: under 10 % of 400, dropped
    labels[2:9, 40:47] = 1      # 49 pixels: over 10 %, kept
    labels[25, 25] = 1          # touches the big piece through a corner: part of it
    labels[30:38, 40:58] = 2    # object 2: 144 pixels, one piece
    labels[38:40, 20:22] = 2    # 4 pixels: dropped
    out = drop_small_pieces(labels, 0.1)
    expected = labels.copy()
    expected[30:35, 5:12] = 0
    expected[38:40, 20:22] = 0
    assert np.array_equal(out, expected)
    assert labels[30, 5] == 1  # the input is left as it was
    largest_only = drop_small_pieces(labels, 1.0)
    assert (largest_only == 1).sum() == 401 and (largest_only == 2).sum() == 144


def test_share_zero_and_one_piece_change_nothing():
    labels = np.zeros((10, 10), np.uint8)
    labels[1:3, 1:3] = 3
    assert drop_small_pieces(labels, 0.0) is labels
    assert drop_small_pieces(labels, 0.5) is labels
    assert drop_small_pieces(np.zeros((4, 4), np.uint8), 0.5).sum() == 0


def test_a_frame_is_merged_without_the_small_pieces_when_asked():
    import torch

    from qmra.data.boxes import Box
    from qmra.inference.merge import merge_frame

    probability = torch.zeros(32, 48)
    probability[4:20, 4:20] = 0.9   # the object
    probability[24:27, 40:43] = 0.8  # a stray piece of 9 pixels
    frame = np.zeros((32, 48, 3), np.uint8)
    kept = merge_frame(0, "0", frame, {1: probability}, {1: Box(0, 0, 48, 32)})
    cleaned = merge_frame(0, "0", frame, {1: probability}, {1: Box(0, 0, 48, 32)}, min_piece=0.1)
    assert (kept.labels == 1).sum() == 256 + 9 and (cleaned.labels == 1).sum() == 256
    assert cleaned.lost == {1: False} and cleaned.confidence == kept.confidence
