import json

import numpy as np
import pytest

from qmra.cli import main
from qmra.data import DavisDataset, SyntheticConfig, SyntheticVideo, read_labels, write_palette_png
from tests.tiny import write_youtube_vos_split


@pytest.fixture
def davis(tmp_path):
    for seed, name in ((1, "alpha"), (2, "beta")):
        SyntheticVideo(SyntheticConfig(height=40, width=56, num_frames=5, num_objects=2, seed=seed), name=name).write_davis(tmp_path / "davis")
    return tmp_path / "davis"


def test_score_existing_predictions(davis, tmp_path, capsys):
    results = tmp_path / "results"
    for sequence in DavisDataset(davis):
        for index, name in enumerate(sequence.frame_names):
            write_palette_png(results / sequence.name / f"{name}.png", sequence.labels(index))
    assert main(["eval", "--davis", str(davis), "--results", str(results), "--processes", "1"]) == 0
    out = capsys.readouterr().out
    assert "J-Mean" in out and "100.0" in out and "scored 4 object(s) in 2 sequence(s)" in out
    assert (results / "global_results-val.csv").read_text().splitlines()[1] == "1.000,1.000,1.000,0.000,1.000,1.000,0.000"
    assert (results / "per-sequence_results-val.csv").read_text().splitlines()[1:] == [
        "alpha_1,1.000,1.000", "alpha_2,1.000,1.000", "beta_1,1.000,1.000", "beta_2,1.000,1.000"]
    assert "lost: none of 4 object(s)" in out
    assert main(["eval", "--davis", str(davis), "--results", str(results), "--sequences", "beta", "--processes", "1"]) == 0


def test_objects_lost_to_the_end_are_named(davis, tmp_path, capsys):
    """The README's "lost" column (mean J under 0.1 over the last quarter of the frames) comes from
    the command it gives: an object whose mask is right at first and empty at the end is named,
    one right to the end is not."""
    results = tmp_path / "results"
    for sequence in DavisDataset(davis):
        for index, name in enumerate(sequence.frame_names):
            labels = sequence.labels(index)
            if sequence.name == "beta" and index >= 2:
                labels = np.where(labels == 2, 0, labels).astype(labels.dtype)  # beta's object 2 lost from frame 2
            write_palette_png(results / sequence.name / f"{name}.png", labels)
    assert main(["eval", "--davis", str(davis), "--results", str(results), "--processes", "1"]) == 0
    assert "lost: 1 of 4 object(s) (mean J under 0.1 over the last quarter of their frames): beta_2" in capsys.readouterr().out


def test_run_qmra_under_the_box_protocol_then_score(davis, tmp_path, weights, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--davis", str(davis), "--weights", str(weights), "--out", str(out), "--quiet", "--processes", "1"]) == 0
    printed = capsys.readouterr().out
    assert "frames/s for the model" in printed
    assert sorted(p.name for p in (out / "alpha").glob("*.png")) == [f"{i:05d}.png" for i in range(5)]
    assert read_labels(out / "alpha" / "00003.png").shape == (40, 56)
    speed = json.loads((out / "speed.json").read_text())
    assert speed["frames"] == 10 and speed["objects"] == 4 and speed["model_fps"] > 0
    assert (out / "global_results-val.csv").is_file()
    assert main(["eval", "--davis", str(davis), "--weights", str(weights), "--out", str(out), "--quiet"]) == 2
    assert "already holds predictions" in capsys.readouterr().err


def test_greyscale_sequences_adapt_colour_only_weights_and_are_named(davis, tmp_path, capsys):
    from PIL import Image

    from tests.tiny import tiny_checkpoint

    for frame in (davis / "JPEGImages" / "480p" / "beta").glob("*.jpg"):
        Image.open(frame).convert("L").save(frame)
    weights = tiny_checkpoint(tmp_path / "colour.safetensors", {"training": {"train": {"grey_clips": 0.0}}})
    out = tmp_path / "run"
    assert main(["eval", "--davis", str(davis), "--weights", str(weights), "--out", str(out), "--quiet", "--processes",
                 "1", "--grey-adapt", "2"]) == 0
    assert "note: 1 sequence(s) are greyscale" in capsys.readouterr().out
    assert json.loads((out / "speed.json").read_text())["greyscale_adapted"] == ["beta"]


def test_eval_errors(davis, tmp_path, capsys):
    results = tmp_path / "results"
    (results / "alpha").mkdir(parents=True)
    assert main(["eval", "--davis", str(davis), "--results", str(results), "--sequences", "alpha", "--processes", "1"]) == 2
    assert "sequence alpha frame 00001: prediction missing" in capsys.readouterr().err
    assert main(["eval", "--davis", str(davis), "--results", str(results), "--out", str(tmp_path / "x")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["eval", "--davis", str(davis)]) == 2
    assert "give --results DIR" in capsys.readouterr().err
    assert main(["eval", "--davis", str(davis), "--results", str(results), "--sequences", "gamma"]) == 2
    assert "unknown DAVIS sequence(s) in" in capsys.readouterr().err


def test_youtube_vos_submission_layout(tmp_path, weights, monkeypatch):
    root = write_youtube_vos_split(tmp_path / "valid", height=40, width=56)  # object 2 appears on the third frame
    out = tmp_path / "submission"
    assert main(["eval", "--youtube-vos", str(root), "--weights", str(weights), "--out", str(out), "--quiet"]) == 0
    written = sorted(p.name for p in (out / "Annotations" / "v1").glob("*.png"))
    assert written == ["00000.png", "00005.png", "00010.png", "00015.png"]
    assert 2 not in np.unique(read_labels(out / "Annotations" / "v1" / "00005.png"))
    # Boxes as people draw them reach the later-starting objects too.
    from qmra.inference import Segmenter

    given = {}
    start = Segmenter.start
    monkeypatch.setattr(Segmenter, "start", lambda self, source, prompts, **kw: given.setdefault(
        len(given), {prompt.object_id: prompt.box for prompt in prompts}) and start(self, source, prompts, **kw))
    for name, margin in (("tight", "0"), ("loose", "0.2")):
        assert main(["eval", "--youtube-vos", str(root), "--weights", str(weights), "--out", str(tmp_path / name),
                     "--quiet", "--box-margin", margin]) == 0
    tight, loose = given[0], given[1]
    assert set(tight) == set(loose) == {1, 2}
    for object_id in (1, 2):
        assert loose[object_id].area > tight[object_id].area


def test_resume_skips_complete_sequences_and_finishes_a_partial_one(davis, tmp_path, weights, capsys):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run = ["eval", "--davis", str(davis), "--weights", str(weights), "--quiet", "--processes", "1"]
    assert main([*run, "--out", str(whole)]) == 0
    assert main([*run, "--out", str(resumed)]) == 0
    for name in ("00003.png", "00004.png"):  # beta stopped after three frames
        (resumed / "beta" / name).unlink()
    kept = {str(p): p.stat().st_ino for p in resumed.rglob("*.png")}
    capsys.readouterr()
    assert main([*run, "--out", str(resumed), "--resume"]) == 0
    assert "skipped 1 sequence(s) already complete in" in capsys.readouterr().out
    assert {str(p): p.stat().st_ino for p in resumed.rglob("*.png") if str(p) in kept} == kept  # not rewritten
    for expected in sorted(whole.rglob("*.png")):
        assert np.array_equal(read_labels(resumed / expected.relative_to(whole)), read_labels(expected)), expected
    speed = json.loads((resumed / "speed.json").read_text())
    assert (speed["frames"], speed["sequences"], speed["skipped_sequences"]) == (5, 1, ["alpha"])
    # Everything complete: nothing runs, the earlier speed record stays.
    assert main([*run, "--out", str(resumed), "--resume"]) == 0
    assert json.loads((resumed / "speed.json").read_text()) == speed
    assert main(["eval", "--davis", str(davis), "--results", str(resumed), "--resume"]) == 2
    assert "--resume continues a run of qmra: it goes with --out DIR" in capsys.readouterr().err


def test_eval_out_is_checked_before_the_weights_load(davis, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    missing_weights = tmp_path / "never-read.safetensors"
    assert main(["eval", "--davis", str(davis), "--weights", str(missing_weights), "--out", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert err == f"qmra: error: --out {tmp_path / 'a-file'} is a file, not a folder\n"


def test_boxes_as_drawn_are_recorded_and_kept_on_resume(davis, tmp_path, weights, capsys):
    out = tmp_path / "loose"
    run = ["eval", "--davis", str(davis), "--weights", str(weights), "--quiet", "--processes", "1", "--out", str(out)]
    assert main([*run, "--box-margin", "0.2", "--box-jitter", "0.1", "--box-seed", "4"]) == 0
    assert "(tight boxes widened by 20 % a side, sides moved by up to 10 % (seed 4))" in capsys.readouterr().out
    speed = json.loads((out / "speed.json").read_text())
    assert (speed["box_margin"], speed["box_jitter"], speed["box_seed"]) == (0.2, 0.1, 4)
    # Resuming with other boxes would mix two protocols in one folder.
    assert main([*run, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: ") and "was predicted with tight boxes widened by 20 % a side" in err
    assert "not tight boxes" in err
    assert main([*run, "--resume", "--box-margin", "0.2", "--box-jitter", "0.1", "--box-seed", "4"]) == 0
    assert main(["eval", "--davis", str(davis), "--results", str(out), "--box-margin", "0.1"]) == 2
    assert "--box-margin sets the prompts qmra is given: it goes with --out DIR" in capsys.readouterr().err
    assert main([*run, "--overwrite", "--box-jitter", "-0.1"]) == 2
    assert capsys.readouterr().err == "qmra: error: --box-jitter must be at least 0, got -0.1\n"


def test_the_mask_protocol_gives_each_object_its_first_mask_and_is_recorded(davis, tmp_path, weights, capsys):
    out = tmp_path / "masks"
    run = ["eval", "--davis", str(davis), "--weights", str(weights), "--quiet", "--processes", "1", "--out", str(out)]
    assert main([*run, "--first-masks"]) == 0
    assert "under the mask protocol (first masks and tight boxes)" in capsys.readouterr().out
    assert json.loads((out / "speed.json").read_text())["first_masks"] is True
    for sequence in DavisDataset(davis):  # each object's first mask is its result there
        first = sequence.annotated_indices[0]
        assert np.array_equal(read_labels(out / sequence.name / f"{first:05d}.png"), sequence.labels(first))
    assert main([*run, "--resume"]) == 2
    assert "was predicted with first masks and tight boxes, not tight boxes" in capsys.readouterr().err
