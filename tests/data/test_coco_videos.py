"""Videos read back from a CocoVID file (``qmra export``'s): each video's frames in frame order,
its label maps as they were exported, its objects numbered by instance."""

import json

import numpy as np
import pytest
from PIL import Image

from qmra.data import CocoInstances, SyntheticConfig, SyntheticVideo, encode_rle
from qmra.data.rle import run_lengths
from qmra.data.coco_videos import coco_videos, dataset_paths, folder_names, youtube_vis_videos
from qmra.data.sequence import VideoSequence
from qmra.errors import DataError
from tests.tiny import exported_video


def test_an_exported_video_reads_back_frame_by_frame_as_it_was(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=7, num_objects=2, seed=3))
    dataset = exported_video(tmp_path, video, indices=[0, 2, 4, 6])  # as with --every 2
    (read,) = coco_videos(*dataset_paths(dataset))
    assert isinstance(read, VideoSequence)
    assert (read.name, read.frame_names, read.annotated_indices) == ("shot", ["00000", "00002", "00004", "00006"],
                                                                     [0, 1, 2, 3])
    assert read.object_ids == [1, 2]
    for position, index in enumerate([0, 2, 4, 6]):
        assert np.array_equal(read.image(position), video.image(index))
        assert np.array_equal(read.labels(position), video.labels(index))


def test_frames_come_in_frame_order_and_each_videos_objects_are_numbered_from_one(tmp_path):
    labels = np.zeros((8, 10), np.uint8)
    labels[2:5, 3:7] = 1
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "a.png")
    rle = encode_rle(labels > 0)
    document = {"videos": [{"id": 4, "name": "late"}],
                "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 10, "video_id": 4, "frame_id": 30},
                           {"id": 2, "file_name": "a.png", "height": 8, "width": 10, "video_id": 4, "frame_id": 10}],
                "annotations": [{"id": 1, "image_id": 1, "segmentation": rle, "instance_id": 70, "iscrowd": 0},
                                {"id": 2, "image_id": 2, "segmentation": rle, "instance_id": 9, "iscrowd": 0},
                                {"id": 3, "image_id": 2, "segmentation": rle, "instance_id": 5, "iscrowd": 1}]}
    (tmp_path / "ann.json").write_text(json.dumps(document))
    (read,) = coco_videos(tmp_path / "ann.json", tmp_path)
    assert read.name == "late" and read.object_ids == [1, 2]
    assert read.labels(0).max() == 1 and read.labels(1).max() == 2  # frame 10 (instance 9), then 30 (instance 70)
    assert np.array_equal(read.labels(0) > 0, labels > 0)


@pytest.mark.parametrize("problem,message", [
    ("stills", "not a video dataset"),
    ("no instances", "no usable instance annotations"),
    ("broken", "cannot read COCO video annotations"),
])
def test_what_is_not_a_video_dataset_is_refused_clearly(tmp_path, problem, message):
    image = {"id": 1, "file_name": "a.png", "height": 8, "width": 10, "video_id": 1, "frame_id": 0}
    if problem == "stills":
        del image["video_id"]
    annotations = [] if problem == "no instances" else [{"id": 1, "image_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]],
                                                         "instance_id": 1}]
    text = json.dumps({"images": [image], "annotations": annotations})
    (tmp_path / "ann.json").write_text(text[:-3] if problem == "broken" else text)
    with pytest.raises(DataError, match=message):
        coco_videos(tmp_path / "ann.json", tmp_path)


def test_an_image_of_another_size_than_its_annotation_says_is_refused(tmp_path):
    Image.fromarray(np.zeros((9, 10, 3), np.uint8)).save(tmp_path / "a.png")
    document = {"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 10, "video_id": 1, "frame_id": 0}],
                "annotations": [{"id": 1, "image_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]], "instance_id": 1}]}
    (tmp_path / "ann.json").write_text(json.dumps(document))
    (read,) = coco_videos(tmp_path / "ann.json", tmp_path)
    with pytest.raises(DataError, match="a.png is 10x9, the annotations say 10x8"):
        read.image(0)


def test_a_dataset_is_its_folder_or_its_annotation_file_and_image_folder(tmp_path):
    assert dataset_paths(tmp_path) == (tmp_path / "annotations.json", tmp_path / "images")
    assert dataset_paths(tmp_path / "x.json", tmp_path / "imgs") == (tmp_path / "x.json", tmp_path / "imgs")
    with pytest.raises(DataError, match="is not a folder"):
        dataset_paths(tmp_path / "missing")


def test_a_youtube_vis_export_reads_back_as_the_same_videos_as_its_coco_twin(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=2, seed=7))
    vis = youtube_vis_videos(*dataset_paths(exported_video(tmp_path / "a", video, [0, 3, 5], annotations="youtube-vis")))
    (read,) = vis
    assert (read.name, read.frame_names, read.object_ids) == ("shot", ["00000", "00003", "00005"], [1, 2])
    for position, index in enumerate([0, 3, 5]):
        assert np.array_equal(read.labels(position), video.labels(index))
        assert np.array_equal(read.image(position), video.image(index))


def test_the_challenge_layout_with_absent_objects_and_uncompressed_masks(tmp_path):
    (tmp_path / "JPEGImages" / "0a1b").mkdir(parents=True)
    for name in ("00000", "00005"):
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "JPEGImages" / "0a1b" / f"{name}.jpg")
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    document = {"videos": [{"id": 3, "width": 6, "height": 4, "length": 2,
                            "file_names": ["0a1b/00000.jpg", "0a1b/00005.jpg"]}],
                "annotations": [{"id": 1, "video_id": 3, "category_id": 1, "iscrowd": 0,
                                 "segmentations": [{"size": [4, 6], "counts": run_lengths(mask)}, None]},
                                {"id": 2, "video_id": 3, "category_id": 1, "iscrowd": 0,
                                 "segmentations": [None, encode_rle(mask)]}]}
    (tmp_path / "train.json").write_text(json.dumps(document))
    (read,) = youtube_vis_videos(tmp_path / "train.json", tmp_path / "JPEGImages")
    assert (read.name, read.frame_names, read.object_ids) == ("0a1b", ["00000", "00005"], [1, 2])
    assert np.array_equal(read.labels(0), mask * 1) and np.array_equal(read.labels(1), mask * 2)
    document["annotations"][1]["segmentations"] = [None]
    (tmp_path / "short.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="segmentations do not match its 2 frames"):
        youtube_vis_videos(tmp_path / "short.json", tmp_path / "JPEGImages")


def test_a_missing_file_or_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="COCO annotation file not found: .*none.json"):
        coco_videos(tmp_path / "none.json", tmp_path)
    (tmp_path / "train.json").write_text("{}")
    with pytest.raises(DataError, match="YouTube-VIS image folder not found: .*JPEGImages"):
        youtube_vis_videos(tmp_path / "train.json", tmp_path / "JPEGImages")


def test_video_names_become_folder_names_of_their_own():
    assert folder_names(["train/ArgoVerse/a", "b c", "..", "train_ArgoVerse_a", "ok-1.mp4"]) == [
        "train_ArgoVerse_a", "b_c", "video", "train_ArgoVerse_a-4", "ok-1.mp4"]


def test_a_youtube_vis_video_without_frames_is_one_clear_error(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps({"videos": [{"id": 1, "width": 4, "height": 4, "file_names": []}],
                                                     "annotations": []}))
    with pytest.raises(DataError, match="cannot read YouTube-VIS annotations"):
        youtube_vis_videos(tmp_path / "train.json", tmp_path)


def test_a_file_read_in_the_other_layout_says_which_it_is(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=3, num_objects=1, seed=1))
    coco = dataset_paths(exported_video(tmp_path / "a", video, [0, 1, 2]))
    vis = dataset_paths(exported_video(tmp_path / "b", video, [0, 1, 2], annotations="youtube-vis"))
    with pytest.raises(DataError, match="is a COCO file .*read it as cocovid: \\(video clips\\) or coco:"):
        youtube_vis_videos(*coco)
    with pytest.raises(DataError, match="is a YouTube-VIS file .*read it as youtube-vis:"):
        coco_videos(*vis)
    with pytest.raises(DataError, match="is a YouTube-VIS file .*read it as youtube-vis:"):
        CocoInstances(*vis)
