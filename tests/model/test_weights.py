import pytest
import torch
from safetensors.torch import save_file

from qmra.errors import WeightsError
from qmra.model import QMRA, ModelConfig, read_state_dict
from tests.model.torchvision_names import random_torchvision_state_dict


def _assert_loaded(model: QMRA, state: dict[str, torch.Tensor]) -> None:
    for encoder_name, encoder in model.encoders().items():
        loaded = encoder.state_dict()
        for key, value in state.items():
            if key.startswith(("layer4.", "fc.")) or key.endswith("num_batches_tracked"):
                continue
            if key == "conv1.weight" and encoder.in_channels == 4:
                assert torch.equal(loaded[key][:, :3], value), encoder_name
                assert torch.count_nonzero(loaded[key][:, 3]) == 0, "the box-map filter must start at zero"
            else:
                assert torch.equal(loaded[key], value), (encoder_name, key)


@pytest.mark.parametrize("with_counter", [True, False])
def test_torchvision_checkpoint_file_loads_into_both_encoders(tmp_path, with_counter):
    state = random_torchvision_state_dict("resnet18", with_counter)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    model = QMRA(ModelConfig(backbone="resnet18"))
    report = model.load_backbone_weights(path)
    assert report.encoders == ("query_encoder", "memory_encoder")
    assert all(k.startswith(("layer4.", "fc.")) for k in report.ignored) and "fc.weight" in report.ignored
    _assert_loaded(model, state)


def test_resnet50_mapping_loads_into_all_three_encoders_of_nosiam():
    state = random_torchvision_state_dict("resnet50")
    model = QMRA(ModelConfig(backbone="resnet50", variant="2stage-nosiam"))
    report = model.load_backbone_weights(state)
    assert report.encoders == ("query_encoder", "memory_encoder", "prior_encoder")
    _assert_loaded(model, state)


def test_loaded_memory_encoder_ignores_the_box_map_at_first():
    model = QMRA(ModelConfig(backbone="resnet18")).eval()
    model.load_backbone_weights(random_torchvision_state_dict("resnet18"))
    image = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        query = model.encode_query(image).r4
        memory = model.encode_memory(image, torch.ones(1, 1, 32, 48)).r4
    assert torch.allclose(query, memory, atol=1e-5)


def test_wrapped_and_ddp_prefixed_safetensors_load(tmp_path):
    state = {f"module.{k}": v for k, v in random_torchvision_state_dict("resnet18", with_counter=False).items()}
    path = tmp_path / "backbone.safetensors"
    save_file(state, str(path))
    assert set(read_state_dict(path)) == {k.removeprefix("module.") for k in state}
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    QMRA(ModelConfig(backbone="resnet18")).load_backbone_weights(tmp_path / "wrapped.pth")


def test_another_depth_is_named_in_the_error():
    model = QMRA(ModelConfig(backbone="resnet50"))
    with pytest.raises(WeightsError, match="not resnet50 ImageNet weights; it looks like a file of resnet18"):
        model.load_backbone_weights(random_torchvision_state_dict("resnet18"))


def test_missing_unexpected_and_misshaped_keys_are_listed():
    model = QMRA(ModelConfig(backbone="resnet18"))
    state = random_torchvision_state_dict("resnet18")
    del state["layer2.0.conv1.weight"]
    state["head.weight"] = torch.zeros(3)
    state["layer1.0.bn1.bias"] = torch.zeros(65)
    with pytest.raises(WeightsError) as error:
        model.load_backbone_weights(state)
    message = str(error.value)
    assert "missing: layer2.0.conv1.weight" in message
    assert "unexpected: head.weight" in message
    assert "wrong shape: layer1.0.bn1.bias (65,) (expected (64,))" in message


def test_missing_corrupt_and_non_tensor_files(tmp_path):
    model = QMRA(ModelConfig(backbone="resnet18"))
    with pytest.raises(WeightsError, match="not found"):
        model.load_backbone_weights(tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x04 definitely not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        model.load_backbone_weights(corrupt)
    bad_safetensors = tmp_path / "bad.safetensors"
    bad_safetensors.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        model.load_backbone_weights(bad_safetensors)
    torch.save({"conv1.weight": "a string"}, tmp_path / "strings.pth")
    with pytest.raises(WeightsError, match="not a tensor"):
        model.load_backbone_weights(tmp_path / "strings.pth")


def test_pickled_code_is_never_run(tmp_path):
    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Payload()}, path)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        model = QMRA(ModelConfig(backbone="resnet18"))
        model.load_backbone_weights(path)
