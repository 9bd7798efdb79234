import pytest
import torch

from qmra.model import ResNetTrunk
from tests.model.same_function import assert_same_function
from tests.model.torchvision_names import torchvision_resnet_shapes


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_parameter_names_and_shapes_are_torchvisions_up_to_layer3(name):
    ours = {k: tuple(v.shape) for k, v in ResNetTrunk(name).state_dict().items()}
    theirs = {k: s for k, s in torchvision_resnet_shapes(name).items() if not k.startswith(("layer4.", "fc."))}
    assert ours == theirs


@pytest.mark.parametrize("name,channels", [("resnet18", (64, 128, 256)), ("resnet50", (256, 512, 1024))])
def test_output_strides_4_8_16(name, channels):
    trunk = ResNetTrunk(name).eval()
    features = trunk(torch.randn(1, 3, 64, 96))
    assert features.r2.shape == (1, channels[0], 16, 24)
    assert features.r3.shape == (1, channels[1], 8, 12)
    assert features.r4.shape == (1, channels[2], 4, 6)


def test_four_channel_trunk_takes_a_box_map():
    trunk = ResNetTrunk("resnet18", in_channels=4)
    assert trunk.conv1.weight.shape == (64, 4, 7, 7)
    assert trunk(torch.randn(2, 4, 32, 32)).r4.shape == (2, 256, 2, 2)


def test_one_image_shared_by_several_inputs_equals_the_concatenated_batch():
    torch.manual_seed(0)
    trunk = ResNetTrunk("resnet18", in_channels=4).eval()
    image = torch.randn(1, 3, 64, 96)
    boxes = (torch.rand(3, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        shared = trunk.forward_shared_image(image, boxes)
        reference = trunk(torch.cat([image.expand(3, -1, -1, -1), boxes], dim=1))
    for name in ("r2", "r3", "r4"):
        torch.testing.assert_close(getattr(shared, name), getattr(reference, name), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="1×3×H×W image"):
        trunk.forward_shared_image(image.expand(2, -1, -1, -1), boxes)


def _conv_then_bn(trunk: ResNetTrunk, x: torch.Tensor) -> torch.Tensor:
    """The reference: every BatchNorm run as a layer of its own after its convolution."""
    out = trunk.maxpool(torch.relu(trunk.bn1(trunk.conv1(x))))
    for layer in (trunk.layer1, trunk.layer2, trunk.layer3):
        for block in layer:
            identity = out if block.downsample is None else block.downsample[1](block.downsample[0](out))
            y = torch.relu(block.bn1(block.conv1(out)))
            y = block.bn2(block.conv2(y))
            if hasattr(block, "bn3"):
                y = block.bn3(block.conv3(torch.relu(y)))
            out = torch.relu(y + identity)
    return out


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_batchnorm_folded_into_the_convolutions_computes_and_learns_as_conv_then_bn(name):
    torch.manual_seed(0)
    # float64: in float32 a ReLU or max-pool input within rounding of its kink can send a gradient elsewhere.
    trunk = ResNetTrunk(name, in_channels=4).double().eval()  # BN with running statistics: folded
    for bn in (m for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_(0, 0.5), bn.running_var.uniform_(0.5, 2)
        torch.nn.init.normal_(bn.weight, 1, 0.2), torch.nn.init.normal_(bn.bias, 0, 0.2)
    x = torch.randn(2, 4, 48, 64, dtype=torch.float64)
    weights = [trunk.conv1.weight, trunk.bn1.bias, trunk.layer2[0].downsample[0].weight, trunk.layer3[0].bn2.weight]
    assert_same_function(lambda: trunk(x).r4, lambda: _conv_then_bn(trunk, x), weights)
    with torch.no_grad():
        shared = trunk.forward_shared_image(x[:1, :3], x[:, 3:])
        expected = _conv_then_bn(trunk, torch.cat([x[:1, :3].expand(2, -1, -1, -1), x[:, 3:]], 1))
    torch.testing.assert_close(shared.r4, expected)
