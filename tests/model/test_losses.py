import math

import pytest
import torch

from qmra.model import QMRALoss, QMRAOutput, dice_loss, segmentation_loss

# Two pixels: object probabilities 3/4 and 1/2 (logits (0, ln 3) and (0, 0)); truth 1 and 0.
LOGITS = torch.tensor([[[[0.0, 0.0]], [[math.log(3.0), 0.0]]]])  # 1×2×1×2
TARGET = torch.tensor([[[[1.0, 0.0]]]])
CROSS_ENTROPY = (-math.log(3 / 4) - math.log(1 / 2)) / 2
# dice = 1 − (2·Σpg + 1) / (Σp + Σg + 1) = 1 − (2·0.75 + 1) / (1.25 + 1 + 1)
DICE = 1 - 2.5 / 3.25


def test_dice_and_cross_entropy_by_hand():
    assert dice_loss(LOGITS, TARGET).item() == pytest.approx(DICE, abs=1e-6)
    assert segmentation_loss(LOGITS, TARGET).item() == pytest.approx(CROSS_ENTROPY + 0.1 * DICE, abs=1e-6)
    assert segmentation_loss(LOGITS, TARGET[:, 0], dice_weight=0.5).item() == pytest.approx(CROSS_ENTROPY + 0.5 * DICE, abs=1e-6)


def test_dice_of_perfect_and_empty_predictions():
    sure = torch.tensor([[[[-20.0, 20.0]], [[20.0, -20.0]]]])  # object prob ≈ 1, 0
    assert dice_loss(sure, torch.tensor([[[[1.0, 0.0]]]])).item() == pytest.approx(0.0, abs=1e-6)
    nothing = torch.tensor([[[[20.0, 20.0]], [[-20.0, -20.0]]]])
    assert dice_loss(nothing, torch.zeros(1, 1, 1, 2)).item() == pytest.approx(0.0, abs=1e-6)


def test_total_loss_sums_the_three_predictions_with_the_right_targets():
    box_map = torch.tensor([[[[1.0, 1.0]]]])
    other = torch.tensor([[[[0.0, 2.0]], [[1.0, -1.0]]]])
    output = QMRAOutput(mask_logits=LOGITS, track_logits=other, refined_logits=LOGITS.flip(-1), track_target="box")
    parts = QMRALoss()(output, TARGET, box_map)
    expected_track = segmentation_loss(other, box_map)
    expected_refined = segmentation_loss(LOGITS.flip(-1), TARGET)
    assert parts.track.item() == pytest.approx(expected_track.item())
    assert parts.refined.item() == pytest.approx(expected_refined.item())
    assert parts.total.item() == pytest.approx(expected_track.item() + CROSS_ENTROPY + 0.1 * DICE + expected_refined.item(), abs=1e-6)
    # 2stage-noalign trains stage 1 against the mask; 1stage has a single term.
    noalign = QMRALoss()(QMRAOutput(mask_logits=LOGITS, track_logits=other, track_target="mask"), TARGET, box_map)
    assert noalign.track.item() == pytest.approx(segmentation_loss(other, TARGET).item())
    single = QMRALoss()(QMRAOutput(mask_logits=LOGITS), TARGET, box_map)
    assert single.total.item() == pytest.approx(CROSS_ENTROPY + 0.1 * DICE, abs=1e-6)
    assert set(single.detached()) == {"loss", "mask"}


def test_mismatched_target_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        segmentation_loss(LOGITS, torch.zeros(1, 1, 2, 2))
