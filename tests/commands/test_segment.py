import json

import numpy as np
import pytest
from PIL import Image

from qmra.cli import main
from qmra.data import SyntheticConfig, SyntheticVideo, decode_rle, open_frames, read_labels
from qmra.data.boxes import box_from_mask
from qmra.data.masks import write_binary_png, write_palette_png
from qmra.data.video_writer import cutout_frames
from qmra.model import QMRA
from qmra.model.checkpoint import save_checkpoint
from qmra.presets import PRESETS
from tests.tiny import TINY


@pytest.fixture(scope="module")
def video():
    return SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=2, seed=3), name="clip")


def _boxes(video):
    return [",".join(f"{v:g}" for v in box.as_tuple()) for _, box in sorted(video.first_boxes().items())]


def _segment(source, out, weights, *extra):
    return main(["segment", str(source), "--out", str(out), "--weights", str(weights), "--quiet", *extra])


def test_segment_an_mp4_with_every_output(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4", fps=10)
    box1, box2 = _boxes(video)
    out = tmp_path / "out"
    code = _segment(source, out, weights, "--box", box1, "--box", box2, "--overlay", str(tmp_path / "overlay.mp4"),
                    "--rle", str(tmp_path / "masks.json"), "--per-object", "--mem-every", "2", "--cutout",
                    str(tmp_path / "cutout.webm"), "--redact", str(tmp_path / "redacted.mp4"), "--redact-style", "black")
    assert code == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"{i:05d}.png" for i in range(6)]
    labels = read_labels(out / "00002.png")
    assert labels.shape == (48, 64) and set(np.unique(labels)) <= {0, 1, 2}
    assert Image.open(out / "00002.png").mode == "P"
    assert np.array_equal(np.asarray(Image.open(out / "2" / "00002.png")) > 0, labels == 2)
    overlay = open_frames(tmp_path / "overlay.mp4")
    assert (overlay.info.num_frames, overlay.info.width, overlay.info.height) == (6, 64, 48)
    rle = json.loads((tmp_path / "masks.json").read_text())
    assert len(rle["frames"]) == 6 and np.array_equal(decode_rle(rle["frames"][2]["objects"]["2"]), labels == 2)
    cutout = list(cutout_frames(tmp_path / "cutout.webm"))  # both objects opaque, the rest transparent
    assert len(cutout) == 6 and cutout[2].shape == (48, 64, 4)
    assert ((cutout[2][..., 3] > 127) == (labels > 0)).mean() > 0.999
    redacted = open_frames(tmp_path / "redacted.mp4")  # both objects black (tests/data/test_redaction.py: the rest)
    assert redacted.info.num_frames == 6
    hidden, shown = redacted.read(2).astype(int), open_frames(source).read(2).astype(int)
    assert hidden[labels > 0].mean() < 25 < shown[labels > 0].mean()


def test_segment_a_frame_folder_with_a_boxes_file(tmp_path, video, weights):
    video.write_davis(tmp_path / "davis")
    frames = tmp_path / "davis" / "JPEGImages" / "480p" / "clip"
    for index, path in enumerate(sorted(frames.glob("*.jpg"))):
        path.rename(frames / f"frame_{index * 10}.jpg")  # numeric order, not string order
    late = video.first_boxes()[2]
    boxes = [{"id": 4, "box": list(video.first_boxes()[1].as_tuple())}, {"id": 9, "frame": 2, "box": list(late.as_tuple())}]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    assert _segment(frames, out, weights, "--boxes", str(tmp_path / "boxes.json")) == 0
    names = sorted((p.stem for p in out.glob("*.png")), key=lambda n: int(n.split("_")[1]))
    assert names == [f"frame_{i * 10}" for i in range(6)]
    assert 9 not in np.unique(read_labels(out / "frame_10.png"))


def test_existing_results_are_kept_unless_overwrite(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    box = _boxes(video)[0]
    out = tmp_path / "out"
    assert _segment(source, out, weights, "--box", box) == 0
    before = (out / "00001.png").read_bytes()
    assert _segment(source, out, weights, "--box", box) == 2
    assert f"{out} already holds results (00000.png to 00005.png: 6 results); use --overwrite" in capsys.readouterr().err
    assert (out / "00001.png").read_bytes() == before
    assert _segment(source, out, weights, "--box", box, "--overwrite") == 0


def test_an_interrupted_run_keeps_what_finished(tmp_path, video, weights, monkeypatch, capsys):
    from qmra.inference.outputs import ResultWriter

    source = video.write_mp4(tmp_path / "clip.mp4")
    original = ResultWriter.write

    def write_then_interrupt(self, result):
        if result.index == 3:
            raise KeyboardInterrupt
        original(self, result)

    monkeypatch.setattr(ResultWriter, "write", write_then_interrupt)
    out = tmp_path / "out"
    code = _segment(source, out, weights, "--box", _boxes(video)[0], "--overlay", str(tmp_path / "o.mp4"),
                    "--rle", str(tmp_path / "r.json"))
    assert code == 130
    assert "the 3 finished frames are in" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert open_frames(tmp_path / "o.mp4").info.num_frames == 3
    assert len(json.loads((tmp_path / "r.json").read_text())["frames"]) == 3
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize("args,message", [
    (["--box", "70,0,90,10"], "lies outside the 64x48 image"),
    (["--box", "5,5,5,9"], "zero or negative area"),
    (["--box", "nan,0,4,4"], "not a finite number"),
    (["--box", "1,2,3"], "--box 1,2,3: a box is four numbers"),
    # Fractions of the frame's size (a YOLO export) as pixels would be an object lost at once.
    (["--box", "0.25,0.5,0.75,1"], "box (0.25, 0.5, 0.75, 1) lies inside the frame's first pixel: boxes are in pixels; if "
     "these are fractions of the frame's width and height, on this 64x48 video that box's corners are 16,24,48,48"),
])
def test_bad_boxes(tmp_path, video, weights, capsys, args, message):
    source = video.write_mp4(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "out", weights, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: ") and message in err and err.count("\n") == 1


def test_boxes_partly_outside_the_frame_are_clipped_with_one_warning(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    # "--box -10,..." without "=": argparse alone would take the value for a flag.
    assert _segment(source, tmp_path / "out", weights, "--box", "-10,5,30,60", "--box", "20,10,40,30") == 0
    err = capsys.readouterr().err
    assert err.count("qmra: warning:") - err.count(" on frame ") == 1  # warnings on frames: the random network's masks
    assert "object 1's box (-10, 5, 30, 60) reaches outside the 64x48 frame; clipped to (0, 5, 30, 48)" in err


def test_xywh_boxes_give_the_same_masks_as_the_same_box_in_xyxy(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "a", weights, "--box", "8,6,30,26") == 0
    assert _segment(source, tmp_path / "b", weights, "--box", "8,6,22,20", "--box-format", "xywh") == 0
    (tmp_path / "boxes.json").write_text('[{"id": 1, "box": [8, 6, 22, 20]}]')
    assert _segment(source, tmp_path / "c", weights, "--boxes", str(tmp_path / "boxes.json"), "--box-format", "xywh") == 0
    for name in sorted(p.name for p in (tmp_path / "a").glob("*.png")):
        expected = read_labels(tmp_path / "a" / name)
        assert np.array_equal(read_labels(tmp_path / "b" / name), expected)
        assert np.array_equal(read_labels(tmp_path / "c" / name), expected)


def test_masks_are_their_frames_result_and_the_next_frames_follow_their_tight_boxes(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    given = video.labels(2)
    write_palette_png(tmp_path / "first.png", given)
    boxes = [",".join(f"{v:g}" for v in box_from_mask(given == i).as_tuple()) for i in (1, 2)]
    # A mask not named after a frame is on the first frame segmented, as --box boxes are.
    assert _segment(source, tmp_path / "masks", weights, "--masks", str(tmp_path / "first.png"), "--frames", "2-") == 0
    assert _segment(source, tmp_path / "boxes", weights, "--box", boxes[0], "--box", boxes[1], "--frames", "2-") == 0
    names = sorted(p.name for p in (tmp_path / "boxes").glob("*.png"))
    assert names == [f"{i:05d}.png" for i in range(2, 6)]
    assert np.array_equal(read_labels(tmp_path / "masks" / names[0]), given)  # the given masks, exactly
    assert not np.array_equal(read_labels(tmp_path / "boxes" / names[0]), given)  # not what the boxes give
    for name in names[1:]:  # without adaptation the memory is the boxes' (QMRA encodes memory frames with boxes)
        assert np.array_equal(read_labels(tmp_path / "masks" / name), read_labels(tmp_path / "boxes" / name))
    write_palette_png(tmp_path / "small.png", video.labels(0)[:40])
    assert _segment(source, tmp_path / "out", weights, "--masks", str(tmp_path / "small.png")) == 2
    assert "qmra: error: the masks are 64x40 pixels but the video's frames are 64x48" in capsys.readouterr().err


def test_a_boxes_file_mixes_boxes_and_masks_and_a_mask_corrects_an_object_later(tmp_path, video, weights):
    source = video.write_mp4(tmp_path / "clip.mp4")
    (tmp_path / "prompts").mkdir()
    write_palette_png(tmp_path / "prompts" / "all.png", video.labels(0))
    later = video.labels(3) == 2
    write_binary_png(tmp_path / "prompts" / "two-at-3.png", later)
    box = [float(v) for v in box_from_mask(video.labels(0) == 1).as_tuple()]
    (tmp_path / "b.json").write_text(json.dumps([{"id": 1, "box": box}, {"id": 2, "mask": "prompts/all.png"},
                                                 {"id": 2, "frame": 3, "mask": "prompts/two-at-3.png"}]))
    assert _segment(source, tmp_path / "out", weights, "--boxes", str(tmp_path / "b.json")) == 0
    assert np.array_equal(read_labels(tmp_path / "out" / "00000.png") == 2, video.labels(0) == 2)  # relative to the file
    assert np.array_equal(read_labels(tmp_path / "out" / "00003.png") == 2, later)  # a binary mask: the object's


def test_a_wrong_xywh_box_is_refused(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "out", weights, "--box", "8,6,-5,20", "--box-format", "xywh") == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: --box 8,6,-5,20: box x,y,w,h = 8,6,-5,20 has zero or negative width")


@pytest.mark.parametrize("content,message", [
    ('[{"id": 0, "box": [1, 1, 5, 5]}]', "entry 1: object ids are integers 1..255, got 0"),
    ('[{"id": 1, "box": [1, 1, 5, 5]}, {"id": 1, "box": [2, 2, 6, 6]}]', "object id 1 is given twice on frame 0"),
    ('[{"id": 2, "frame": -1, "box": [1, 1, 5, 5]}]', "frame must be an integer >= 0"),
    ('[{"id": 2, "frame": 99, "box": [1, 1, 5, 5]}]', "past the end of the video"),
    ('{"id": 2}', "expected a non-empty JSON list"),
    ("[1, 2", "cannot read boxes file"),
    ('[{"id": 2, "box": [1, 1, 5, 5], "mask": "m.png"}]', "entry 1: expected an object with \"id\", a \"box\" or a \"mask\""),
    ('[{"id": 2, "mask": "none.png"}]', "entry 1: file not found"),
    ('[{"id": 4, "mask": "two.png"}]', "entry 1: two.png holds objects 1, 2, not object 4"),
    ('[{"id": 1, "mask": "two.png"}, {"id": 2, "frame": 2, "mask": "small.png"}]',
     "the masks are 64x40 pixels but the video's frames are 64x48"),
])
def test_bad_boxes_files(tmp_path, video, weights, capsys, content, message):
    source = video.write_mp4(tmp_path / "clip.mp4")
    write_palette_png(tmp_path / "two.png", video.labels(0))
    write_palette_png(tmp_path / "small.png", video.labels(2)[:40])
    (tmp_path / "b.json").write_text(content)
    assert _segment(source, tmp_path / "out", weights, "--boxes", str(tmp_path / "b.json")) == 2
    assert message in capsys.readouterr().err


def test_bad_sources_and_weights(tmp_path, video, weights, capsys):
    box = ["--box", "1,1,10,10"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "corrupt.mp4").write_bytes(b"not a video at all" * 20)
    (tmp_path / "clip.avi.txt").write_text("x")
    cases = [
        (tmp_path / "missing.mp4", weights, "no such file or folder"),
        (empty, weights, "no frames"),
        (tmp_path / "corrupt.mp4", weights, "cannot read video"),
        (tmp_path / "clip.avi.txt", weights, "unsupported input"),
        (video.write_mp4(tmp_path / "ok.mp4"), tmp_path / "nope.safetensors", "weights file not found"),
        (tmp_path / "ok.mp4", tmp_path / "clip.avi.txt", "not a qmra checkpoint"),
    ]
    for source, weight_file, message in cases:
        assert _segment(source, tmp_path / "out", weight_file, *box) == 2, message
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_speed_switches_on_the_command_line(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert _segment(source, out, weights, "--box", _boxes(video)[0], "--preset", "fast", "--resolution", "32",
                    "--no-pipeline") == 0
    assert read_labels(out / "00005.png").shape == (48, 64)  # full size although the network saw 43x32
    assert _segment(source, tmp_path / "o2", weights, "--box", _boxes(video)[0], "--resolution", "8") == 2
    assert "resolution must be an integer >= 32" in capsys.readouterr().err


def test_the_weights_recommended_resolution_applies_unless_overridden(tmp_path, video, monkeypatch):
    from qmra.inference import Segmenter

    recommending = save_checkpoint(tmp_path / "r.safetensors", QMRA(TINY), metadata={"inference": {"resolution": 40}})
    seen = []
    original = Segmenter.from_checkpoint
    monkeypatch.setattr(Segmenter, "from_checkpoint",
                        classmethod(lambda cls, *a, **k: seen.append(a[2].resolution) or original.__func__(cls, *a, **k)))
    source = video.write_mp4(tmp_path / "clip.mp4")
    box = _boxes(video)[0]
    assert _segment(source, tmp_path / "a", recommending, "--box", box) == 0
    assert _segment(source, tmp_path / "b", recommending, "--box", box, "--resolution", "native") == 0
    assert _segment(source, tmp_path / "c", recommending, "--box", box, "--resolution", "32") == 0
    assert _segment(source, tmp_path / "d", recommending, "--box", box, "--preset", "fast") == 0
    assert seen == [40, None, 32, PRESETS["fast"].settings.resolution] and seen[-1] != 40
    monkeypatch.undo()
    assert Segmenter.from_checkpoint(recommending).settings.resolution == 40
    assert read_labels(tmp_path / "a" / "00005.png").shape == (48, 64)


def test_a_lost_object_is_reported_and_fail_on_lost_exits_3(tmp_path, video, weights, capsys, monkeypatch):
    import qmra.inference.merge as merge_module
    import qmra.inference.session as session_module
    from qmra.inference.quality import QualityThresholds, QualityWatch

    real_label_map = merge_module.label_map

    def without_object_2(probabilities, object_ids):
        labels = real_label_map(probabilities, object_ids)
        return labels.masked_fill(labels == 2, 0)  # object 2's mask is empty on every frame

    monkeypatch.setattr(merge_module, "label_map", without_object_2)
    source = video.write_mp4(tmp_path / "clip.mp4")
    boxes = ["--box", "8,6,30,26", "--box", "34,20,60,44"]
    assert _segment(source, tmp_path / "a", weights, *boxes) == 0
    captured = capsys.readouterr()
    assert "qmra: warning: object 2 is lost on frame 0 (00000): its mask is empty" in captured.err
    assert "qmra: warning: lost 1 of 2 objects to the end: 2 from frame 0" in captured.err
    assert "--adapt-seed" not in captured.err  # no adaptation ran: no seed to change
    assert _segment(source, tmp_path / "b", weights, *boxes, "--fail-on-lost") == 3
    assert sorted(p.name for p in (tmp_path / "b").glob("*.png")) == sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    capsys.readouterr()
    assert _segment(source, tmp_path / "c", weights, *boxes, "--adapt", "1", "--adapt-seed", "4") == 0
    assert "to the end: 2 from frame 0; adaptation draws random views and its seed changes the result: another " \
           "--adapt-seed (e.g. 5) may keep the object" in capsys.readouterr().err


def test_the_last_line_counts_every_adaptation():
    from qmra.commands.segment import adaptation_summary
    from qmra.inference.adapt import AdaptationReport

    assert adaptation_summary({}) == ""
    assert adaptation_summary({0: AdaptationReport(15, 16.04, 1.0, 0.5)}) == \
        " (after adapting to the first frame: 15 steps, 16.0 s)"
    assert adaptation_summary({0: AdaptationReport(15, 16.0, 1.0, 0.5), 40: AdaptationReport(15, 15.5, 1.0, 0.4)}) == \
        " (after adapting to frames 0, 40, where objects start: 15 steps each, 31.5 s in all)"
    # An ensemble (or averaged adaptations): the copies adapted are counted, their time summed.
    assert adaptation_summary({0: AdaptationReport(20, 13.3, 1.0, 0.5, copies=3)}) == \
        " (after adapting to the first frame: 3 adaptations × 20 steps, 13.3 s)"


def test_corners_out_of_order_that_fit_as_a_size_suggest_xywh(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")  # 64x48
    assert _segment(source, tmp_path / "a", weights, "--box", "30,10,20,20") == 2
    assert capsys.readouterr().err.strip().endswith("has zero or negative area (x1 must exceed x0 and y1 exceed y0); "
                                                   "if these are x,y,width,height, add --box-format xywh")
    assert _segment(source, tmp_path / "a", weights, "--box", "50,10,20,20") == 2  # 50 + 20 > 64: not a size either
    assert "xywh" not in capsys.readouterr().err


def test_a_truncated_mp4_whose_index_is_at_the_end_says_so(tmp_path, video, weights, capsys):
    import av

    whole = tmp_path / "moov-last.mp4"
    with av.open(str(whole), "w") as container:  # the muxer's default: the index (moov) written last
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(video.num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(video.image(index), format="rgb24")))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    assert _segment(cut, tmp_path / "a", weights, "--box", _boxes(video)[0]) == 2
    assert capsys.readouterr().err.strip() == (
        f"qmra: error: cannot read video {cut}: the file is truncated (its index, written at the end, is missing)")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    assert _segment(junk, tmp_path / "b", weights, "--box", _boxes(video)[0]) == 2
    assert capsys.readouterr().err.strip() == f"qmra: error: cannot read video {junk}: it is not a video file (or it is damaged)"


def test_a_mask_that_jumps_to_a_distractor_is_reported_and_fail_on_doubt_exits_3(tmp_path, video, weights, capsys,
                                                                                   monkeypatch):
    import qmra.inference.merge as merge_module
    import qmra.inference.session as session_module
    from qmra.inference.quality import QualityThresholds, QualityWatch

    real_label_map = merge_module.label_map
    calls = []

    def forced(probabilities, object_ids):
        """Object 1's mask (the random network's replaced): a 10x10 square at the left on frames 0-1,
        the same square at the right from frame 2 on (it jumped to a look-alike)."""
        labels = real_label_map(probabilities, object_ids) * 0
        calls.append(1)
        if len(calls) >= 3:
            labels[10:20, 44:54] = 1
        else:
            labels[10:20, 10:20] = 1
        return labels

    monkeypatch.setattr(merge_module, "label_map", forced)
    # The random network's confidence sits near the fading threshold and tips with rounding: jump alone here.
    monkeypatch.setattr(session_module, "QualityWatch", lambda: QualityWatch(QualityThresholds(fill=None, fading=None)))
    source = video.write_mp4(tmp_path / "clip.mp4")
    box = _boxes(video)[0]
    assert _segment(source, tmp_path / "a", weights, "--box", box) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["qmra: warning: object 1 on frame 2 (00002): its mask jumped to another place: draw a tighter "
                        "box, or correct the object on that frame (qmra ui, or a second box in --boxes)"]
    calls.clear()
    assert _segment(source, tmp_path / "b", weights, "--box", box, "--fail-on-doubt") == 3
    calls.clear()
    assert main(["segment", str(source), "--out", str(tmp_path / "c"), "--weights", str(weights), "--box", box]) == 0
    assert "no object lost; doubtful masks: object 1 on 1 frame (jump 1)" in capsys.readouterr().out


def test_verbose_says_the_working_size_and_how_many_threads_and_why(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "a", weights, "--box", _boxes(video)[0], "--verbose", "--threads", "1") == 0
    err = capsys.readouterr().err
    assert "qmra: threads: 1 (as asked (--threads))" in err
    # 64x48 frames at the weights' own working size (native): seen as they are
    assert "qmra: working size: 64x48 frames are seen at 64x48 (" in err
    assert _segment(source, tmp_path / "c", weights, "--box", _boxes(video)[0], "--verbose", "--resolution", "96") == 0
    assert ("qmra: working size: 64x48 frames are seen at 128x96 (--resolution 96: scaled up, so that small objects "
            "cover more of the network's cells)") in capsys.readouterr().err
    assert _segment(source, tmp_path / "d", weights, "--box", _boxes(video)[0], "--verbose", "--resolution", "32") == 0
    assert ("qmra: working size: 64x48 frames are seen at 43x32 (--resolution 32; --resolution native sees them as they "
            "are: finer, and slower)") in capsys.readouterr().err
    assert _segment(source, tmp_path / "b", weights, "--box", _boxes(video)[0], "--verbose") == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qmra: threads: ")]
    assert len(said) == 1 and "cores usable" in said[0] and "runnable when it looked" in said[0]


def test_an_hdr_video_is_segmented_in_the_colours_players_show(tmp_path, video, weights, capsys):
    from benchmarks.look_changes import hevc_video

    frames = [video.image(index) for index in range(video.num_frames)]
    hdr = hevc_video(tmp_path / "phone.mp4", frames, "HLG", quality=10)
    sdr = hevc_video(tmp_path / "sdr.mp4", frames, "SDR", quality=10)
    box = _boxes(video)[0]
    assert _segment(hdr, tmp_path / "hdr", weights, "--box", box, "--verbose", "--overlay", str(tmp_path / "o.mp4")) == 0
    assert "qmra: colour: an HDR video (HLG, BT.2020): tone-mapped to SDR (BT.709)" in capsys.readouterr().err
    assert _segment(sdr, tmp_path / "sdr", weights, "--box", box, "--verbose") == 0
    assert "qmra: colour:" not in capsys.readouterr().err
    agree = [np.mean(read_labels(tmp_path / "hdr" / f"{i:05d}.png") == read_labels(tmp_path / "sdr" / f"{i:05d}.png"))
             for i in range(video.num_frames)]
    assert min(agree) > 0.97  # the same scene, the same masks
    overlay = list(open_frames(tmp_path / "o.mp4"))[0].astype(int)
    background = read_labels(tmp_path / "hdr" / "00000.png") == 0
    colour_error = overlay[background].mean(0) - frames[0][background].mean(0)  # as stored: 20-35 levels
    assert np.abs(colour_error).max() < 5


def test_two_objects_given_the_same_box_are_warned_about(tmp_path, video, weights, capsys):
    source = video.write_mp4(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "out", weights, "--box", "8,6,30,26", "--box", "8,6,30,26") == 0
    err = capsys.readouterr().err
    assert err.count("qmra: warning: objects 1 and 2 have nearly the same box on frame 0 (IoU 1.00)") == 1


def test_a_second_box_for_an_object_corrects_it_from_that_frame(tmp_path, weights, capsys):
    """An object boxed again on frame 3 restarts there: frames 0-2 are the first box's run, frames
    3-5 what a run boxing it first on frame 3 gives (one object: nothing else shares its frames)."""
    clip = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=1, seed=4), name="clip")
    source = clip.write_mp4(tmp_path / "clip.mp4", fps=10)
    first = list(clip.first_boxes()[1].as_tuple())
    later = [first[0] + 3, first[1] + 2, first[2] + 3, first[3] + 2]

    def run(name, boxes):
        (tmp_path / f"{name}.json").write_text(json.dumps(boxes))
        assert _segment(source, tmp_path / name, weights, "--boxes", str(tmp_path / f"{name}.json")) == 0
        return {p.name: read_labels(p) for p in sorted((tmp_path / name).glob("*.png"))}

    corrected = run("corrected", [{"id": 1, "frame": 0, "box": first}, {"id": 1, "frame": 3, "box": later}])
    plain = run("plain", [{"id": 1, "frame": 0, "box": first}])
    late = run("late", [{"id": 1, "frame": 3, "box": later}])
    assert sorted(corrected) == [f"{i:05d}.png" for i in range(6)]
    for i in range(3):
        assert np.array_equal(corrected[f"{i:05d}.png"], plain[f"{i:05d}.png"]), i
    for i in range(3, 6):
        assert np.array_equal(corrected[f"{i:05d}.png"], late[f"{i:05d}.png"]), i
    assert any(not np.array_equal(corrected[f"{i:05d}.png"], plain[f"{i:05d}.png"]) for i in range(3, 6))
