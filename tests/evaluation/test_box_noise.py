import argparse

import numpy as np
import pytest

from qmra.data import DavisDataset, SyntheticConfig, SyntheticVideo
from qmra.data.boxes import Box, box_from_mask
from qmra.errors import ConfigError
from qmra.evaluation.box_noise import BoxNoise
from qmra.evaluation.protocol import first_prompts
from qmra.options import add_options, from_options

BOX = Box(10, 20, 30, 60)  # 20 wide, 40 high
FRAME = (100, 120)  # H, W


def test_tight_boxes_are_given_as_they_are():
    assert BoxNoise().tight and BoxNoise().apply(BOX, FRAME, "a/1") == BOX
    assert BoxNoise().record() == {} and BoxNoise().describe() == "tight boxes"


def test_a_margin_moves_each_side_by_its_share_of_the_box_and_stays_in_the_frame():
    assert BoxNoise(box_margin=0.1).apply(BOX, FRAME, "a/1") == Box(8, 16, 32, 64)
    assert BoxNoise(box_margin=-0.25).apply(BOX, FRAME, "a/1") == Box(15, 30, 25, 50)
    assert BoxNoise(box_margin=0.5).apply(BOX, FRAME, "a/1") == Box(0, 0, 40, 80)  # clipped at the top and left
    assert BoxNoise(box_margin=0.5).apply(Box(100, 60, 120, 100), FRAME, "a/1") == Box(90, 40, 120, 100)


def test_jitter_is_repeatable_per_object_and_seed_and_bounded():
    noise = BoxNoise(box_jitter=0.1)
    drawn = noise.apply(BOX, FRAME, "goat/1")
    assert drawn == BoxNoise(box_jitter=0.1).apply(BOX, FRAME, "goat/1")  # another run, the same box
    assert drawn != noise.apply(BOX, FRAME, "goat/2") and drawn != noise.apply(BOX, FRAME, "parkour/1")
    assert drawn != BoxNoise(box_jitter=0.1, box_seed=1).apply(BOX, FRAME, "goat/1")
    assert BoxNoise(box_margin=0, box_jitter=0.1).apply(BOX, FRAME, "goat/1") == drawn  # a whole-number margin too
    moves = np.abs(np.subtract(drawn.as_tuple(), BOX.as_tuple()))
    assert np.all(moves <= [2, 4, 2, 4]) and np.any(moves > 0)
    # Over many objects the sides move both ways, up to the bound.
    shifts = np.array([np.subtract(noise.apply(BOX, FRAME, f"s/{i}").as_tuple(), BOX.as_tuple()) for i in range(200)])
    assert shifts[:, 0].min() < -1.5 and shifts[:, 0].max() > 1.5 and np.abs(shifts[:, 1]).max() <= 4


def test_margin_and_jitter_add_up():
    both = BoxNoise(box_margin=0.1, box_jitter=0.05).apply(BOX, FRAME, "k")
    jitter = BoxNoise(box_jitter=0.05).apply(BOX, FRAME, "k")
    assert np.allclose(np.subtract(both.as_tuple(), jitter.as_tuple()), [-2, -4, 2, 4])


def test_boxes_that_could_vanish_are_refused():
    with pytest.raises(ConfigError, match="box_jitter must be at least 0"):
        BoxNoise(box_jitter=-0.1)
    with pytest.raises(ConfigError, match="no width"):
        BoxNoise(box_margin=-0.3, box_jitter=0.2)
    with pytest.raises(ConfigError, match="finite"):
        BoxNoise(box_margin=float("nan"))
    BoxNoise(box_margin=-0.2, box_jitter=0.25)  # the narrowest box keeps a tenth of each side


def test_the_command_line_errors_name_the_flags():
    parser = argparse.ArgumentParser()
    add_options(parser, BoxNoise)
    assert from_options(parser.parse_args(["--box-margin", "0.1"]), BoxNoise) == BoxNoise(box_margin=0.1)
    with pytest.raises(ConfigError, match="^--box-jitter must be at least 0"):
        from_options(parser.parse_args(["--box-jitter", "-1"]), BoxNoise)


def test_describe_and_record():
    noise = BoxNoise(box_margin=0.1, box_jitter=0.05, box_seed=3)
    assert noise.describe() == "tight boxes widened by 10 % a side, sides moved by up to 5 % (seed 3)"
    assert BoxNoise(box_margin=-0.05).describe() == "tight boxes narrowed by 5 % a side"
    assert noise.record() == {"box_margin": 0.1, "box_jitter": 0.05, "box_seed": 3}
    assert BoxNoise(**noise.record()) == noise
    masks = BoxNoise(first_masks=True)
    assert (masks.describe(), masks.record(), masks.protocol, noise.protocol) == (
        "first masks and tight boxes", {"first_masks": True}, "mask", "box")
    assert BoxNoise(**masks.record()) == masks


def test_the_protocol_gives_each_object_its_first_box_as_drawn(tmp_path):
    SyntheticVideo(SyntheticConfig(height=40, width=56, num_frames=3, num_objects=2, seed=1), name="alpha").write_davis(tmp_path)
    sequence = next(iter(DavisDataset(tmp_path)))
    labels = sequence.labels(0)
    noise = BoxNoise(box_margin=0.1, box_jitter=0.1)
    prompts = first_prompts(sequence, [1, 2], noise=noise)
    for object_id in (1, 2):
        prompt = prompts[object_id]
        assert prompt.frame == 0 and prompt.mask is None
        assert prompt.box == noise.apply(box_from_mask(labels == object_id), labels.shape, f"alpha/{object_id}")
        assert prompt.box != box_from_mask(labels == object_id)
    tight = first_prompts(sequence, [1])[1]
    assert (tight.frame, tight.box, tight.mask) == (0, box_from_mask(labels == 1), None)
    given = first_prompts(sequence, [1], noise=BoxNoise(first_masks=True))[1]
    assert given.box == tight.box and np.array_equal(given.mask, labels == 1)
