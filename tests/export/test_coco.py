"""The COCO document an export writes: masks that decode back, boxes, instances and categories."""

import numpy as np

from qmra.data import decode_rle
from qmra.export import CocoDocument


def _labels(objects: dict[int, tuple[int, int, int, int]], height: int = 20, width: int = 30) -> np.ndarray:
    """H×W ids with object i filling rows y0..y1-1 and columns x0..x1-1 of its (x0, y0, x1, y1)."""
    labels = np.zeros((height, width), np.uint8)
    for object_id, (x0, y0, x1, y1) in objects.items():
        labels[y0:y1, x0:x1] = object_id
    return labels


def test_each_object_of_a_frame_is_one_annotation_whose_rle_decodes_to_its_mask():
    document = CocoDocument()
    video = document.add_video("clip")
    labels = _labels({3: (2, 4, 10, 9), 7: (15, 0, 30, 20)})
    document.add_frame(video, 12, "clip/00012.jpg", labels)
    coco = document.document()
    assert coco["images"] == [{"id": 1, "file_name": "clip/00012.jpg", "height": 20, "width": 30,
                               "video_id": 1, "frame_id": 12}]
    by_object = {a["object_id"]: a for a in coco["annotations"]}
    assert sorted(by_object) == [3, 7]
    for object_id, annotation in by_object.items():
        mask = labels == object_id
        assert np.array_equal(decode_rle(annotation["segmentation"]).astype(bool), mask)
        assert annotation["area"] == mask.sum() and annotation["iscrowd"] == 0 and annotation["image_id"] == 1
    assert by_object[3]["bbox"] == [2.0, 4.0, 8.0, 5.0]  # x y w h of columns 2..9, rows 4..8
    assert by_object[7]["bbox"] == [15.0, 0.0, 15.0, 20.0]
    assert len({a["id"] for a in coco["annotations"]}) == 2


def test_an_object_keeps_one_instance_id_across_frames_and_another_video_gets_new_ones():
    document = CocoDocument()
    first = document.add_video("a")
    document.add_frame(first, 0, "a/0.jpg", _labels({1: (0, 0, 5, 5), 2: (10, 10, 15, 15)}))
    document.add_frame(first, 1, "a/1.jpg", _labels({2: (11, 10, 16, 15)}))  # object 1 gone: no annotation
    document.add_frame(first, 2, "a/2.jpg", _labels({1: (1, 0, 6, 5), 2: (12, 10, 17, 15)}))
    second = document.add_video("b")
    document.add_frame(second, 0, "b/0.jpg", _labels({1: (0, 0, 5, 5)}))
    annotations = document.document()["annotations"]
    instance = {(a["video_id"], a["image_id"], a["object_id"]): a["instance_id"] for a in annotations}
    assert len(annotations) == 6
    assert instance[(1, 1, 1)] == instance[(1, 3, 1)] != instance[(1, 1, 2)] == instance[(1, 2, 2)] == instance[(1, 3, 2)]
    assert instance[(2, 4, 1)] not in {instance[(1, 1, 1)], instance[(1, 1, 2)]}
    assert [v["name"] for v in document.document()["videos"]] == ["a", "b"]


def test_categories_follow_the_names_given_and_unnamed_objects_are_object():
    document = CocoDocument({2: "ball", 1: "dog", 5: "dog"})
    video = document.add_video("v")
    document.add_frame(video, 0, "v/0.jpg", _labels({1: (0, 0, 4, 4), 2: (5, 5, 9, 9), 3: (10, 10, 14, 14),
                                                     5: (20, 0, 25, 4)}))
    coco = document.document()
    assert coco["categories"] == [{"id": 1, "name": "ball", "supercategory": "object"},
                                  {"id": 2, "name": "dog", "supercategory": "object"},
                                  {"id": 3, "name": "object", "supercategory": "object"}]
    category = {a["object_id"]: a["category_id"] for a in coco["annotations"]}
    assert category == {1: 2, 2: 1, 3: 3, 5: 2}


def test_without_names_there_is_one_category():
    document = CocoDocument()
    document.add_frame(document.add_video("v"), 0, "v/0.jpg", _labels({1: (0, 0, 4, 4), 4: (5, 5, 9, 9)}))
    assert document.document()["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
