import pytest
import torch

from qmra.model import BACKBONES, QMRA, VARIANTS, Memory, ModelConfig, Padding
from qmra.model.prior import rectangle_prior


def _clip(batch=2, frames=2, height=37, width=53, seed=0):
    """Random memory frames with rectangular box maps, and a query frame."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, frames, 3, height, width, generator=g)
    boxes = torch.zeros(batch, frames, 1, height, width)
    for b in range(batch):
        for t in range(frames):
            top, left = 2 + 3 * b + t, 4 + 5 * b + 2 * t
            boxes[b, t, 0, top : top + height // 2, left : left + width // 2] = 1
    return images, boxes, torch.rand(batch, 3, height, width, generator=g)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_and_backbone_at_an_odd_size(backbone, variant):
    model = QMRA(ModelConfig(backbone=backbone, variant=variant)).eval()
    images, boxes, query = _clip(height=37, width=53)
    with torch.no_grad():
        out = model(images, boxes, query)
    assert out.logits.shape == out.mask_logits.shape == (2, 2, 37, 53)
    assert torch.isfinite(out.logits).all()
    if variant == "1stage":
        assert out.track_logits is None and out.refined_logits is None and out.query_encoding is None
        return
    assert out.track_logits.shape == (2, 2, 37, 53)
    assert out.query_prior.shape == (2, 1, 37, 53)
    assert out.track_target == ("mask" if variant == "2stage-noalign" else "box")
    assert (out.refined_logits is None) == (variant == "no-crm")
    assert out.query_encoding.r4.shape[-2:] == (3, 4)  # 48×64 padded, stride 16


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_trainable_parameter(variant):
    from qmra.model import QMRALoss

    model = QMRA(ModelConfig(backbone="resnet18", variant=variant, decoder_channels=32)).train()
    images, boxes, query = _clip(height=48, width=64)
    mask = torch.zeros(2, 1, 48, 64)
    mask[:, :, 10:30, 12:40] = 1
    box_map = mask.clone()
    parts = QMRALoss()(model(images, boxes, query), mask, box_map)
    parts.total.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    without = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert without == []


def test_unfrozen_batchnorm_trains_and_frozen_batchnorm_stays_fixed():
    model = QMRA(ModelConfig(backbone="resnet18", decoder_channels=16)).train()
    bn = model.query_encoder.bn1
    assert not bn.training and not bn.weight.requires_grad
    before = bn.running_mean.clone()
    model(*_clip(height=32, width=32))
    assert torch.equal(bn.running_mean, before)
    model.freeze_batchnorm(False)
    assert bn.training and bn.weight.requires_grad
    model(*_clip(height=32, width=32))
    assert not torch.equal(bn.running_mean, before)
    model.eval()
    assert not bn.training


def test_stage2_query_encoding_is_the_memory_encoding_of_query_and_prior():
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    images, boxes, query = _clip(batch=1, height=40, width=56)
    with torch.no_grad():
        out = model(images, boxes, query)
        prepared, padding = model.prepare(query)
        direct = model.encode_memory(prepared, padding.pad(out.query_prior))
    assert model.config.stage2_encoding_is_memory
    for ours, theirs in zip(out.query_encoding, direct):
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_query_prior_is_the_rectangle_of_the_stage1_box_map():
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    with torch.no_grad():
        out = model(*_clip(batch=1, height=40, width=56))
    fg = torch.softmax(out.track_logits, 1)[0, 1] > 0.5
    prior = out.query_prior[0, 0].bool()
    if fg.any():
        ys, xs = fg.nonzero(as_tuple=True)
        assert prior[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
        assert prior.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    else:
        assert not prior.any()


def test_stage2_box_around_the_largest_blob_is_what_stage2_sees():
    torch.manual_seed(4)  # random weights whose stage 1 fires in several blobs on this clip
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    images, boxes, query = _clip(batch=2, height=40, width=56)
    with torch.no_grad():
        memory = model.build_memory(images, boxes, Padding.for_size(40, 56))
        prepared, padding = model.prepare(query)
        paper = model.predict(prepared, padding, memory)
        blob = model.predict(prepared, padding, memory, stage2_box="largest-blob")
    stage1 = torch.softmax(blob.track_logits, 1)[:, 1:2]
    assert torch.equal(blob.track_logits, paper.track_logits)  # stage 1 is the same
    assert torch.equal(paper.query_prior, rectangle_prior(stage1))
    assert torch.equal(blob.query_prior, rectangle_prior(stage1, box="largest-blob"))
    assert blob.query_prior.sum() < paper.query_prior.sum()  # the blob's box is smaller here
    assert not torch.allclose(blob.mask_logits, paper.mask_logits)


def test_a_given_query_prior_replaces_the_prediction():
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    images, boxes, query = _clip(batch=1, height=32, width=48)
    prior = torch.zeros(1, 1, 32, 48)
    prior[..., 5:20, 10:30] = 1
    with torch.no_grad():
        out = model(images, boxes, query, query_prior=prior)
        other = model(images, boxes, query, query_prior=1 - prior)
    assert torch.equal(out.query_prior, prior)
    assert not torch.allclose(out.mask_logits, other.mask_logits)
    with pytest.raises(ValueError, match="query_prior"):
        model(images, boxes, query, query_prior=torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize("variant", ["full", "1stage", "no-qma"])
def test_per_frame_parts_equal_the_training_forward(variant):
    """Memory built frame by frame (as inference does) gives the forward's predictions."""
    model = QMRA(ModelConfig(backbone="resnet18", variant=variant)).eval()
    images, boxes, query = _clip(batch=1, frames=3, height=35, width=50)
    with torch.no_grad():
        expected = model(images, boxes, query)
        padding = Padding.for_size(35, 50)
        frames = []
        for t in range(3):
            prepared, _ = model.prepare(images[:, t])
            frames.append(model.memorize(model.encode_memory(prepared, padding.pad(boxes[:, t]))))
        prepared_query, _ = model.prepare(query)
        got = model.predict(prepared_query, padding, Memory.stack(frames))
    assert torch.allclose(got.logits, expected.logits, atol=1e-4)


def test_memory_of_features_predicts_as_memory_of_values():
    """On the matmul kernel a ResNet-18's memory keeps its 256 res4 channels, not 512 values, and the
    predictions are the same."""
    from qmra.model import ReadMode

    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    images, boxes, query = _clip(batch=2, frames=2, height=32, width=48)
    padding = Padding.for_size(32, 48)
    predictions = {}
    with torch.no_grad():
        prepared_query, _ = model.prepare(query[:1])
        for kernel in ("matmul", "sdpa"):
            read = ReadMode(kernel)
            frames = [model.memorize(model.encode_memory(model.prepare(images[:, t])[0], padding.pad(boxes[:, t])), read)
                      for t in range(2)]
            width = 256 if kernel == "matmul" else 512
            assert frames[0].track.value.shape[1] == frames[0].segment.value.shape[1] == width
            predictions[kernel] = model.predict(prepared_query, padding, Memory.stack(frames), read=read).logits
    assert torch.allclose(predictions["matmul"], predictions["sdpa"], atol=1e-4)


def test_one_query_encoding_shared_by_several_objects_equals_one_at_a_time():
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    images, boxes, query = _clip(batch=3, frames=2, height=32, width=48)
    images = images[:1].expand(3, -1, -1, -1, -1)  # one video, three objects (different boxes)
    padding = Padding.for_size(32, 48)
    with torch.no_grad():
        memory = model.build_memory(images, boxes, padding)
        prepared, _ = model.prepare(query[:1])
        features = model.encode_query(prepared)
        together = model.predict(prepared, padding, memory, query_features=features)
        for i in range(3):
            alone = model(images[i : i + 1], boxes[i : i + 1], query[:1])
            assert torch.allclose(together.logits[i : i + 1], alone.logits, atol=1e-4)
            assert torch.equal(together.query_prior[i : i + 1], alone.query_prior)


def test_memory_frames_in_any_order_give_the_same_prediction():
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    images, boxes, query = _clip(batch=1, frames=3, height=32, width=32)
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        a = model(images, boxes, query)
        b = model(images[:, order], boxes[:, order], query)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)


def test_bad_shapes_are_reported():
    model = QMRA(ModelConfig(backbone="resnet18"))
    images, boxes, query = _clip(batch=1, height=32, width=32)
    with pytest.raises(ValueError, match="memory_box_maps"):
        model(images, boxes[:, :, :, :16], query)
    with pytest.raises(ValueError, match="query_image"):
        model(images, boxes, query[..., :16])
    with pytest.raises(ValueError, match="multiples of 16"):
        model.encode_query(torch.rand(1, 3, 20, 32))
