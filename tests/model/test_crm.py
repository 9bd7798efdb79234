import pytest
import torch

from qmra.model.crm import CascadedRefinementModule, coordinate_channels


def test_coordinate_channels_hold_exact_scaled_indices():
    coords = coordinate_channels(2, 3, 5, torch.device("cpu"), torch.float32)
    assert coords.shape == (2, 2, 3, 5)
    rows = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1).expand(3, 5)
    cols = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]).view(1, 5).expand(3, 5)
    assert torch.equal(coords[1, 0], rows)
    assert torch.equal(coords[1, 1], cols)
    single = coordinate_channels(1, 1, 4, torch.device("cpu"), torch.float32)
    assert torch.equal(single[0, 0], torch.zeros(1, 4))


def test_crm_shapes_and_that_coordinates_change_the_output():
    torch.manual_seed(0)
    with_coords = CascadedRefinementModule(8, 6, 4, 16, coordinates=True)
    without = CascadedRefinementModule(8, 6, 4, 16, coordinates=False)
    assert with_coords.feature_fusion.in_channels == 2 * 8 + 2
    assert without.feature_fusion.in_channels == 2 * 8
    f1, f2 = torch.randn(2, 8, 2, 3), torch.randn(2, 8, 2, 3)
    b, s = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48)
    r3, r2 = torch.randn(1, 6, 4, 6), torch.randn(1, 4, 8, 12)
    out = with_coords(f1, f2, b, s, r3, r2)
    assert out.shape == (2, 2, 32, 48)
    # The coordinate channels carry weight: zeroing their filters changes the result.
    with torch.no_grad():
        with_coords.feature_fusion.weight[:, -2:] = 0
    assert not torch.allclose(out, with_coords(f1, f2, b, s, r3, r2))


@pytest.mark.parametrize("coordinates", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_input_gives_the_same_refined_logits(coordinates, channels_last):
    # The two fusion convolutions and the decoder's first one are linear with nothing between them;
    # composed (biases and coordinates as a zero-padded bias map), borders included, they agree.
    torch.manual_seed(0)
    crm = CascadedRefinementModule(24, 10, 6, 8, coordinates).eval()
    inputs = [torch.randn(3, 24, 5, 7), torch.randn(3, 24, 5, 7), torch.rand(3, 1, 80, 112), torch.rand(3, 1, 80, 112),
              torch.randn(1, 10, 10, 14), torch.randn(3, 6, 20, 28)]
    if channels_last:
        crm = crm.to(memory_format=torch.channels_last)
        inputs = [t.contiguous(memory_format=torch.channels_last) for t in inputs]
    with torch.no_grad():
        folded = crm.fold()
        assert [tuple(w.shape) for w in folded.weights] == [(8, 24, 3, 3), (8, 24, 3, 3), (8, 2, 3, 3)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) == channels_last for w in folded.weights)
        reference = crm(*inputs)
        assert torch.allclose(crm(*inputs, folded=folded), reference, atol=1e-5)
        crm.prediction_fusion.bias.add_(1.0)  # a fold is of the weights it was made from
        assert not torch.allclose(crm(*inputs, folded=folded), crm(*inputs), atol=1e-3)
        assert torch.allclose(crm(*inputs, folded=crm.fold()), crm(*inputs), atol=1e-5)
