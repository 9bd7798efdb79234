import pytest
import torch

from qmra.errors import ConfigError
from qmra.model import QMRA, ModelConfig, Padding, QMRALoss
from qmra.model.box_fusion import BoxFusion
from qmra.model.checkpoint import load_model, save_checkpoint
from qmra.model.features import BackboneFeatures
from qmra.training.encoders import freeze_encoders, parameter_groups

SHARED = ModelConfig(backbone="resnet18", decoder_channels=16, memory_encoder="shared")


def _features(batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return BackboneFeatures(r4=torch.randn(batch, 32, 3, 4, generator=g), r3=torch.randn(batch, 16, 6, 8, generator=g),
                            r2=torch.randn(batch, 8, 12, 16, generator=g))


def _boxes():
    boxes = torch.zeros(2, 1, 48, 64)
    boxes[0, :, 4:20, 8:30] = 1
    boxes[1, :, 24:46, 30:60] = 1
    return boxes


def test_untrained_fusion_gives_the_encoders_features_for_every_object():
    features = _features()
    fused = BoxFusion((8, 16, 32))(features, _boxes())
    for name in ("r4", "r3", "r2"):
        assert getattr(fused, name).shape[0] == 2
        assert torch.equal(getattr(fused, name), getattr(features, name).expand_as(getattr(fused, name)))


def test_trained_fusion_tells_the_boxes_apart_at_every_scale():
    fusion = BoxFusion((8, 16, 32))
    with torch.no_grad():
        for parameter in fusion.parameters():
            parameter.normal_(0, 0.3)
    fused = fusion(_features(), _boxes())
    for name in ("r4", "r3", "r2"):
        first, second = getattr(fused, name)
        assert not torch.allclose(first, second)


def test_fusion_refuses_features_of_another_batch():
    with pytest.raises(ValueError, match="3 frames"):
        BoxFusion((8, 16, 32))(_features(batch=3), _boxes())


def test_shared_network_has_one_encoder_and_its_memory_encoding_joins_the_query_features():
    model = QMRA(SHARED).eval()
    assert model.memory_encoder is None and list(model.encoders()) == ["query_encoder"]
    assert not any(name.startswith("memory_encoder.") for name in model.state_dict())
    with torch.no_grad():
        for parameter in model.box_fusion.parameters():
            parameter.normal_(0, 0.1)
        prepared, _ = model.prepare(torch.rand(1, 3, 48, 64))
        query = model.encode_query(prepared)
        memory = model.encode_memory(prepared, _boxes())
    expected = model.box_fusion(query, _boxes())
    assert all(torch.equal(a, b) for a, b in zip(memory, expected))


def test_shared_network_encodes_each_frame_once(monkeypatch):
    model = QMRA(SHARED).eval()
    calls = []
    forward = model.query_encoder.forward
    monkeypatch.setattr(model.query_encoder, "forward", lambda x: calls.append(x.shape[0]) or forward(x))
    image = torch.rand(1, 3, 48, 64)
    prepared, padding = model.prepare(image)
    with torch.no_grad():
        entry, first = model.start(prepared, padding, _boxes())
        assert calls == [1]
        features = model.encode_query(prepared)
        output = model.predict(prepared, padding, _memory(entry), features)
        model.memory_entry(prepared, padding, model.tracked_box_maps(output), output)
    assert calls == [1, 1]  # stage 2 and the memory entry reuse the frame's one pass
    assert output.logits.shape == first.logits.shape == (2, 2, 48, 64)


def _memory(entry):
    from qmra.model import Memory

    return Memory.stack([entry])


def test_frozen_shared_encoder_gets_no_gradient_while_the_box_fusion_learns():
    model = QMRA(SHARED).train()
    freeze_encoders(model, "all")
    assert all(not p.requires_grad for p in model.query_encoder.parameters())
    g = torch.Generator().manual_seed(0)
    images, boxes = torch.rand(2, 2, 3, 48, 64, generator=g), _boxes()[:, None].expand(2, 2, 1, 48, 64).contiguous()
    mask = boxes[:, 0].clone()
    QMRALoss()(model(images, boxes, torch.rand(2, 3, 48, 64, generator=g)), mask, mask).total.backward()
    assert all(p.grad is None for p in model.query_encoder.parameters())
    assert all(p.grad is not None for p in model.box_fusion.parameters())
    # The zero-initialised last layers learn first; the layers before them follow once those move.
    fusion = model.box_fusion
    assert all(p.grad.abs().sum() > 0 for p in (fusion.r4_out.weight, fusion.r3.project.weight, fusion.r2.project.weight))
    grouped = {id(p) for group in parameter_groups(model, 0.1) for p in group["params"]}
    assert all(id(p) in grouped for p in model.box_fusion.parameters())


def test_shared_network_round_trips_through_a_checkpoint(tmp_path):
    model = QMRA(SHARED)
    with torch.no_grad():
        for parameter in model.box_fusion.parameters():
            parameter.normal_(0, 0.1)
    save_checkpoint(tmp_path / "w.safetensors", model)
    loaded, _ = load_model(tmp_path / "w.safetensors")
    assert loaded.config.memory_encoder == "shared"
    assert all(torch.equal(a, b) for a, b in zip(model.box_fusion.parameters(), loaded.box_fusion.parameters()))


def test_second_stage_of_its_own_cannot_share_the_query_encoder():
    with pytest.raises(ConfigError, match="2stage-nosiam"):
        ModelConfig(variant="2stage-nosiam", memory_encoder="shared")
