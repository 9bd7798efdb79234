"""A weights file's card: read once, checked, and the one place its recommended settings are decided."""

from __future__ import annotations

import pytest

import qmra.inference.card as card_module
from qmra.cli import main
from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.errors import WeightsError
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.card import read_card
from qmra.model import QMRA
from qmra.model.checkpoint import save_checkpoint
from tests.tiny import TINY


def _weights(path, **metadata):
    return save_checkpoint(path, QMRA(TINY), metadata=metadata)


def test_the_recommended_settings_are_the_reference_ones_with_the_cards_values(tmp_path):
    card = read_card(_weights(tmp_path / "w.safetensors", inference={"resolution": 64, "mem_every": 5},
                              card={"name": "w", "test_scores": {"J&F-Mean": 0.5}, "note": "n"}))
    assert card.settings == InferenceSettings(resolution=64, mem_every=5)
    assert card.config == TINY and card.name == "w" and card.scores == {"test_scores": {"J&F-Mean": 0.5}}
    assert card.details == {"note": "n"}
    segmenter = Segmenter.from_checkpoint(card)
    assert segmenter.settings == card.settings and segmenter.card is card
    given = InferenceSettings(resolution=48)
    assert Segmenter.from_checkpoint(card.path, settings=given).settings == given  # given settings win, whole


def test_a_setting_this_qmra_does_not_know_is_an_error_not_dropped(tmp_path):
    with pytest.raises(WeightsError, match="does not know: speed_up"):
        read_card(_weights(tmp_path / "w.safetensors", inference={"resolution": 64, "speed_up": 2}))


def test_a_refused_value_names_the_file(tmp_path):
    with pytest.raises(WeightsError, match="w.safetensors.*resolution"):
        read_card(_weights(tmp_path / "w.safetensors", inference={"resolution": 8}))


def test_a_changed_file_is_read_again(tmp_path):
    path = _weights(tmp_path / "w.safetensors", inference={"resolution": 64})
    assert read_card(path) is read_card(path)
    _weights(path, inference={"resolution": 128})  # another size too: coarse file times cannot hide the change
    assert read_card(path).settings.resolution == 128


def test_qmra_segment_reads_the_weights_header_once(tmp_path, monkeypatch):
    path = _weights(tmp_path / "w.safetensors", inference={"resolution": 64})
    reads = []
    real = card_module.read_checkpoint_config
    monkeypatch.setattr(card_module, "read_checkpoint_config", lambda p: reads.append(p) or real(p))
    monkeypatch.setattr(card_module, "DEFAULT_WEIGHTS", path)
    card_module._read_card.cache_clear()
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=3, num_objects=1, seed=3))
    source = video.write_mp4(tmp_path / "clip.mp4")
    box = ",".join(f"{v:g}" for v in video.first_boxes()[1].as_tuple())
    assert main(["segment", str(source), "--box", box, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert len(reads) == 1


def test_weights_loaded_by_the_segmenter_are_readied_in_place_not_copied(tmp_path, monkeypatch):
    import torch

    import qmra.inference.segmenter as segmenter_module

    copies = []
    monkeypatch.setattr(segmenter_module, "deepcopy", lambda model: copies.append(model) or model)
    path = _weights(tmp_path / "w.safetensors", inference={"channels_last": True})  # the card asks for NHWC
    segmenter = Segmenter.from_checkpoint(path)
    conv = next(p for p in segmenter.model.parameters() if p.dim() == 4 and p.shape[-1] > 1 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not segmenter.model.training
    assert copies == []
    Segmenter(segmenter.model, settings=InferenceSettings(channels_last=False))  # a model given: NHWC -> NCHW on a copy
    assert len(copies) == 1


def test_qmra_model_describes_a_weights_file_from_its_card(tmp_path, capsys):
    path = _weights(tmp_path / "w.safetensors", inference={"resolution": 64, "previous_every": 2, "mem_every": 10},
                    card={"name": "my weights", "test_scores": {"J&F-Mean": 0.5, "by_seed": {"0": {
                        "J-Mean": 0.52, "F-Mean": 0.48}}}})
    assert main(["model", "--weights", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"my weights: {path} (")
    # mem_every 10 is the reference value: only what differs from it is listed, by flag, in the flags' order.
    assert lines[1] == "recommends, beside qmra's reference settings: --previous-every (every 2nd frame), --resolution (64 px)"
    assert lines[2] == "test J&F 50.0 (J-Mean 52.0, F-Mean 48.0), recorded on its card"
    assert lines[3] == f"QMRA backbone={TINY.backbone} variant={TINY.variant}"
    assert main(["model", "--weights", str(_weights(tmp_path / "bare.safetensors"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a qmra checkpoint without a card: ") and lines[1].endswith(": nothing")
