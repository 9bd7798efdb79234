"""The generated documentation is what its generator writes now: docs/cli.md from qmra's parser,
docs/model-card.md from the shipped weights' card. A flag or a card changed without regenerating
them fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import make_docs
from benchmarks.make_docs import COMMAND, GENERATED, REPO


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_generated_doc_is_up_to_date(path):
    committed = (REPO / path).read_text() if (REPO / path).is_file() else None
    assert committed == GENERATED[path](), f"{path} is out of date: run {COMMAND} to regenerate it"


def test_generated_docs_do_not_depend_on_the_terminal_or_the_machine():
    """Another terminal width and another working folder give the same text, which names no path of
    this machine."""
    script = ("import sys; from benchmarks.make_docs import GENERATED; "
              "sys.stdout.write(''.join(GENERATED[p]() for p in sorted(GENERATED)))")
    env = {**os.environ, "COLUMNS": "37", "PYTHONPATH": str(REPO)}
    other = subprocess.run([sys.executable, "-c", script], cwd=REPO / "docs", env=env, capture_output=True,
                           text=True, check=True).stdout
    assert other == "".join(GENERATED[p]() for p in sorted(GENERATED))
    for fragment in (str(REPO), str(REPO.parent), os.path.expanduser("~")):
        assert fragment not in other


def test_every_flag_and_every_card_field_is_rendered():
    from qmra.cli import build_parser

    cli = make_docs.render_cli()
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in cli, f"{sub.prog} {option} is missing from docs/cli.md"
    card = json.loads(make_docs.CARD.read_text())
    card_md = make_docs.render_model_card()
    for key in card["inference"]:
        assert f"`{key}`" in card_md
    assert "## Other fields" not in card_md, "the card has fields make_docs.py does not render by name yet"
    assert make_docs.render_model_card({**card, "new_field": 1}).count("`new_field`") == 1


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_docs, "REPO", tmp_path)
    assert make_docs.main(["--check"]) == 1
    assert f"run {COMMAND}" in capsys.readouterr().err
    assert make_docs.main([]) == 0
    assert make_docs.main(["--check"]) == 0
