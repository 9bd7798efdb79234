"""Which encoder parameters learn, and how fast, when training starts from ImageNet."""

import pytest
import torch

from qmra.model import QMRA, ModelConfig
from qmra.training.encoders import freeze_encoders, parameter_groups


def _trainable(trunk) -> set[str]:
    return {name for name, p in trunk.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("backbone,box", [("efficientnet-lite0", "box_conv.weight"), ("resnet18", "conv1.weight")])
def test_all_frozen_leaves_only_the_box_filter_and_the_new_layers(backbone, box):
    model = QMRA(ModelConfig(backbone=backbone, decoder_channels=32))
    assert freeze_encoders(model, "all") > 0
    assert _trainable(model.query_encoder) == set()  # RGB only: its conv1 holds no box filter
    assert _trainable(model.memory_encoder) == {box}
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith(("query_encoder.", "memory_encoder.")))


def test_early_freezes_the_stem_and_the_stages_to_stride_8_only():
    model = QMRA(ModelConfig(backbone="efficientnet-lite0", decoder_channels=32))
    freeze_encoders(model, "early")
    trunk = model.query_encoder
    last_early = trunk.stage_ends[2]
    trainable = _trainable(trunk)
    assert not any(name.startswith(("_conv_stem.", f"_blocks.{last_early}.")) for name in trainable)
    assert any(name.startswith(f"_blocks.{last_early + 1}.") for name in trainable)
    assert "box_conv.weight" in _trainable(model.memory_encoder)


def test_groups_give_the_encoders_their_fraction_and_the_box_filter_the_full_rate():
    model = QMRA(ModelConfig(backbone="efficientnet-lite0", decoder_channels=32))
    freeze_encoders(model, "early")
    groups = parameter_groups(model, 0.1)
    scales = {id(p): group["lr_scale"] for group in groups for p in group["params"]}
    assert scales[id(model.memory_encoder.box_conv.weight)] == 1.0
    assert scales[id(model.query_encoder._blocks[-1]._project_conv.weight)] == 0.1
    assert scales[id(model.track_decoder.parameters().__next__())] == 1.0
    assert len(scales) == sum(1 for p in model.parameters() if p.requires_grad)  # each trainable parameter once


def test_a_step_moves_encoders_at_their_fraction_of_the_rate():
    model = QMRA(ModelConfig(backbone="efficientnet-lite0", decoder_channels=32))
    optimizer = torch.optim.SGD(parameter_groups(model, 0.1), lr=1.0)
    for group in optimizer.param_groups:
        group["lr"] = 1.0 * group["lr_scale"]
    encoder, decoder = model.query_encoder._blocks[-1]._project_conv.weight, next(model.track_decoder.parameters())
    before = encoder.detach().clone(), decoder.detach().clone()
    for p in (encoder, decoder):
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert torch.allclose(before[0] - encoder.detach(), torch.full_like(encoder, 0.1))
    assert torch.allclose(before[1] - decoder.detach(), torch.ones_like(decoder))
