"""The rule that chooses the quality signals' thresholds (benchmarks/quality_thresholds.py)."""

import argparse
import json

from benchmarks.quality_thresholds import choose


def _row(j: float, fading: float) -> dict:
    return {"J": j, "growth": 1.0, "growing": False, "outside": 0.0, "fill": 0.3, "fading": fading, "jump": 0.0}


def test_of_thresholds_that_catch_as_many_bad_frames_the_one_with_fewest_false_alarms_wins(tmp_path, capsys):
    # Bad frames lose half their confidence: every fading threshold from 0.95 to 0.6 catches all five.
    # One good frame in 100 sits at 0.92: 0.95 fires on it (1 %, allowed), 0.9 does not.
    rows = [_row(0.2, 0.5)] * 5 + [_row(0.9, 0.92)] + [_row(0.9, 1.0)] * 99
    path = tmp_path / "frames.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    choose(argparse.Namespace(files=[str(path)]))
    lines = capsys.readouterr().out.splitlines()
    assert "fading: {'fading': 0.9}: fires on 5 of 5 frames with J < 0.5, 0.0% of 100 with J >= 0.8" in lines
    chosen = json.loads(lines[-1].removeprefix("chosen: "))
    assert chosen["fading"] == 0.9 and chosen["jump"] == 0.3
