"""The YouTube-VIS document an export writes: one annotation per object and video, as long as its
video, null where the object has no mask."""

import numpy as np

from qmra.data import decode_rle
from qmra.export import YouTubeVisDocument


def _labels(objects: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    labels = np.zeros((20, 30), np.uint8)
    for object_id, (x0, y0, x1, y1) in objects.items():
        labels[y0:y1, x0:x1] = object_id
    return labels


def test_an_object_is_one_annotation_per_video_aligned_with_its_file_names():
    document = YouTubeVisDocument({2: "ball"})
    first = document.add_video("a")
    frames = [_labels({1: (0, 0, 5, 5)}), _labels({1: (1, 0, 6, 5), 2: (10, 10, 20, 15)}), _labels({2: (11, 10, 21, 15)}),
              _labels({})]
    for position, labels in enumerate(frames):
        document.add_frame(first, position * 10, f"a/{position * 10:05d}.jpg", labels)
    second = document.add_video("b")
    document.add_frame(second, 3, "b/00003.jpg", _labels({1: (0, 0, 4, 4)}))
    ytvis = document.document()
    assert [(v["id"], v["name"], v["length"], v["width"], v["height"]) for v in ytvis["videos"]] == [
        (1, "a", 4, 30, 20), (2, "b", 1, 30, 20)]
    assert ytvis["videos"][0]["file_names"] == ["a/00000.jpg", "a/00010.jpg", "a/00020.jpg", "a/00030.jpg"]
    assert ytvis["videos"][0]["frame_ids"] == [0, 10, 20, 30]
    tracks = {(a["video_id"], a["object_id"]): a for a in ytvis["annotations"]}
    assert sorted(tracks) == [(1, 1), (1, 2), (2, 1)] and len({a["id"] for a in ytvis["annotations"]}) == 3
    for (video_id, object_id), track in tracks.items():
        length = ytvis["videos"][video_id - 1]["length"]
        assert len(track["segmentations"]) == len(track["bboxes"]) == len(track["areas"]) == length
        for position in range(length):
            mask = (frames[position] if video_id == 1 else _labels({1: (0, 0, 4, 4)})) == object_id
            rle = track["segmentations"][position]
            if not mask.any():
                assert rle is None and track["bboxes"][position] is None and track["areas"][position] is None
            else:
                assert np.array_equal(decode_rle(rle).astype(bool), mask) and track["areas"][position] == mask.sum()
    assert tracks[(1, 2)]["bboxes"][1:3] == [[10.0, 10.0, 10.0, 5.0], [11.0, 10.0, 10.0, 5.0]]
    names = {c["id"]: c["name"] for c in ytvis["categories"]}
    assert {key: names[t["category_id"]] for key, t in tracks.items()} == {(1, 1): "object", (1, 2): "ball",
                                                                          (2, 1): "object"}
    assert document.summary() == "2 videos, 5 frames, 3 objects"
