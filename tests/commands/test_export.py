"""``qmra export`` end to end: frames and masks become a COCO dataset that COCO readers take, from a
``qmra segment`` folder and from a ``qmra batch`` folder."""

import json

import numpy as np
import pytest
from PIL import Image

from qmra.batch.index import DONE, VideoRecord
from qmra.cli import main
from qmra.data import CocoInstances, DavisDataset, SyntheticConfig, SyntheticVideo, decode_rle, open_frames, write_palette_png

CLIP = SyntheticConfig(height=48, width=64, num_frames=6, num_objects=2, seed=5)


def _frame_folder(video: SyntheticVideo, folder):
    folder.mkdir(parents=True)
    for index in range(video.config.num_frames):
        Image.fromarray(video.image(index)).save(folder / f"f{index}.png")
    return folder


def _true_masks(video: SyntheticVideo, folder, names, indices):
    folder.mkdir(parents=True, exist_ok=True)
    for name, index in zip(names, indices):
        write_palette_png(folder / f"{name}.png", video.labels(index))
    return folder


def _export(*args):
    return main(["export", *map(str, args), "--quiet"])


def _one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_segment_folder_of_a_frame_folder_becomes_a_dataset_with_the_frames_and_masks_exactly(tmp_path):
    video = SyntheticVideo(CLIP)
    frames = _frame_folder(video, tmp_path / "shot")
    masks = _true_masks(video, tmp_path / "masks", ["f0", "f2", "f4"], [0, 2, 4])  # as with --every 2
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds", "--image-format", "png",
                   "--category", "2=ball") == 0
    coco = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    assert [(i["file_name"], i["frame_id"]) for i in coco["images"]] == [("shot/f0.png", 0), ("shot/f2.png", 2),
                                                                        ("shot/f4.png", 4)]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for image in coco["images"]:
        pixels = np.asarray(Image.open(tmp_path / "ds" / "images" / image["file_name"]))
        assert np.array_equal(pixels, video.image(image["frame_id"]))
        truth = video.labels(image["frame_id"])
        annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert sorted(a["object_id"] for a in annotations) == sorted(set(np.unique(truth)) - {0})
        for annotation in annotations:
            assert np.array_equal(decode_rle(annotation["segmentation"]).astype(bool), truth == annotation["object_id"])
            assert names[annotation["category_id"]] == ("ball" if annotation["object_id"] == 2 else "object")
    # A COCO reader takes it: qmra train's own (coco:ANN.json:IMAGES), one pair per mask.
    instances = CocoInstances(tmp_path / "ds" / "annotations.json", tmp_path / "ds" / "images", min_area=0)
    assert len(instances) == len(coco["annotations"])
    image, mask = instances.pair(0)
    assert image.shape == (48, 64, 3) and mask.shape == (48, 64) and mask.any()


def test_a_batch_folder_exports_its_done_videos_decoded_from_their_mp4s(tmp_path, capsys):
    videos = {name: SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=2, seed=seed))
              for seed, name in enumerate(["a", "b"])}
    records = []
    for name, video in videos.items():
        mp4 = video.write_mp4(tmp_path / f"{name}.mp4", fps=10)
        _true_masks(video, tmp_path / "out" / name, ["00001", "00003", "00005"], [1, 3, 5])
        records.append(VideoRecord(name, str(mp4), DONE))
    records.append(VideoRecord("c", str(tmp_path / "c.mp4"), "failed", error="unreadable"))
    (tmp_path / "out" / "index.jsonl").write_text("".join(r.line() + "\n" for r in records))
    assert main(["export", str(tmp_path / "out"), "--out", str(tmp_path / "ds")]) == 0
    said = capsys.readouterr()
    assert "a: 3 frames, 2 objects" in said.out and "qmra: warning: video c is left out: it failed (unreadable)\n" in said.err
    coco = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    assert [v["name"] for v in coco["videos"]] == ["a", "b"]
    assert len(coco["images"]) == 6 and len({a["instance_id"] for a in coco["annotations"]}) == 4
    for image in coco["images"]:
        name = image["file_name"].split("/")[0]
        decoded = open_frames(tmp_path / f"{name}.mp4").read(image["frame_id"])
        written = np.asarray(Image.open(tmp_path / "ds" / "images" / image["file_name"]))
        assert image["file_name"].endswith(f"/{image['frame_id']:05d}.jpg")
        # JPEG at quality 95 of the decoded frame: 2.2 levels here, the frame before it 31 (measured).
        assert np.abs(written.astype(int) - decoded).mean() < 4


def test_every_samples_each_videos_masked_frames_from_its_first(tmp_path):
    video = SyntheticVideo(CLIP)
    frames = _frame_folder(video, tmp_path / "shot")
    masks = _true_masks(video, tmp_path / "masks", [f"f{i}" for i in range(1, 6)], range(1, 6))
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds", "--every", "2") == 0
    coco = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    assert [i["frame_id"] for i in coco["images"]] == [1, 3, 5]
    assert sorted(p.name for p in (tmp_path / "ds" / "images" / "shot").iterdir()) == ["f1.jpg", "f3.jpg", "f5.jpg"]


def test_youtube_vis_lists_each_videos_frames_and_follows_each_object_through_them(tmp_path, capsys):
    video = SyntheticVideo(CLIP)
    frames = _frame_folder(video, tmp_path / "shot")
    masks = _true_masks(video, tmp_path / "masks", ["f1", "f3", "f5"], [1, 3, 5])
    assert main(["export", str(masks), "--video", str(frames), "--out", str(tmp_path / "ds"),
                 "--format", "youtube-vis"]) == 0
    assert "(youtube-vis: 1 video, 3 frames, 2 objects)" in capsys.readouterr().out
    ytvis = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    [listed] = ytvis["videos"]
    assert listed["file_names"] == ["shot/f1.jpg", "shot/f3.jpg", "shot/f5.jpg"] and listed["frame_ids"] == [1, 3, 5]
    for name in listed["file_names"]:
        assert (tmp_path / "ds" / "images" / name).is_file()
    for track in ytvis["annotations"]:
        for rle, frame in zip(track["segmentations"], listed["frame_ids"]):
            truth = video.labels(frame) == track["object_id"]
            assert (rle is None and not truth.any()) or np.array_equal(decode_rle(rle).astype(bool), truth)


def test_davis_writes_each_frame_and_its_palette_mask_as_davis_readers_read_them(tmp_path, capsys):
    video = SyntheticVideo(CLIP)
    frames = _frame_folder(video, tmp_path / "shot")
    masks = _true_masks(video, tmp_path / "masks", ["f1", "f3", "f5"], [1, 3, 5])
    assert main(["export", str(masks), "--video", str(frames), "--out", str(tmp_path / "ds"), "--format", "davis",
                 "--image-format", "png", "--category", "2=ball"]) == 0
    assert "(davis: 1 video, 3 frames, 2 objects)" in capsys.readouterr().out
    (read,) = DavisDataset(tmp_path / "ds")
    assert (read.name, read.frame_names, read.annotated_indices) == ("shot", ["f1", "f3", "f5"], [0, 1, 2])
    for position, index in enumerate([1, 3, 5]):
        assert np.array_equal(read.image(position), video.image(index))
        assert np.array_equal(read.labels(position), video.labels(index))
    listing = json.loads((tmp_path / "ds" / "qmra-export.json").read_text())
    assert listing["categories"] == {"1": "object", "2": "ball"}
    assert [f["frame_id"] for f in listing["videos"][0]["frames"]] == [1, 3, 5]
    (masks / "f5.png").unlink()
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds", "--format", "davis") == 2
    assert "already holds an export (qmra-export.json)" in _one_error_line(capsys)
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds", "--format", "davis", "--overwrite") == 0
    assert sorted(p.name for p in (tmp_path / "ds" / "Annotations" / "480p" / "shot").iterdir()) == ["f1.png", "f3.png"]


def test_an_earlier_export_stays_unless_overwrite_which_replaces_it(tmp_path, capsys):
    video = SyntheticVideo(CLIP)
    frames = _frame_folder(video, tmp_path / "shot")
    masks = _true_masks(video, tmp_path / "masks", ["f0", "f1"], [0, 1])
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds") == 0
    (tmp_path / "masks" / "f1.png").unlink()
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds") == 2
    assert "already holds an export (annotations.json); --overwrite replaces it" in _one_error_line(capsys)
    assert (tmp_path / "ds" / "images" / "shot" / "f1.jpg").is_file()
    write_palette_png(masks / "f2.png", np.zeros((24, 32), np.uint8))  # bad input: the export stays as it was
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds", "--overwrite") == 2
    assert "f2.png is 32x24" in _one_error_line(capsys) and (tmp_path / "ds" / "annotations.json").is_file()
    assert (tmp_path / "ds" / "images" / "shot" / "f1.jpg").is_file()
    (masks / "f2.png").unlink()
    assert _export(masks, "--video", frames, "--out", tmp_path / "ds", "--overwrite") == 0
    assert sorted(p.name for p in (tmp_path / "ds" / "images" / "shot").iterdir()) == ["f0.jpg"]
    assert len(json.loads((tmp_path / "ds" / "annotations.json").read_text())["images"]) == 1


@pytest.mark.parametrize("problem", ["other size", "not a frame", "bad category", "two names"])
def test_bad_input_is_one_error_line_and_writes_no_annotations(tmp_path, capsys, problem):
    video = SyntheticVideo(CLIP)
    frames = _frame_folder(video, tmp_path / "shot")
    masks = _true_masks(video, tmp_path / "masks", ["f0"], [0])
    extra = []
    if problem == "other size":
        write_palette_png(masks / "f1.png", np.zeros((24, 32), np.uint8))
    elif problem == "not a frame":
        write_palette_png(masks / "f9.png", video.labels(0))
    elif problem == "bad category":
        extra = ["--category", "dog"]
    else:
        extra = ["--category", "1=dog", "--category", "1=cat"]
    if problem == "bad category":  # argparse's own one line
        with pytest.raises(SystemExit, match="2"):
            _export(masks, "--video", frames, "--out", tmp_path / "ds", *extra)
    else:
        assert _export(masks, "--video", frames, "--out", tmp_path / "ds", *extra) == 2
    err = _one_error_line(capsys)
    assert {"other size": "f1.png is 32x24 but the frames of", "not a frame": "is named 'f9'",
            "bad category": "expected OBJECT_ID=NAME", "two names": "two names: dog and cat"}[problem] in err
    assert not (tmp_path / "ds").exists()  # checked before anything is written


def test_the_masks_qmra_segment_writes_export_as_they_are(tmp_path, weights):
    video = SyntheticVideo(CLIP)
    mp4 = video.write_mp4(tmp_path / "clip.mp4", fps=10)
    boxes = [",".join(f"{v:g}" for v in box.as_tuple()) for _, box in sorted(video.first_boxes().items())]
    assert main(["segment", str(mp4), "--out", str(tmp_path / "masks"), "--weights", str(weights), "--quiet",
                 "--every", "2", *[arg for box in boxes for arg in ("--box", box)]]) == 0
    assert _export(tmp_path / "masks", "--video", mp4, "--out", tmp_path / "ds") == 0
    coco = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    assert [i["frame_id"] for i in coco["images"]] == [0, 2, 4]
    from qmra.data import read_labels
    for annotation in coco["annotations"]:
        image = coco["images"][annotation["image_id"] - 1]
        labels = read_labels(tmp_path / "masks" / f"{image['frame_id']:05d}.png", "palette")
        assert np.array_equal(decode_rle(annotation["segmentation"]).astype(bool), labels == annotation["object_id"])
