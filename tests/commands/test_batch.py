"""``qmra batch`` end to end on small synthetic clips: the same files as ``qmra segment``, failures
that stay alone, runs stopped midway (SIGINT, SIGTERM, a killed Ray actor) that finish identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qmra.cli import main
from qmra.data import SyntheticConfig, SyntheticVideo, open_frames, read_labels
from qmra.data.masks import write_palette_png
from qmra.data.video_writer import cutout_frames

REPO = Path(__file__).resolve().parents[2]
SLOW_FRAMES = Path(__file__).resolve().parents[1] / "batch" / "slow_frames"
#: Every run here uses one thread per worker: a different count may round a boundary pixel otherwise.
SAME = ("--threads", "1", "--quiet")
OVERLAY = "overlay.mp4"


def _clips(folder: Path, count: int, frames: int = 6) -> list[dict]:
    """``count`` mp4 clips in ``folder`` and their manifest entries (two objects each)."""
    entries = []
    for seed in range(count):
        video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=frames, num_objects=2, seed=seed))
        video.write_mp4(folder / f"clip{seed}.mp4", fps=10)
        entries.append({"video": f"clip{seed}.mp4",
                        "boxes": [list(b.as_tuple()) for _, b in sorted(video.first_boxes().items())]})
    return entries


def _manifest(folder: Path, entries: list[dict]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same_files(out: Path, reference: Path, entries: list[dict]) -> None:
    """Every entry's folder under ``out`` holds the same files as under ``reference``: the masks and
    the RLE byte for byte, the overlay showing the same frames (:func:`_assert_same_overlay`)."""
    for entry in entries:
        name = Path(entry["video"]).stem
        files, expected = _files(out / name), _files(reference / name)
        assert files.keys() == expected.keys(), name
        assert {k: v for k, v in files.items() if k != OVERLAY} == {k: v for k, v in expected.items() if k != OVERLAY}, name
        if OVERLAY in expected:
            _assert_same_overlay(out / name / OVERLAY, reference / name / OVERLAY)


def _assert_same_overlay(path: Path, reference: Path) -> None:
    """Both overlays hold the same frames, drawn alike. Not byte for byte: with x264's macroblock tree
    on, the same frames gave other bytes from one run to the next (13 files from 100 encodings of one
    10-frame clip), which failed this test in CI; it is off now, but an encoder's bytes are not what
    this test is about, and other builds of it may differ."""
    frames, expected = list(open_frames(path)), list(open_frames(reference))
    assert len(frames) == len(expected) > 0, path
    for index, (frame, other) in enumerate(zip(frames, expected)):
        # Encoder noise measured 2.1 at most; masks not drawn differ by 11 or more on these clips,
        # another object's colour by 37, a box one pixel off by 23.
        difference = np.abs(frame.astype(int) - other.astype(int)).mean()
        assert difference < 6, f"{path} frame {index} differs from {reference}'s by {difference:.1f} levels on average"


def _index(out: Path) -> dict[str, dict]:
    latest = {}
    for line in (out / "index.jsonl").read_text().splitlines():
        record = json.loads(line)
        latest[record["id"]] = record
    return latest


def _segment_each(tmp_path: Path, entries: list[dict], weights: Path) -> Path:
    """What ``qmra segment`` writes for each entry, in the layout batch uses."""
    reference = tmp_path / "reference"
    for entry in entries:
        folder = reference / Path(entry["video"]).stem
        boxes = [",".join(f"{v:g}" for v in box) for box in entry["boxes"]]
        args = ["segment", str(tmp_path / entry["video"]), "--out", str(folder), "--weights", str(weights),
                "--overlay", str(folder / "overlay.mp4"), "--rle", str(folder / "masks.rle.json"), *SAME]
        assert main(args + [a for box in boxes for a in ("--box", box)]) == 0
    return reference


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child before it starts: Ctrl-C's default action. A suite started in the background
    (``make test &``, ``nohup``) has SIGINT ignored, which its children would inherit and keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _batch_process(manifest: Path, out: Path, weights: Path, *extra: str, delay: float = 0.0) -> subprocess.Popen:
    """``qmra batch`` in a process of its own (signals go to it alone), frames slowed by ``delay`` s."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SLOW_FRAMES), str(REPO)]),
           "QMRA_TEST_FRAME_DELAY": str(delay)}
    command = [sys.executable, "-m", "qmra", "batch", str(manifest), "--out", str(out), "--weights", str(weights),
               "--overlay", "--rle", *SAME, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _wait_for_pngs(folder: Path, count: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while len(list(folder.glob("*.png"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {count} PNGs in {folder} after {seconds} s"
        time.sleep(0.05)


def _stopped_midway(tmp_path: Path, weights: Path, clips: int, frames: int, *extra: str):
    """``qmra batch`` started in its own process on new clips, frames slowed, once clip0 has 2 frames:
    (the manifest entries, the manifest, --out, the process)."""
    entries = _clips(tmp_path, clips, frames=frames)
    manifest = _manifest(tmp_path, entries)
    out = tmp_path / "out"
    process = _batch_process(manifest, out, weights, *extra, delay=0.3)
    _wait_for_pngs(out / "clip0", 2, process, seconds=180)
    return entries, manifest, out, process


def test_two_workers_write_what_segment_writes_and_a_corrupt_video_fails_alone(tmp_path, weights, capsys):
    entries = _clips(tmp_path, 3)
    (tmp_path / "broken.mp4").write_bytes((tmp_path / "clip0.mp4").read_bytes()[:600])
    write_palette_png(tmp_path / "small.png", np.ones((40, 64), np.uint8))  # frames are 64x48
    manifest = _manifest(tmp_path, entries + [{"video": "broken.mp4", "boxes": [[1, 1, 20, 20]]},
                                              {"video": "clip1.mp4", "id": "outside", "boxes": [[70, 1, 90, 20]]},
                                              {"video": "clip2.mp4", "id": "masks", "masks": "small.png"}])
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--overlay", "--rle",
                 "--workers", "2", *SAME]) == 1
    err = capsys.readouterr().err
    assert "qmra: error: broken: " in err and "qmra: error: outside: object 1: " in err
    assert "qmra: error: masks: the masks are 64x40 pixels but the video's frames are 64x48" in err
    _assert_same_files(out, _segment_each(tmp_path, entries, weights), entries)
    index = _index(out)
    assert {k: v["status"] for k, v in index.items()} == {"clip0": "done", "clip1": "done", "clip2": "done",
                                                          "broken": "failed", "outside": "failed", "masks": "failed"}
    assert index["clip2"]["frames"] == 6 and "lies outside" in index["outside"]["error"]

    lines = len((out / "index.jsonl").read_text().splitlines())  # again: the finished videos are skipped
    assert main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--overlay", "--rle",
                 "--threads", "1"]) == 1
    assert "6 videos: 3 to segment, 3 already done" in capsys.readouterr().err
    assert len((out / "index.jsonl").read_text().splitlines()) == lines + 3
    # Other settings: the finished videos are not taken as they are, but checked again frame by frame.
    main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--overlay", "--rle", "--threads", "1",
          "--mem-every", "2"])
    assert "6 videos: 6 to segment, 0 already done" in capsys.readouterr().err


def _masks_agree(path: Path, other: Path) -> bool:
    """The two PNGs hold the same masks up to the rounding of a batched encoder (a few pixels): every
    object's masks overlap by IoU ≥ 0.9, and 99 % of the pixels carry the same label."""
    import numpy as np
    from PIL import Image

    a, b = np.asarray(Image.open(path)), np.asarray(Image.open(other))
    if a.shape != b.shape or float((a == b).mean()) < 0.99:
        return False
    for label in (set(np.unique(a)) | set(np.unique(b))) - {0}:
        union = np.logical_or(a == label, b == label).sum()
        if np.logical_and(a == label, b == label).sum() < 0.9 * union:
            return False
    return True


def test_videos_sharing_a_worker_give_the_masks_segment_gives(tmp_path, weights):
    entries = _clips(tmp_path, 3)
    out = tmp_path / "out"
    assert main(["batch", str(_manifest(tmp_path, entries)), "--out", str(out), "--weights", str(weights), "--overlay",
                 "--rle", "--workers", "1", "--videos-per-worker", "3", *SAME]) == 0
    assert {r["status"] for r in _index(out).values()} == {"done"}
    reference = _segment_each(tmp_path, entries, weights)
    for entry in entries:
        name = Path(entry["video"]).stem
        pngs = sorted((reference / name).glob("*.png"))
        assert len(pngs) == 6 and sorted(p.name for p in (out / name).glob("*.png")) == [p.name for p in pngs]
        assert all(_masks_agree(p, out / name / p.name) for p in pngs), name
        assert open_frames(out / name / "overlay.mp4").info.num_frames == 6
        assert len(json.loads((out / name / "masks.rle.json").read_text())["frames"]) == 6


@pytest.mark.slow
def test_videos_sharing_a_worker_stopped_with_sigterm_end_on_the_next_run(tmp_path, weights):
    lanes = ("--workers", "1", "--videos-per-worker", "2")
    entries, manifest, out, process = _stopped_midway(tmp_path, weights, 3, 8, *lanes)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "interrupted" in {r["status"] for r in _index(out).values()} and "their finished frames are kept" in err
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # the overlays and RLE files were closed

    again = _batch_process(manifest, out, weights, *lanes)
    assert again.wait(timeout=300) == 0, again.communicate()
    assert {r["status"] for r in _index(out).values()} == {"done"}
    reference = _segment_each(tmp_path, entries, weights)
    for entry in entries:
        name = Path(entry["video"]).stem
        pngs = sorted((reference / name).glob("*.png"))
        assert len(pngs) == 8 and all(_masks_agree(p, out / name / p.name) for p in pngs)
        assert open_frames(out / name / "overlay.mp4").info.num_frames == 8


def test_cutouts_are_written_and_asking_for_one_later_continues_the_finished_videos(tmp_path, weights):
    entries = _clips(tmp_path, 1, frames=4)
    manifest, out = _manifest(tmp_path, entries), tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--workers", "1", *SAME]) == 0
    masks = {p.name: read_labels(p) for p in sorted((out / "clip0").glob("*.png"))}
    assert main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--workers", "1", "--cutout", "mov",
                 *SAME]) == 0
    records = (out / "index.jsonl").read_text().splitlines()
    assert len(records) == 2  # a new output: the finished video was continued
    cutout = list(cutout_frames(out / "clip0" / "cutout.mov"))
    assert len(cutout) == 4 and {p.name: read_labels(p) for p in sorted((out / "clip0").glob("*.png"))}.keys() == masks.keys()
    for rgba, labels in zip(cutout, masks.values()):
        assert ((rgba[..., 3] > 127) == (labels > 0)).mean() > 0.999
    assert main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--workers", "1", "--cutout", "mov",
                 *SAME]) == 0
    assert (out / "index.jsonl").read_text().splitlines() == records  # and then it is done
    assert main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--workers", "1", "--cutout", "mov",
                 "--tracks", *SAME]) == 0
    assert len((out / "index.jsonl").read_text().splitlines()) == 3  # tracks asked for: continued again
    rows = (out / "clip0" / "tracks.csv").read_text().splitlines()
    assert rows[0] == "frame,name,object,x0,y0,x1,y1,area,confidence,lost,doubts" and len(rows) == 1 + 4 * 2


def test_redacted_videos_and_another_style_later_redoes_only_them(tmp_path, weights):
    entries = _clips(tmp_path, 1, frames=4)
    manifest, out = _manifest(tmp_path, entries), tmp_path / "out"

    def run(style):
        return main(["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--workers", "1", "--redact",
                     "--redact-style", style, *SAME])

    assert run("black") == 0
    labels = read_labels(out / "clip0" / "00001.png")
    redacted = open_frames(out / "clip0" / "redacted.mp4")
    assert redacted.info.num_frames == 4 and redacted.read(1)[labels > 0].mean() < 25
    records = (out / "index.jsonl").read_text().splitlines()
    assert run("black") == 0 and (out / "index.jsonl").read_text().splitlines() == records  # done: skipped
    pngs = {p.name: p.stat().st_ino for p in (out / "clip0").glob("*.png")}
    assert run("pixelate") == 0  # another style: the video is continued, its masks kept, the redacted video made again
    assert len((out / "index.jsonl").read_text().splitlines()) == 2
    assert {p.name: p.stat().st_ino for p in (out / "clip0").glob("*.png")} == pngs
    assert open_frames(out / "clip0" / "redacted.mp4").read(1)[labels > 0].mean() > 40

def test_a_bad_manifest_stops_before_any_work(tmp_path, weights, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"video": "a.mp4", "boxes": [[1, 2, 3, 4]]}\n{"video": "b.mp4", "boxes": [[1, 2, 3]]}\n')
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--weights", str(weights)]) == 2
    assert capsys.readouterr().err.startswith(f"qmra: error: {manifest} line 2: boxes entry 1: ")
    assert not (tmp_path / "out").exists()
    late = '[{"id": 1, "frame": 0, "box": [1, 2, 30, 40]}, {"id": 2, "frame": 3, "box": [5, 5, 20, 20]}]'
    manifest.write_text(f'{{"video": "a.mp4", "boxes": {late}}}\n')
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--weights", str(weights), "--every", "2"]) == 2
    assert (f"qmra: error: {manifest} line 1: object 2 is boxed on frame 3, which --every 2 from frame 0 skips: box it on "
            "frame 2 or 4") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_stopped_with_sigint_then_run_again_it_ends_as_a_run_never_stopped(tmp_path, weights):
    entries, manifest, out, process = _stopped_midway(tmp_path, weights, 3, 8, "--workers", "2")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    stopped = _index(out)
    assert "interrupted" in {r["status"] for r in stopped.values()}, stopped
    assert "their finished frames are kept" in err

    again = _batch_process(manifest, out, weights, "--workers", "2")
    assert again.wait(timeout=300) == 0, again.communicate()
    assert {r["status"] for r in _index(out).values()} == {"done"}
    reference = tmp_path / "never-stopped"
    assert _batch_process(manifest, reference, weights, "--workers", "2").wait(timeout=300) == 0
    _assert_same_files(out, reference, entries)


def test_sigterm_keeps_finished_frames_and_closes_the_overlay_and_rle_of_segment(tmp_path, weights):
    entries = _clips(tmp_path, 1, frames=30)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SLOW_FRAMES), str(REPO)]), "QMRA_TEST_FRAME_DELAY": "0.2"}
    box = ",".join(f"{v:g}" for v in entries[0]["boxes"][0])
    process = subprocess.Popen([sys.executable, "-m", "qmra", "segment", str(tmp_path / "clip0.mp4"), "--out", str(out),
                                "--weights", str(weights), "--box", box, "--overlay", str(tmp_path / "ov.mp4"),
                                "--rle", str(tmp_path / "masks.json"), *SAME], env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_pngs(out, 3, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    finished = len(list(out.glob("*.png")))
    assert 3 <= finished < 30 and f"terminated; the {finished} finished frames are in {out}" in err
    assert open_frames(tmp_path / "ov.mp4").info.num_frames == finished  # a playable overlay of those frames
    assert len(json.loads((tmp_path / "masks.json").read_text())["frames"]) == finished
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_through_ray_a_killed_actor_has_its_video_retried_and_identical(tmp_path, weights):
    pytest.importorskip("ray")
    entries, _, out, process = _stopped_midway(tmp_path, weights, 2, 10, "--ray", "--workers", "1")
    actors = subprocess.run(["pgrep", "-f", "SegmentActor"], capture_output=True, text=True).stdout.split()
    assert actors, "no Ray actor process found"
    for pid in actors:
        os.kill(int(pid), signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    index = _index(out)
    assert index["clip0"]["status"] == "done" and index["clip0"]["attempt"] == 2
    _assert_same_files(out, _segment_each(tmp_path, entries, weights), entries)


def test_overwrite_leaves_no_frame_of_the_earlier_run(tmp_path, weights):
    entries = _clips(tmp_path, 1, frames=6)
    manifest = _manifest(tmp_path, entries)
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--overlay", "--per-object", *SAME]
    assert main(args) == 0 and len(list((out / "clip0").glob("*.png"))) == 6
    _clips(tmp_path, 1, frames=4)  # the video is replaced by a shorter one
    assert main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in (out / "clip0").glob("*.png")) == [f"{i:05d}.png" for i in range(4)]
    assert sorted(p.name for p in (out / "clip0" / "1").glob("*.png")) == [f"{i:05d}.png" for i in range(4)]
    assert open_frames(out / "clip0" / "overlay.mp4").info.num_frames == 4
    assert _index(out)["clip0"]["frames"] == 4


@pytest.mark.slow
def test_a_killed_worker_process_is_replaced_and_its_video_retried_identical(tmp_path, weights):
    entries, _, out, process = _stopped_midway(tmp_path, weights, 2, 8, "--workers", "1")
    children = subprocess.run(["pgrep", "-f", "-P", str(process.pid), "spawn_main"], capture_output=True, text=True)
    (worker,) = children.stdout.split()
    os.kill(int(worker), signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    index = _index(out)
    assert index["clip0"]["attempt"] == 2 and {r["status"] for r in index.values()} == {"done"}
    _assert_same_files(out, _segment_each(tmp_path, entries, weights), entries)


def test_a_device_this_machine_lacks_is_one_error_before_any_work(tmp_path, weights, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    manifest = _manifest(tmp_path, [{"video": "a.mp4", "boxes": [[1, 2, 30, 40]]}])
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--weights", str(weights), "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip().endswith("CUDA is not available here; use --device cpu")
    assert not (tmp_path / "out").exists()


def test_a_finished_video_missing_an_output_is_completed_on_the_next_run(tmp_path, weights, capsys):
    manifest = _manifest(tmp_path, _clips(tmp_path, 1, frames=4))
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--out", str(out), "--weights", str(weights), "--per-object", *SAME]
    assert main(args) == 0
    lost = out / "clip0" / "2" / "00002.png"
    before = lost.read_bytes()
    lost.unlink()
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "1 video: 1 to segment, 0 already done" in capsys.readouterr().err and lost.read_bytes() == before
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "1 video: 0 to segment, 1 already done" in capsys.readouterr().err


def test_backwards_follows_late_objects_back_as_segment_does(tmp_path, weights):
    # Object 2 is boxed on frame 3: with --backwards each video's files are those of
    # `qmra segment --backwards`, which differ from a forward run's on frames 0-2.
    entries = _clips(tmp_path, 1, frames=6)
    boxes = entries[0]["boxes"]
    entries[0]["boxes"] = [{"id": 1, "frame": 0, "box": boxes[0]}, {"id": 2, "frame": 3, "box": boxes[1]}]
    (tmp_path / "boxes.json").write_text(json.dumps(entries[0]["boxes"]))
    out = tmp_path / "out"
    assert main(["batch", str(_manifest(tmp_path, entries)), "--out", str(out), "--weights", str(weights), "--rle",
                 "--backwards", *SAME]) == 0
    for name, extra in (("both", ["--backwards"]), ("forward", [])):
        assert main(["segment", str(tmp_path / "clip0.mp4"), "--boxes", str(tmp_path / "boxes.json"), "--out",
                     str(tmp_path / name), "--rle", str(tmp_path / name / "masks.rle.json"), "--weights", str(weights),
                     *SAME, *extra]) == 0
    assert _files(out / "clip0") == _files(tmp_path / "both")
    assert _files(tmp_path / "both")["00000.png"] != _files(tmp_path / "forward")["00000.png"]


@pytest.mark.parametrize("frames, extra, names", [
    ("2-4", [], ["00002.png", "00003.png", "00004.png"]),  # a manifest's range: plain boxes on its frame 2
    (None, ["--every", "2"], ["00000.png", "00002.png", "00004.png"]),
])
def test_a_range_or_every_nth_frame_gives_what_segment_gives(tmp_path, weights, frames, extra, names):
    entries = _clips(tmp_path, 1, frames=6)
    if frames:
        entries[0]["frames"] = frames
    out = tmp_path / "out"
    batch = ["batch", str(_manifest(tmp_path, entries)), "--out", str(out), "--weights", str(weights), "--rle", *extra, *SAME]
    assert main(batch) == 0
    boxes = [",".join(f"{v:g}" for v in box) for box in entries[0]["boxes"]]
    assert main(["segment", str(tmp_path / "clip0.mp4"), "--box", boxes[0], "--box", boxes[1], *extra,
                 *(["--frames", frames] if frames else []), "--out", str(tmp_path / "one"), "--rle",
                 str(tmp_path / "one" / "masks.rle.json"), "--weights", str(weights), *SAME]) == 0
    files = _files(out / "clip0")
    assert files == _files(tmp_path / "one") and sorted(n for n in files if n.endswith(".png")) == names
    record = json.loads((out / "index.jsonl").read_text().splitlines()[-1])
    assert (record["status"], record["frames"]) == ("done", 3)
    assert main(batch) == 0  # done: skipped, not redone
    assert len((out / "index.jsonl").read_text().splitlines()) == 1
