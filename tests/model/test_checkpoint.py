import json

import pytest
import torch
from safetensors.torch import save_file

from qmra.errors import WeightsError
from qmra.model import QMRA, ModelConfig
from qmra.model.checkpoint import load_model, read_checkpoint_config, save_checkpoint
from tests.model.torchvision_names import random_torchvision_state_dict

SMALL = ModelConfig(backbone="resnet18", key_channels=16, value_channels=32, decoder_channels=16)


def test_round_trip_keeps_config_weights_and_metadata(tmp_path):
    model = QMRA(SMALL)
    path = save_checkpoint(tmp_path / "run" / "best.safetensors", model, {"step": 120, "data": ["synthetic"]})
    loaded, metadata = load_model(path)
    assert loaded.config == SMALL and metadata == {"step": 120, "data": ["synthetic"]}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not loaded.training


def test_fp16_checkpoint_loads_as_float32(tmp_path):
    model = QMRA(SMALL)
    path = save_checkpoint(tmp_path / "half.safetensors", model, dtype=torch.float16)
    loaded, _ = load_model(path)
    weight = loaded.track_decoder.predict.weight
    assert weight.dtype == torch.float32
    assert torch.allclose(weight, model.track_decoder.predict.weight, atol=1e-3)


def test_config_in_a_json_file_beside_the_weights(tmp_path):
    model = QMRA(SMALL)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    (tmp_path / "w.json").write_text(json.dumps({"model": SMALL.to_dict(), "step": 7}))
    config, extra = read_checkpoint_config(tmp_path / "w.safetensors")
    assert config == SMALL and extra == {"step": 7}


def test_wrong_files_are_named(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_model(tmp_path / "junk.safetensors")
    torch.save(random_torchvision_state_dict("resnet18"), tmp_path / "resnet18.pth")
    with pytest.raises(WeightsError, match="not a qmra checkpoint .*torchvision resnet18 backbone"):
        load_model(tmp_path / "resnet18.pth")
    # Weights of one architecture under the config of another.
    other = QMRA(ModelConfig(**{**SMALL.to_dict(), "backbone": "resnet34"}))
    state = {k: v.contiguous() for k, v in other.state_dict().items()}
    save_file(state, str(tmp_path / "mixed.safetensors"), metadata={"format": "qmra", "config": json.dumps(SMALL.to_dict())})
    with pytest.raises(WeightsError, match="does not fit the QMRA resnet18 'full' model it names — unexpected: .*layer1.2"):
        load_model(tmp_path / "mixed.safetensors")
    save_file(state, str(tmp_path / "alien.safetensors"), metadata={"config": json.dumps({"backbone": "vgg"})})
    with pytest.raises(WeightsError, match="not one this qmra knows: unknown backbone 'vgg'"):
        load_model(tmp_path / "alien.safetensors")
