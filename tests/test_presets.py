import argparse
from dataclasses import asdict

import pytest

from qmra.cli import build_parser
from qmra.errors import QmraError
from qmra.inference.card import shipped_card
from qmra.presets import PRESETS, get_preset


def _help(command: str) -> str:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(commands.choices[command].format_help().split())


def test_the_fast_preset_is_the_shipped_settings_at_a_smaller_working_size():
    # Chosen on validation as exactly that (docs/results-history.md); new weights recommending other
    # settings must have the fast preset chosen again for them.
    fast, shipped = asdict(PRESETS["fast"].settings), asdict(shipped_card().settings)
    differing = {name for name in fast if fast[name] != shipped[name]}
    assert differing == {"resolution"} and fast["resolution"] < shipped["resolution"]


def test_commands_that_run_given_weights_describe_a_preset_by_its_settings_alone():
    segment, bench = _help("segment"), _help("bench")
    for preset in PRESETS.values():
        assert preset.settings_text in segment and preset.settings_text in bench
        # The network stays the weights' in segment: naming the preset's network there would mislead.
        assert preset.network_text not in segment and preset.network_text in bench


def test_an_unknown_preset_names_the_known_ones():
    assert get_preset("fast") is PRESETS["fast"]
    with pytest.raises(QmraError, match="unknown preset 'quick'; choose from paper, fast"):
        get_preset("quick")
