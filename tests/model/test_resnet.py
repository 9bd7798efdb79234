import pytest
import torch

from qmra.model import ResNetTrunk
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
