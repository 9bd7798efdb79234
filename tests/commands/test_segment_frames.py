"""``qmra segment --frames FIRST-LAST``: a part of a video, its frames named and numbered as in the whole."""

import json

import numpy as np
import pytest

from PIL import Image

from qmra.cli import main
from qmra.data import SyntheticConfig, SyntheticVideo, open_frames, read_labels
from qmra.data.video_writer import cutout_frames
from tests.commands.test_segment import _boxes, _segment


@pytest.fixture(scope="module")
def video():
    return SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=7, num_objects=2, seed=5), name="clip")


def _names(out):
    return sorted(p.stem for p in out.glob("*.png"))


def test_a_range_gives_what_the_video_cut_there_gives(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4")
    box1, box2 = _boxes(video)
    out, rle = tmp_path / "out", tmp_path / "masks.json"
    code = _segment(source, out, weights, "--box", box1, "--box", box2, "--frames", "2-4", "--rle", str(rle),
                    "--overlay", str(tmp_path / "overlay.mp4"))
    assert code == 0 and _names(out) == ["00002", "00003", "00004"]
    assert [(f["index"], f["name"]) for f in json.loads(rle.read_text())["frames"]] == [(2, "00002"), (3, "00003"),
                                                                                         (4, "00004")]
    assert open_frames(tmp_path / "overlay.mp4").info.num_frames == 3
    cut = tmp_path / "cut"  # the same decoded frames from 2 on, losslessly, the boxes on their first frame
    cut.mkdir()
    for index, frame in enumerate(open_frames(source).frames_from(2)):
        Image.fromarray(frame).save(cut / f"{index}.png")
    assert _segment(cut, tmp_path / "cut-out", weights, "--box", box1, "--box", box2) == 0
    for index in range(3):
        assert np.array_equal(read_labels(out / f"{index + 2:05d}.png"), read_labels(tmp_path / "cut-out" / f"{index}.png"))


def test_objects_boxed_before_the_range_are_followed_from_their_box(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4")
    boxes = [{"id": i, "frame": 0, "box": list(box.as_tuple())} for i, box in sorted(video.first_boxes().items())]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    assert _segment(source, tmp_path / "all", weights, "--boxes", str(tmp_path / "boxes.json")) == 0
    assert _segment(source, tmp_path / "part", weights, "--boxes", str(tmp_path / "boxes.json"), "--frames", "3-") == 0
    assert _names(tmp_path / "part") == [f"{i:05d}" for i in range(3, 7)]
    for index in range(3, 7):
        name = f"{index:05d}.png"
        assert np.array_equal(read_labels(tmp_path / "part" / name), read_labels(tmp_path / "all" / name))


def test_overwrite_replaces_every_earlier_frame_and_resume_continues_a_range(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    box = _boxes(video)[0]
    out = tmp_path / "out"
    assert _segment(source, out, weights, "--box", box) == 0
    assert _segment(source, out, weights, "--box", box, "--frames", "1-2", "--overwrite") == 0
    assert _names(out) == ["00001", "00002"]  # no frame of the earlier run is left beside the new ones
    assert _resumed(source, out, weights, capsys, "--box", box, "--frames", "1-4", "--resume") == (0, "frames 1-2")
    assert _names(out) == ["00001", "00002", "00003", "00004"]


def _resumed(source, out, weights, capsys, *extra):
    """The exit code, and the frames a resumed run says were already there."""
    code = main(["segment", str(source), "--out", str(out), "--weights", str(weights), *extra])
    err = capsys.readouterr().err
    return code, err.split("resuming: ")[1].split(" are")[0] if "resuming: " in err else err


@pytest.mark.parametrize("frames, message", [
    ("4-2", "expected FIRST-LAST with 0 <= FIRST <= LAST"),
    ("two-five", "expected FIRST-LAST frame numbers"),
    ("3", "expected FIRST-LAST with 0 <= FIRST <= LAST"),
])
def test_a_bad_range_is_one_line(tmp_path, video, weights, capsys, frames, message):
    source = video.write_mp4(tmp_path / "clip.mp4")
    with pytest.raises(SystemExit) as exited:  # argparse's own exit, with qmra's one line
        _segment(source, tmp_path / "out", weights, "--box", _boxes(video)[0], "--frames", frames)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: segment: argument --frames: ") and message in err and len(err.splitlines()) == 1


def test_a_box_after_the_range_is_refused_before_anything_is_replaced(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert _segment(source, out, weights, "--box", _boxes(video)[0]) == 0
    before = (out / "00003.png").read_bytes()
    (tmp_path / "late.json").write_text(json.dumps([{"id": 2, "frame": 5, "box": [2, 2, 30, 30]}]))
    assert _segment(source, out, weights, "--boxes", str(tmp_path / "late.json"), "--frames", "0-4", "--overwrite") == 2
    assert "object 2 is boxed on frame 5, after --frames 0-4" in capsys.readouterr().err
    assert (out / "00003.png").read_bytes() == before
    assert _segment(source, tmp_path / "past", weights, "--box", _boxes(video)[0], "--frames", "9-") == 2
    assert "frame 9 is past the end of the video (7 frames)" in capsys.readouterr().err
    assert not (tmp_path / "past").exists()


def _mpg(path, video):
    """An MPEG program stream of the video's 7 frames: its duration counts only 5 of them."""
    import av

    with av.open(str(path), "w", format="mpeg") as container:
        stream = container.add_stream("mpeg2video", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(7):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(video.image(index), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_a_range_past_a_count_estimated_short_is_segmented(tmp_path, video, weights):
    path = _mpg(tmp_path / "clip.mpg", video)
    info = open_frames(path).info
    assert info.estimated and info.num_frames < 7
    boxes = [{"id": 1, "frame": 6, "box": [2, 2, 30, 30]}]  # after the estimated end: still accepted
    (tmp_path / "late.json").write_text(json.dumps(boxes))
    assert _segment(path, tmp_path / "out", weights, "--boxes", str(tmp_path / "late.json"), "--frames", "5-") == 0
    assert _names(tmp_path / "out") == ["00005", "00006"]


def test_a_range_past_an_estimated_end_fails_and_leaves_no_folder(tmp_path, video, weights, capsys):
    path = _mpg(tmp_path / "clip.mpg", video)
    assert _segment(path, tmp_path / "out", weights, "--box", _boxes(video)[0], "--frames", "9-") == 2
    assert "start frame 9 is past the end of the video" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # the run failed before its first frame: no empty folder is left


# ------------------------------------------------------------------ --every N


def test_every_other_frame_gives_what_those_frames_alone_give(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4", fps=10)
    box1, box2 = _boxes(video)
    out, rle = tmp_path / "out", tmp_path / "masks.json"
    assert _segment(source, out, weights, "--box", box1, "--box", box2, "--frames", "1-", "--every", "2", "--rle", str(rle),
                    "--cutout", str(tmp_path / "cut.webm")) == 0
    assert _names(out) == ["00001", "00003", "00005"]  # the video's own frame numbers
    assert [f["index"] for f in json.loads(rle.read_text())["frames"]] == [1, 3, 5]
    assert len(list(cutout_frames(tmp_path / "cut.webm"))) == 3
    assert open_frames(tmp_path / "cut.webm").info.fps == 5.0  # the same time span: half the frame rate
    alone = tmp_path / "alone"  # the same decoded frames, losslessly, as a folder of their own
    alone.mkdir()
    frames = list(open_frames(source))
    for index in (1, 3, 5):
        Image.fromarray(frames[index]).save(alone / f"{index:05d}.png")
    assert _segment(alone, tmp_path / "alone-out", weights, "--box", box1, "--box", box2) == 0
    for name in ("00001.png", "00003.png", "00005.png"):
        assert np.array_equal(read_labels(out / name), read_labels(tmp_path / "alone-out" / name)), name


def test_every_refuses_a_box_it_skips_before_the_weights_load_and_resumes(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    (tmp_path / "late.json").write_text(json.dumps([{"id": 1, "frame": 0, "box": [2, 2, 30, 30]},
                                                    {"id": 2, "frame": 4, "box": [30, 10, 60, 40]}]))
    never = tmp_path / "never-read.safetensors"
    assert _segment(source, tmp_path / "out", never, "--boxes", str(tmp_path / "late.json"), "--every", "3") == 2
    assert "qmra: error: object 2 is boxed on frame 4, which --every 3 from frame 0 skips: box it on frame 3 or 6" in \
        capsys.readouterr().err
    out = tmp_path / "out"
    assert _segment(source, out, weights, "--boxes", str(tmp_path / "late.json"), "--every", "2", "--frames", "0-4") == 0
    assert _resumed(source, out, weights, capsys, "--boxes", str(tmp_path / "late.json"), "--every", "2",
                    "--resume") == (0, "frames 0-4 (one in 2)")
    assert _names(out) == ["00000", "00002", "00004", "00006"]
    assert _segment(source, tmp_path / "whole", weights, "--boxes", str(tmp_path / "late.json"), "--every", "2") == 0
    for name in _names(out):
        assert np.array_equal(read_labels(out / f"{name}.png"), read_labels(tmp_path / "whole" / f"{name}.png")), name


def test_every_other_frame_backwards_gives_what_those_frames_alone_give(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4")
    late = [{"id": 1, "frame": 4, "box": [2, 2, 30, 30]}]  # followed back to frames 2 and 0
    (tmp_path / "late.json").write_text(json.dumps(late))
    out = tmp_path / "out"
    assert _segment(source, out, weights, "--boxes", str(tmp_path / "late.json"), "--every", "2", "--backwards") == 0
    assert _names(out) == ["00000", "00002", "00004", "00006"]
    alone = tmp_path / "alone"
    alone.mkdir()
    for index, frame in enumerate(open_frames(source)):
        if index % 2 == 0:
            Image.fromarray(frame).save(alone / f"{index:05d}.png")
    (tmp_path / "late-alone.json").write_text(json.dumps([{**late[0], "frame": 2}]))  # frame 4 is the third of them
    assert _segment(alone, tmp_path / "alone-out", weights, "--boxes", str(tmp_path / "late-alone.json"), "--backwards") == 0
    for name in _names(out):
        assert np.array_equal(read_labels(out / f"{name}.png"), read_labels(tmp_path / "alone-out" / f"{name}.png")), name
    assert read_labels(out / "00000.png").any() or read_labels(out / "00002.png").any()  # the backward run's masks
