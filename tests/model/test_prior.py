import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from qmra.model.prior import GRID_CELLS, blob_cell, largest_blob, mask_prior, rectangle_prior


def test_rectangle_spans_all_foreground_blobs():
    prob = torch.zeros(1, 1, 6, 8)
    prob[0, 0, 1, 2] = 0.9
    prob[0, 0, 4, 6] = 0.7
    prob[0, 0, 5, 0] = 0.5  # not above the threshold
    rect = rectangle_prior(prob)
    expected = torch.zeros(1, 1, 6, 8)
    expected[0, 0, 1:5, 2:7] = 1
    assert torch.equal(rect, expected)


def test_no_foreground_gives_an_empty_prior():
    assert torch.count_nonzero(rectangle_prior(torch.full((2, 1, 4, 4), 0.2))) == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_rectangle_is_the_tight_box_of_the_thresholded_mask(height, width, seed):
    generator = torch.Generator().manual_seed(seed)
    prob = torch.rand(3, 1, height, width, generator=generator) ** 4
    rect = rectangle_prior(prob, 0.5).bool()
    for i in range(3):
        fg = prob[i, 0] > 0.5
        if not fg.any():
            assert not rect[i].any()
            continue
        ys, xs = fg.nonzero(as_tuple=True)
        expected = torch.zeros_like(fg)
        expected[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
        assert torch.equal(rect[i, 0], expected)


def test_mask_prior_thresholds():
    prob = torch.tensor([[[[0.2, 0.6], [0.5, 0.99]]]])
    assert torch.equal(mask_prior(prob), torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))


def _two_blobs() -> torch.Tensor:
    """A wide, faint blob (area 30, mass 30 × 0.55) and a small, confident one (area 12, mass 12 × 0.95) apart."""
    prob = torch.zeros(1, 1, 16, 24)
    prob[0, 0, 1:4, 1:11] = 0.55
    prob[0, 0, 10:14, 17:20] = 0.95
    return prob


def test_the_largest_blob_box_surrounds_the_blob_with_the_most_probability_not_the_most_pixels():
    prob = _two_blobs()
    prob[0, 0, 10:14, 17:20] = 0.6  # now the wide blob holds more probability (16.5 against 7.2)
    expected = torch.zeros(1, 1, 16, 24)
    expected[0, 0, 1:4, 1:11] = 1
    assert torch.equal(rectangle_prior(prob, box="largest-blob"), expected)
    prob[0, 0, 10:14, 17:20] = 0.95
    prob[0, 0, 1:4, 1:11] = 0.51  # 15.3 against 11.4: still the wide one
    assert torch.equal(rectangle_prior(prob, box="largest-blob"), expected)
    prob[0, 0, 1:4, 1:11] = 0.3  # below the threshold: only the small blob is left
    small = torch.zeros(1, 1, 16, 24)
    small[0, 0, 10:14, 17:20] = 1
    assert torch.equal(rectangle_prior(prob, box="largest-blob"), small)
    prob[0, 0, 1:4, 1:11] = 0.52
    prob[0, 0, 10:14, 17:22] = 0.95  # 20 pixels hold 19.0, the wider blob's 30 hold 15.6: the smaller one wins
    small[0, 0, 10:14, 17:22] = 1
    assert torch.equal(rectangle_prior(prob, box="largest-blob"), small)
    prob[0, 0, 10:14, 20:22] = 0.0
    # The paper's box spans both blobs whatever they hold.
    prob[0, 0, 1:4, 1:11] = 0.55
    assert rectangle_prior(prob)[0, 0, 1:14, 1:20].all()


def test_each_object_keeps_its_own_blob_and_an_empty_map_stays_empty():
    prob = torch.cat([_two_blobs(), _two_blobs().flip(-1), torch.zeros(1, 1, 16, 24)])
    prob[0, 0, 1:4, 1:11] = 0.9  # object 0: the wide blob wins (27 against 11.4)
    prob[1, 0, 1:4, 13:20] = 0.0  # object 1 (mirrored): its faint blob shrinks to 9 pixels (5.0): the confident one wins
    kept = largest_blob(prob > 0.5, prob, cell=1)
    assert kept[0, 0, 1:4, 1:11].all() and not kept[0, 0, 10:14, 17:20].any()
    assert kept[1, 0, 10:14, 4:7].all() and not kept[1, 0, 1:4, 20:23].any()
    assert not kept[2].any() and not rectangle_prior(prob, box="largest-blob")[2].any()


def test_parts_closer_than_a_cell_count_as_one_blob():
    prob = torch.zeros(1, 1, 16, 16)
    prob[0, 0, 2:10, 2:6] = 0.9
    prob[0, 0, 2:10, 7:9] = 0.6  # one pixel apart: separate pixel blobs, one blob on a 4-pixel grid
    assert torch.equal(largest_blob(prob > 0.5, prob, cell=1), (prob > 0.8))
    assert torch.equal(largest_blob(prob > 0.5, prob, cell=4), prob > 0.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_blobs_are_the_4_connected_components_scipy_finds(height, width, seed):
    """On a grid of single pixels, the kept pixels are exactly scipy's 4-connected component with
    the most probability (long winding blobs need many propagation rounds)."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((3, 1, height, width)), (0, 0, 1.2, 1.2))
    prob = torch.from_numpy((smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)).float()
    foreground = prob > 0.55
    kept = largest_blob(foreground, prob, cell=1)
    for b in range(3):
        labels, count = ndimage.label(foreground[b, 0].numpy())
        if count == 0:
            assert not kept[b].any()
            continue
        mass = ndimage.sum(prob[b, 0].numpy(), labels, index=np.arange(1, count + 1))
        expected = np.isin(labels, np.flatnonzero(mass >= mass.max()) + 1)
        assert np.array_equal(kept[b, 0].numpy(), expected)


def test_an_unknown_box_is_refused():
    with pytest.raises(ValueError, match="largest-blob"):
        rectangle_prior(torch.zeros(1, 1, 4, 4), box="biggest")


def test_the_blob_grid_keeps_stage1s_resolution_at_working_sizes_and_bounds_its_cells_on_large_frames():
    assert blob_cell(320, 569) == 4 and blob_cell(16, 24) == 4  # the working size the weights recommend
    for height, width in [(480, 854), (1080, 1920), (2160, 3840)]:
        cell = blob_cell(height, width)
        assert -(-max(height, width) // cell) <= GRID_CELLS and cell > 4
    # On a large frame, look-alikes a few pixels apart are one blob; far apart they stay two.
    prob = torch.zeros(1, 1, 1080, 1920)
    prob[0, 0, 100:400, 100:400] = 0.9
    prob[0, 0, 100:400, 405:500] = 0.8  # 5 pixels away: within a 12-pixel cell
    prob[0, 0, 700:1000, 1500:1900] = 0.6  # far away, more pixels but less probability than both
    kept = largest_blob(prob > 0.5, prob)
    assert kept[0, 0, 100:400, 100:500].sum() == (prob[0, 0, 100:400, 100:500] > 0.5).sum()
    assert not kept[0, 0, 700:1000].any()
