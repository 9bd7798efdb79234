import pytest

from qmra.errors import ConfigError
from qmra.model import VARIANTS, ModelConfig


def test_the_default_network_is_the_papers():
    """Built from the defaults: ResNet-50 up to layer3 (1024 channels at stride 16), 1×1 projections
    to keys of 128 and values of 512 channels, 256-channel decoders, frozen BatchNorm."""
    import torch

    from qmra.model import QMRA

    with torch.device("meta"):
        model = QMRA()
    assert model.query_encoder.channels == (256, 512, 1024)
    for aggregation in (model.track_aggregation, model.segment_aggregation):
        key, value = aggregation.memory_projection.key, aggregation.memory_projection.value
        assert (key.in_channels, key.out_channels, key.kernel_size) == (1024, 128, (1, 1))
        assert (value.out_channels, value.kernel_size) == (512, (1, 1))
    assert model.track_decoder.input_conv.out_channels == model.segment_decoder.input_conv.out_channels == 256
    assert model.crm is not None and model.prior_encoder is None  # CRM on, siamese stage-2 encoder
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(p.requires_grad for m in norms for p in m.parameters())


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


def test_config_differences_name_the_options_that_make_the_given_network():
    from qmra.model.config import config_differences

    base = ModelConfig(backbone="efficientnet-lite2", memory_encoder="shared", decoder_channels=64)
    assert config_differences(base, base) == ""
    other = ModelConfig(backbone="efficientnet-lite2", decoder_channels=64, key_channels=256)
    assert config_differences(base, other) == "--memory-encoder shared, not own; key_channels 128, not 256"
