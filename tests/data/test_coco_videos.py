"""Videos read back from a CocoVID file (``qmra export``'s): each video's frames in frame order,
its label maps as they were exported, its objects numbered by instance."""

import json

import numpy as np
import pytest
from PIL import Image

from qmra.data import SyntheticConfig, SyntheticVideo, encode_rle
from qmra.data.coco_videos import coco_videos, dataset_paths
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
