"""Greyscale video: recognised from its frames, and a warning where the weights saw colour only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from qmra.cli import main
from qmra.inference.card import read_card
from qmra.inference.greyscale import greyscale_warning, is_greyscale, training_recipe
from qmra.inference.segmenter import Segmenter
from qmra.inference.settings import InferenceSettings
from qmra.model import QMRA
from qmra.training.checkpoints import save_run_checkpoint
from tests.tiny import TINY, tiny_checkpoint


def _colour(height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_frame_is_greyscale_when_its_channels_agree():
    colour = _colour()
    grey = np.repeat(np.asarray(Image.fromarray(colour).convert("L"))[..., None], 3, axis=2)
    assert not is_greyscale(colour) and is_greyscale(grey)
    noisy = np.clip(grey.astype(int) + np.random.default_rng(1).integers(-1, 2, grey.shape), 0, 255).astype(np.uint8)
    assert is_greyscale(noisy)  # a level apart, as video codecs leave grey
    stamped = np.full((480, 640, 3), 90, dtype=np.uint8)
    stamped[8:24, 8:120] = (255, 40, 40)  # a camera's red timestamp, 0.6 % of the frame
    assert is_greyscale(stamped)
    washed = (grey * 0.8 + colour * 0.2).astype(np.uint8)  # a fifth of the colour left: still colour
    assert not is_greyscale(washed)


def test_the_warning_needs_a_grey_frame_and_weights_trained_on_colour_only(tmp_path):
    grey = np.full((48, 64, 3), 90, dtype=np.uint8)
    colour_only = read_card(tiny_checkpoint(tmp_path / "colour.safetensors", {"training": {"train": {"grey_clips": 0.0}}}))
    older = read_card(tiny_checkpoint(tmp_path / "older.safetensors", {"training": {"train": {"lr": 1e-5}}}))
    with_grey = read_card(tiny_checkpoint(tmp_path / "grey.safetensors", {"training": {"train": {"grey_clips": 0.1}}}))
    unknown = read_card(tiny_checkpoint(tmp_path / "unknown.safetensors"))
    shipped_like = read_card(tiny_checkpoint(tmp_path / "card.safetensors",
                                             {"card": {"training": {"record": {"train": {"lr": 2e-4}}}}}))
    assert training_recipe(unknown) is None and training_recipe(None) is None
    assert training_recipe(shipped_like) == {"lr": 2e-4}
    for card in (colour_only, older, shipped_like):
        assert "the video is greyscale" in greyscale_warning(card, grey)
        assert greyscale_warning(card, _colour()) is None
    assert greyscale_warning(with_grey, grey) is None and greyscale_warning(unknown, grey) is None


def _folder(path, frame):
    path.mkdir()
    for index in range(3):
        Image.fromarray(np.roll(frame, 4 * index, axis=1)).save(path / f"{index}.png")
    return path


def test_a_greyscale_video_adapts_colour_only_weights_and_says_so(tmp_path, capsys):
    weights = tiny_checkpoint(tmp_path / "colour.safetensors", {"training": {"train": {"grey_clips": 0.0}}})
    grey = _folder(tmp_path / "grey", np.full((48, 64, 3), 100, dtype=np.uint8))
    colour = _folder(tmp_path / "colour", _colour())
    segment = ["segment", "--box", "8,8,40,40", "--weights", str(weights), "--quiet", "--grey-adapt", "3", "--out"]
    assert main([segment[0], str(grey), *segment[1:], str(tmp_path / "grey-out")]) == 0
    said = capsys.readouterr().err
    assert said.count("the video is greyscale") == 1 and "adapted to the frame with the boxes (3 steps)" in said
    assert main([segment[0], str(grey), *segment[1:-2], "0", "--out", str(tmp_path / "grey-off")]) == 0
    said = capsys.readouterr().err
    assert said.count("the video is greyscale") == 1 and "masks may spread" in said
    assert main([segment[0], str(colour), *segment[1:], str(tmp_path / "colour-out")]) == 0
    assert "greyscale" not in capsys.readouterr().err


@pytest.mark.parametrize("recipe, adapt, grey, steps", [
    ({"grey_clips": 0.0}, 0, True, 10),    # the rule
    ({"grey_clips": 0.0}, 0, False, 0),    # a colour video
    ({"grey_clips": 0.1}, 0, True, 0),     # weights that saw greyscale clips
    (None, 0, True, 0),                    # weights that do not say
    ({"grey_clips": 0.0}, 4, True, 4),     # --adapt given decides
])
def test_the_steps_a_run_adapts_for(tmp_path, recipe, adapt, grey, steps):
    weights = tiny_checkpoint(tmp_path / "w.safetensors", None if recipe is None else {"training": {"train": recipe}})
    segmenter = Segmenter.from_checkpoint(weights, settings=InferenceSettings(adapt_steps=adapt))
    frame = np.full((48, 64, 3), 100, dtype=np.uint8) if grey else _colour()
    session = segmenter.start([frame] * 2, prompts={1: (8, 8, 40, 40)})
    assert session.networks.steps_for(frame) == steps
    assert session.networks.steps_for(_colour() if grey else frame) == steps  # decided once per run
    list(session.propagate())
    assert bool(session.adaptations) == bool(steps)


def test_a_training_run_s_weights_record_their_recipe(tmp_path):
    model = QMRA(TINY)
    save_run_checkpoint(tmp_path, "last", model, torch.optim.Adam(model.parameters()), 7,
                        {"train": {"grey_clips": 0.1, "lr": 1e-5}})
    assert training_recipe(read_card(tmp_path / "last.safetensors")) == {"grey_clips": 0.1, "lr": 1e-5}
