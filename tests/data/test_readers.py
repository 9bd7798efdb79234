import json
import shutil

import numpy as np
import pytest
from PIL import Image

from qmra.data import (CocoInstances, DavisDataset, ImageMaskFolder, SyntheticConfig, SyntheticVideo, YouTubeVOSDataset,
                       encode_rle)
from qmra.errors import DataError


def test_real_davis_2016(davis_root):
    davis = DavisDataset(davis_root)
    assert len(davis) == 15 and "breakdance" in davis.names
    sequence = davis.sequence("breakdance")
    assert sequence.num_frames == 84 and sequence.layout == "binary"
    assert sequence.frame_names[:2] == ["00000", "00001"] and sequence.annotated_indices == list(range(84))
    assert sequence.size == (480, 854) and sequence.object_ids == [1]
    image, labels = sequence.image(10), sequence.labels(10)
    assert image.shape == (480, 854, 3) and image.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == {0, 1} and labels.sum() > 1000
    assert DavisDataset(davis_root, year=2016, sequences=["cows", "dog"]).names == ["cows", "dog"]
    with pytest.raises(DataError, match="unknown DAVIS sequence"):
        DavisDataset(davis_root, sequences=["bmx-trees"])
    with pytest.raises(DataError, match="no split file"):
        DavisDataset(davis_root, split="val")


def _davis2017(root, objects=3):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=objects, seed=5), name="toy")
    video.write_davis(root)
    return video


def test_davis_2017_palette_layout_and_split(tmp_path):
    video = _davis2017(tmp_path)
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("toy\n")
    davis = DavisDataset(tmp_path, split="val")
    sequence = next(iter(davis))
    assert sequence.layout == "palette" and sequence.object_ids == [1, 2, 3]
    assert np.array_equal(sequence.labels(4), video.labels(4))
    assert np.abs(sequence.image(4).astype(int) - video.image(4).astype(int)).mean() < 6  # JPEG


def test_davis_mismatches_are_reported(tmp_path):
    _davis2017(tmp_path)
    annotations = tmp_path / "Annotations" / "480p" / "toy"
    shutil.copy(annotations / "00000.png", annotations / "00099.png")
    with pytest.raises(DataError, match="annotations without a frame: 00099.png"):
        DavisDataset(tmp_path).sequence("toy")
    (annotations / "00099.png").unlink()
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(annotations / "00002.png")
    with pytest.raises(DataError, match="annotation 00002.png is 10x10, the frames are 64x48"):
        DavisDataset(tmp_path).sequence("toy").labels(2)
    with pytest.raises(DataError, match="not a DAVIS folder"):
        DavisDataset(tmp_path / "JPEGImages")
    shutil.rmtree(annotations)
    with pytest.raises(DataError, match="annotation folder not found"):
        DavisDataset(tmp_path).sequence("toy")


def test_youtube_vos_sparse_annotations_and_late_objects(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=11, num_objects=2, seed=2))
    frames, annotations = tmp_path / "JPEGImages" / "vid", tmp_path / "Annotations" / "vid"
    frames.mkdir(parents=True)
    annotations.mkdir(parents=True)
    from qmra.data import write_palette_png

    for index in range(11):
        Image.fromarray(video.image(index)).save(frames / f"{index * 5:05d}.jpg")
        if index % 5 == 0:
            labels = video.labels(index).copy()
            if index == 0:
                labels[labels == 2] = 0  # object 2 appears at the second annotated frame
            write_palette_png(annotations / f"{index * 5:05d}.png", labels)
    meta = {"videos": {"vid": {"objects": {"1": {"category": "a", "frames": ["00000", "00025", "00050"]},
                                           "2": {"category": "b", "frames": ["00025", "00050"]}}}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    dataset = YouTubeVOSDataset(tmp_path)
    sequence = dataset.video("vid")
    assert sequence.num_frames == 11 and sequence.annotated_indices == [0, 5, 10]
    assert sequence.first_frames == {1: 0, 2: 5} and sequence.object_ids == [1, 2]
    assert 2 not in np.unique(sequence.labels(0)) and sequence.frame_names[5] == "00025"
    with pytest.raises(DataError, match="has no annotation"):
        sequence.labels(3)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(DataError, match="meta.json is missing"):
        YouTubeVOSDataset(tmp_path)


def test_saliency_folder_matched_by_stem(tmp_path):
    images, masks = tmp_path / "DUTS-TR-Image", tmp_path / "DUTS-TR-Mask"
    images.mkdir()
    masks.mkdir()
    for name in ("b", "a"):
        Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(images / f"{name}.jpg")
        mask = np.zeros((20, 30), np.uint8)
        mask[5:10, 5:20] = 200  # anti-aliased ground truth is binarised at half its maximum
        mask[5, 5] = 90
        Image.fromarray(mask).save(masks / f"{name}.png")
    pairs = ImageMaskFolder(tmp_path)
    assert len(pairs) == 2 and [p[0].stem for p in pairs.pairs] == ["a", "b"]
    image, mask = pairs.pair(0)
    assert image.shape == (20, 30, 3) and mask.sum() == 5 * 15 - 1
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(images / "c.jpg")
    with pytest.raises(DataError, match="1 image.* have no mask.*c.jpg"):
        ImageMaskFolder(tmp_path)
    with pytest.raises(DataError, match="no image and mask folders"):
        ImageMaskFolder(tmp_path / "DUTS-TR-Mask")


def test_coco_polygons_and_rle(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "img.jpg")
    rle_mask = np.zeros((40, 50), np.uint8)
    rle_mask[20:40, 0:30] = 1
    document = {
        "images": [{"id": 7, "file_name": "img.jpg", "height": 40, "width": 50}],
        "annotations": [
            {"image_id": 7, "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]], "area": 200, "iscrowd": 0, "category_id": 1},
            {"image_id": 7, "segmentation": encode_rle(rle_mask), "area": 600, "iscrowd": 0, "category_id": 2},
            {"image_id": 7, "segmentation": encode_rle(rle_mask), "area": 600, "iscrowd": 1, "category_id": 2},
            {"image_id": 7, "segmentation": [[0, 0, 2, 0, 2, 2]], "area": 2, "iscrowd": 0, "category_id": 1},
        ],
    }
    (tmp_path / "instances.json").write_text(json.dumps(document))
    coco = CocoInstances(tmp_path / "instances.json", tmp_path, min_area=100)
    assert len(coco) == 2
    _, polygon = coco.pair(0)
    assert polygon[15, 20] and not polygon[5, 5] and 180 <= polygon.sum() <= 240
    assert np.array_equal(coco.pair(1)[1], rle_mask.astype(bool))
    assert len(CocoInstances(tmp_path / "instances.json", tmp_path, min_area=100, categories=[2])) == 1
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="cannot read COCO annotations"):
        CocoInstances(tmp_path / "broken.json", tmp_path)
