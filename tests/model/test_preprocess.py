import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qmra.model import Padding, normalize_image, prepare_image


def test_padding_is_split_evenly_like_stm():
    padding = Padding.for_size(37, 48)
    assert (padding.top, padding.bottom, padding.left, padding.right) == (5, 6, 0, 0)
    assert (padding.padded_height, padding.padded_width) == (48, 48)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70))
def test_pad_then_crop_is_identity(height, width):
    x = torch.rand(2, 3, height, width)
    padding = Padding.for_size(height, width)
    padded = padding.pad(x)
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    assert torch.equal(padding.crop(padded), x)


def test_normalisation_and_mean_coloured_border():
    image = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 5, 7)
    assert torch.allclose(normalize_image(image), torch.zeros(1, 3, 5, 7), atol=1e-6)
    white = normalize_image(torch.ones(3, 2, 2))
    assert torch.allclose(white[:, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    prepared = prepare_image(torch.rand(1, 3, 20, 20), Padding.for_size(20, 20))
    assert prepared.shape == (1, 3, 32, 32)
    assert torch.count_nonzero(prepared[..., :6, :]) == 0  # the border is the mean colour


def test_normalisation_makes_no_tensor_from_its_constants(monkeypatch):
    """Per frame on a GPU, a tensor made from the constants is a copy to the device that waits for
    the work queued before it; the channels are normalised with the constants as scalars instead."""
    image = torch.rand(2, 3, 4, 6)
    expected = (image - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def refuse(*args, **kwargs):
        raise AssertionError("a tensor was made from constants")

    monkeypatch.setattr(torch.Tensor, "new_tensor", refuse)
    monkeypatch.setattr(torch, "tensor", refuse)
    monkeypatch.setattr(torch, "as_tensor", refuse)
    assert torch.equal(normalize_image(image), expected)
    channels_last = image.contiguous(memory_format=torch.channels_last)
    assert torch.equal(normalize_image(channels_last), expected)
