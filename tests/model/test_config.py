import pytest

from qmra.errors import ConfigError
from qmra.model import BACKBONES, VARIANTS, ModelConfig


def test_defaults_are_the_papers():
    config = ModelConfig()
    assert (config.backbone, config.variant) == ("resnet50", "full")
    assert (config.key_channels, config.value_channels, config.decoder_channels) == (128, 512, 256)
    assert config.freeze_batchnorm


@pytest.mark.parametrize("field,value", [("backbone", "resnet101"), ("variant", "w/o EF"), ("key_channels", 0),
                                         ("key_value_kernel_size", 5), ("prior_threshold", 1.0)])
def test_bad_settings_are_refused_with_the_choices(field, value):
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        ModelConfig(**{field: value})


def test_dict_round_trip_and_unknown_keys():
    config = ModelConfig(backbone="resnet18", variant="no-bca", decoder_channels=64)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="colour"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_variant_flags_describe_table_3():
    flags = {v: ModelConfig(variant=v) for v in VARIANTS}
    assert not flags["1stage"].two_stage and not flags["1stage"].uses_crm
    assert not flags["2stage-noalign"].stage1_predicts_box
    assert not flags["2stage-nosiam"].siamese
    assert not flags["no-qma"].uses_memory_read and not flags["no-qma"].uses_bca
    assert flags["no-bca"].uses_memory_read and not flags["no-bca"].uses_bca
    assert not flags["no-crm"].uses_crm
    assert flags["crm-nocoord"].uses_crm and not flags["crm-nocoord"].crm_coordinates
    reusable = {v for v, c in flags.items() if c.stage2_encoding_is_memory}
    assert reusable == {"full", "no-qma", "no-bca", "no-crm", "crm-nocoord"}
    assert set(BACKBONES) == {"resnet18", "resnet34", "resnet50"}
