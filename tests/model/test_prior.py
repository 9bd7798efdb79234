import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qmra.model.prior import mask_prior, rectangle_prior


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
