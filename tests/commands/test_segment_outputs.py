"""``qmra segment``'s inputs and outputs: truncated videos, output paths checked before any work,
and ``--resume`` after an interruption."""

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from qmra.cli import main
from qmra.data import SyntheticConfig, SyntheticVideo, box_from_mask, decode_rle, open_frames, read_labels
from qmra.data.video_writer import cutout_frames


@pytest.fixture(scope="module")
def video():
    return SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=8, num_objects=2, seed=3), name="clip")


@pytest.fixture(scope="module")
def mp4(video, tmp_path_factory):
    return video.write_mp4(tmp_path_factory.mktemp("v") / "clip.mp4", fps=10)


def _boxes(video):
    return [",".join(f"{v:g}" for v in box.as_tuple()) for _, box in sorted(video.first_boxes().items())]


def _segment(source, out, weights, *extra):
    return main(["segment", str(source), "--out", str(out), "--weights", str(weights), "--quiet", *extra])


def _one_error_line(capsys):
    """The one error line, after any warnings about the masks (the random test network's are poor)."""
    err = "".join(line for line in capsys.readouterr().err.splitlines(keepends=True) if not _mask_warning(line))
    assert err.startswith("qmra: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _mask_warning(line: str) -> bool:
    return line.startswith("qmra: warning: object ") and " on frame " in line


# ------------------------------------------------------------------ truncated input


def test_a_truncated_video_fails_naming_the_frame_and_keeps_the_finished_frames(tmp_path, mp4, video, weights, capsys):
    import av

    with av.open(str(mp4)) as container:
        ends = sorted(p.pos + p.size for p in container.demux(container.streams.video[0]) if p.size)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[: (ends[4] + ends[5]) // 2])  # ends inside the 6th of 8 frames
    decodable = 0
    with pytest.raises(Exception):
        for _ in open_frames(cut):
            decodable += 1
    assert 0 < decodable < 8
    out = tmp_path / "out"
    code = _segment(cut, out, weights, *sum((["--box", b] for b in _boxes(video)), []), "--overlay",
                    str(tmp_path / "o.mp4"), "--rle", str(tmp_path / "r.json"), "--per-object")
    assert code == 2
    err = _one_error_line(capsys)
    assert (f"{cut}: decoding stopped at frame {decodable} of 8 (the file is truncated or corrupt: a frame's data is cut short); "
            f"the {decodable} finished frames are in {out}") in err
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(decodable)]
    assert all(read_labels(p).shape == (48, 64) for p in out.glob("*.png"))
    assert open_frames(tmp_path / "o.mp4").info.num_frames == decodable
    assert len(json.loads((tmp_path / "r.json").read_text())["frames"]) == decodable
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------ output paths


def _output_cases(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    a_file, out, x = tmp_path / "a-file", tmp_path / "out", tmp_path / "x.mp4"
    return [
        (["--out", str(a_file)], f"--out {a_file} is a file, not a folder"),
        (["--out", str(a_file / "masks")], f"--out {a_file / 'masks'}: {a_file} is a file, not a folder"),
        (["--overlay", str(tmp_path / "a-folder")], f"--overlay {tmp_path / 'a-folder'} is a folder; give a file name"),
        (["--rle", str(a_file / "r.json")], f"--rle {a_file / 'r.json'}: {a_file} is a file, not a folder"),
        (["--overlay", str(x), "--rle", str(x)], f"--overlay and --rle name the same file {x}"),
        (["--rle", str(out)], f"--rle {out} is where the --out folder {out} goes"),
        (["--overlay", str(tmp_path)], f"--overlay {tmp_path} is a folder"),
        (["--rle", str(out / "00001.png")], f"--rle {out / '00001.png'} would be taken for a mask in {out}"),
        (["--cutout", str(tmp_path / "cut.mp4")], f"--cutout {tmp_path / 'cut.mp4'}: give a .webm file (VP9 with "
         "transparency: plays in browsers) or a .mov file (ProRes 4444 with transparency: for video editors)"),
        (["--overlay", str(tmp_path / "v.webm"), "--cutout", str(tmp_path / "v.webm")],
         f"--overlay and --cutout name the same file {tmp_path / 'v.webm'}"),
        (["--overlay", str(x), "--redact", str(x)], f"--overlay and --redact name the same file {x}"),
        (["--redact", str(tmp_path / "r.webm")], f"--redact {tmp_path / 'r.webm'}: it is written as an H.264 mp4; give "
         "a file ending in .mp4"),
        (["--overlay", str(tmp_path / "o.avi")], f"--overlay {tmp_path / 'o.avi'}: it is written as an H.264 mp4"),
        (["--tracks", str(tmp_path / "t.json")],
         f"--tracks {tmp_path / 't.json'}: it is written as CSV; give a file ending in .csv"),
        (["--rle", str(x.with_suffix(".csv")), "--tracks", str(x.with_suffix(".csv"))],
         f"--rle and --tracks name the same file {x.with_suffix('.csv')}"),
        (["--redact", str(tmp_path / "a-folder")], f"--redact {tmp_path / 'a-folder'} is a folder; give a file name"),
        (["--redact-style", "black", "--redact-shape", "mask"],
         "--redact-style and --redact-shape only apply with --redact (the video with the objects hidden)"),
    ]


def test_output_paths_are_checked_before_the_weights_load(tmp_path, mp4, capsys):
    missing_weights = tmp_path / "never-read.safetensors"  # loading them would be a different error
    for extra, message in _output_cases(tmp_path):
        args = ["segment", str(mp4), "--box", "1,1,10,10", "--weights", str(missing_weights), "--quiet"]
        args += extra if extra[0] == "--out" else ["--out", str(tmp_path / "out"), *extra]
        assert main(args) == 2, message
        err = _one_error_line(capsys)
        assert message in err, (message, err)
    assert not (tmp_path / "out").exists()


def test_an_output_folder_without_write_permission_is_refused(tmp_path, mp4, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode))
    assert main(["segment", str(mp4), "--box", "1,1,10,10", "--out", str(locked / "new" / "masks"), "--quiet"]) == 2
    assert f"--out {locked / 'new' / 'masks'}: no permission to write in {locked}" in _one_error_line(capsys)


# ------------------------------------------------------------------ --resume


def _interrupt_after(monkeypatch, frames):
    """Ctrl-C as frame ``frames`` is about to be written."""
    from qmra.inference.outputs import ResultWriter

    original = ResultWriter.write

    def write_then_interrupt(self, result):
        if result.index == frames:
            raise KeyboardInterrupt
        original(self, result)

    monkeypatch.setattr(ResultWriter, "write", write_then_interrupt)


def _outputs(folder):
    """Every mask PNG's labels (per-object ones too), by path relative to ``folder``."""
    return {str(p.relative_to(folder)): read_labels(p) for p in sorted(folder.rglob("*.png"))}


def test_resume_after_an_interruption_gives_what_an_uninterrupted_run_gives(tmp_path, mp4, video, weights, monkeypatch, capsys):
    boxes = sum((["--box", b] for b in _boxes(video)), [])

    def run(name, *extra):
        folder = tmp_path / name
        return _segment(mp4, folder / "masks", weights, *boxes, "--mem-every", "2", "--per-object", "--overlay",
                        str(folder / "overlay.mp4"), "--rle", str(folder / "masks.json"), "--cutout",
                        str(folder / "cutout.mov"), "--redact", str(folder / "redacted.mp4"), "--tracks",
                        str(folder / "tracks.csv"), *extra)

    assert run("whole") == 0
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 5)
        assert run("resumed") == 130
    assert "the 5 finished frames are in" in capsys.readouterr().err
    masks = tmp_path / "resumed" / "masks"
    assert sorted(p.name for p in masks.glob("*.png")) == [f"{i:05d}.png" for i in range(5)]
    (masks / "2" / "00004.png").unlink()  # as if stopped between the label map and the per-object PNGs
    finished = {p.name: p.stat().st_ino for p in masks.glob("*.png")}

    with pytest.raises(SystemExit) as refused:
        run("resumed", "--overwrite", "--resume")
    assert refused.value.code == 2 and "--resume: not allowed with argument --overwrite" in capsys.readouterr().err
    assert run("resumed", "--resume") == 0
    assert {p.name: p.stat().st_ino for p in masks.glob("*.png") if p.name in finished} == finished  # not rewritten
    whole = _outputs(tmp_path / "whole" / "masks")
    resumed = _outputs(masks)
    assert sorted(resumed) == sorted(whole) and len(whole) == 8 * 3
    for name, labels in whole.items():
        assert np.array_equal(resumed[name], labels), name
    assert open_frames(tmp_path / "resumed" / "overlay.mp4").info.num_frames == 8
    cutout = list(cutout_frames(tmp_path / "resumed" / "cutout.mov"))  # the kept frames too, from their PNGs
    assert len(cutout) == 8 and all(((c[..., 3] > 127) == (read_labels(masks / f"{i:05d}.png") > 0)).mean() > 0.999
                                    for i, c in enumerate(cutout))
    # The kept frames hidden from their PNGs, with the same margins and held places: the same bytes.
    assert (tmp_path / "resumed" / "redacted.mp4").read_bytes() == (tmp_path / "whole" / "redacted.mp4").read_bytes()
    rle = json.loads((tmp_path / "resumed" / "masks.json").read_text())
    assert rle == json.loads((tmp_path / "whole" / "masks.json").read_text())
    assert np.array_equal(decode_rle(rle["frames"][3]["objects"]["2"]), whole["00003.png"] == 2)
    tracks = (tmp_path / "resumed" / "tracks.csv").read_text()
    assert tracks == (tmp_path / "whole" / "tracks.csv").read_text()  # the kept frames' rows from their PNGs
    rows = list(csv.DictReader(io.StringIO(tracks)))
    assert len(rows) == 8 * 2 and [(r["frame"], r["object"]) for r in rows[:3]] == [("0", "1"), ("0", "2"), ("1", "1")]
    for row in rows:
        mask = whole[f"{row['name']}.png"] == int(row["object"])
        box = box_from_mask(mask)
        assert (int(row["area"]), row["lost"]) == (int(mask.sum()), "0" if box is not None else "1"), row
        assert box is None or [int(row[k]) for k in ("x0", "y0", "x1", "y1")] == [int(v) for v in box.as_tuple()], row


def test_resume_refuses_results_of_other_boxes_and_runs_when_there_are_none(tmp_path, mp4, video, weights, monkeypatch, capsys):
    box1, box2 = _boxes(video)
    out = tmp_path / "out"
    assert _segment(mp4, out, weights, "--box", box1, "--resume") == 0  # nothing to resume: a plain run
    assert len(list(out.glob("*.png"))) == 8
    out = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        assert _segment(mp4, out, weights, "--box", box1) == 130
    capsys.readouterr()
    assert _segment(mp4, out, weights, "--box", box2, "--resume") == 2
    err = _one_error_line(capsys)
    assert f"{out / '00000.png'} differs from what this run computes for that frame" in err
    assert "continuing a run needs the source, boxes, weights and settings of the run that wrote it" in err
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(3)]  # nothing was written


def test_the_overlay_and_redacted_video_carry_the_sound_of_the_frames_segmented(tmp_path, weights, monkeypatch, capsys):
    from tests.data.test_audio import loudness, sound, video_with_sound

    source = video_with_sound(tmp_path / "talk.mov", "pcm_s16le")  # a camera's PCM: written as AAC

    def run(name, *extra):
        return _segment(source, tmp_path / name / "masks", weights, "--box", "10,10,40,40", "--frames", "5-14",
                        "--overlay", str(tmp_path / name / "overlay.mp4"), "--redact", str(tmp_path / name / "redacted.mp4"),
                        *extra)

    assert run("whole") == 0
    for name in ("overlay.mp4", "redacted.mp4"):
        samples, rate = sound(tmp_path / "whole" / name)  # source seconds 0.5 to 1.5: the tone from 1.0
        assert abs(samples.shape[1] / rate - 1.0) < 0.03, name
        assert loudness(samples, rate, 0.05, 0.45) < 0.01 < 0.3 < loudness(samples, rate, 0.55, 0.95), name
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 9)
        assert run("resumed") == 130
    samples, rate = sound(tmp_path / "resumed" / "overlay.mp4")  # the interrupted file ends with its last frame
    assert abs(samples.shape[1] / rate - 0.4) < 0.03
    assert run("resumed", "--resume") == 0
    for name in ("overlay.mp4", "redacted.mp4"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_frames_to_check_in_a_redacted_video_are_warnings_even_when_quiet(capsys):
    from qmra.commands.segment import say_redaction
    from qmra.data.redaction import RedactionReport

    report = RedactionReport(held={2: [7, 8]}, shown={2: [9, 10, 11]})
    say_redaction(report, Path("r.mp4"), quiet=True)
    printed, errors = capsys.readouterr()
    assert printed == "" and errors == ("qmra: warning: r.mp4: object 2: hidden where last seen on frames 7-8; not hidden "
                                        "on frames 9-11 (not found there); look at those frames before sharing it\n")
    say_redaction(RedactionReport(), Path("r.mp4"), quiet=False)
    assert capsys.readouterr() == ("r.mp4: every object hidden on every frame from its box on\n", "")
    say_redaction(RedactionReport(), Path("r.mp4"), quiet=True)
    assert capsys.readouterr() == ("", "")
