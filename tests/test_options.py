"""Options are declared once, on their dataclass field, and the commands' flags come from there."""

import argparse
import dataclasses

import pytest

from qmra.cli import build_parser, glue_negative_values
from qmra.inference.settings import InferenceSettings
from qmra.model import ModelConfig
from qmra.options import add_options, apply_options, declared_options, flag_of, from_options, option
from qmra.training.config import TrainConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize("command", ["segment", "eval", "demo", "bench"])
def test_every_inference_option_is_a_flag_of_every_command_that_segments(command):
    flags = _flags(_subparser(command))
    assert {flag_of(f, o) for f, o in declared_options(InferenceSettings)} <= flags
    assert "--threads" in flags and "--adapt" in flags and "--no-fold-crm" in flags


def test_training_flags_come_from_the_train_and_model_configs():
    flags = _flags(_subparser("train"))
    declared = {flag_of(f, o) for cls in (TrainConfig, ModelConfig) for f, o in declared_options(cls)}
    assert declared <= flags and {"--lr", "--no-bf16", "--time-budget", "--backbone", "--decoder-channels"} <= declared
    args = build_parser().parse_args(["train", "--data", "synthetic", "--out", "r", "--lr", "3e-4", "--no-bf16",
                                      "--backbone", "resnet18"])
    config, model = from_options(args, TrainConfig), from_options(args, ModelConfig)
    assert config.lr == 3e-4 and config.bf16 is False and config.steps == TrainConfig().steps
    assert model.backbone == "resnet18" and model.decoder_channels == ModelConfig().decoder_channels


def test_flags_not_given_keep_the_base_and_given_ones_replace_it():
    base = InferenceSettings(resolution=320, adapt_steps=10)  # e.g. what the weights recommend
    parse = _subparser("segment").parse_args
    kept = apply_options(parse(["v.mp4", "--box", "1,1,5,5", "--out", "o"]), base)
    assert kept == base
    changed = apply_options(parse(["v.mp4", "--box", "1,1,5,5", "--out", "o", "--resolution", "native", "--adapt", "0",
                                   "--no-pipeline", "--threads", "1", "--memory-top-k", "20"]), base)
    assert (changed.resolution, changed.adapt_steps, changed.pipeline, changed.threads) == (None, 0, False, 1)
    assert changed.memory_top_k == 20
    paper = apply_options(parse(["v.mp4", "--box", "1,1,5,5", "--out", "o", "--memory-top-k", "ALL"]), changed)
    assert paper.memory_top_k is None


def test_a_switch_that_works_both_ways_takes_either_flag_and_otherwise_keeps_the_base():
    # NHWC became the default: --channels-last (written for the old default) still parses, and
    # --no-channels-last turns it off, also over a base that turned it on (the fast preset).
    parse = _subparser("segment").parse_args
    command = ["v.mp4", "--box", "1,1,5,5", "--out", "o"]
    assert InferenceSettings().channels_last is True
    assert apply_options(parse(command), InferenceSettings(channels_last=False)).channels_last is False
    assert apply_options(parse([*command, "--channels-last"]), InferenceSettings(channels_last=False)).channels_last is True
    assert apply_options(parse([*command, "--no-channels-last"]), InferenceSettings()).channels_last is False
    help_text = " ".join(_subparser("segment").format_help().split())
    assert "--channels-last, --no-channels-last" in help_text


def test_the_help_says_the_default_the_run_really_uses():
    from qmra.commands.common import shipped_recommendations

    text = _subparser("segment").format_help().replace("\n", " ")
    text = " ".join(text.split())
    recommended = shipped_recommendations()
    shown = {"resolution": lambda v: f"{v} px", "mem_every": lambda v: f"every {v}th frame",
             "memory_top_k": lambda v: f"top {v}", "adapt_steps": lambda v: f"{v} steps",
             "redetect": lambda v: "on"}  # a switch both ways (--redetect, --no-redetect)
    for name, words in shown.items():
        if recommended.get(name):  # the value the shipped weights really use, in words, in its section
            assert f"default: {words(recommended[name])} with the shipped weights" in text
    assert "frames at their own size" not in text
    assert "default: 16 frames" in text  # --max-memory-frames, from the field
    sections = [line for line in _subparser("segment").format_help().splitlines() if line and not line.startswith(" ")]
    assert [s for s in sections if s.endswith(":")][-5:] == ["input and output:", "prompts:", "network:",
                                                             "accuracy switches:", "speed switches:"]


def test_a_new_option_is_one_field():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        speed: int = dataclasses.field(default=3, metadata=option("how fast", metavar="N"))
        quiet: bool = dataclasses.field(default=False, metadata=option("say nothing"))
        loud: bool = dataclasses.field(default=True, metadata=option("say everything"))
        hidden: int = 7

    parser = argparse.ArgumentParser()
    add_options(parser, Settings)
    assert _flags(parser) == {"-h", "--help", "--speed", "--quiet", "--no-loud"}
    assert "how fast; default: 3" in " ".join(parser.format_help().split())
    assert apply_options(parser.parse_args(["--speed", "5", "--quiet", "--no-loud"]), Settings()) == Settings(5, True, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--speed", "fast"])


def test_negative_values_need_no_equals_sign():
    assert glue_negative_values(["segment", "v.mp4", "--box", "-10,5,100,100", "--out", "o"]) == \
        ["segment", "v.mp4", "--box=-10,5,100,100", "--out", "o"]
    assert glue_negative_values(["--box", "1,2,3,4", "--", "-5"]) == ["--box", "1,2,3,4", "--", "-5"]


def test_schedules_are_shown_with_ordinals():
    from qmra.inference.settings import ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 5, 10, 11, 12, 13, 21, 22, 23, 111)] == [
        "1st", "2nd", "3rd", "4th", "5th", "10th", "11th", "12th", "13th", "21st", "22nd", "23rd", "111th"]
