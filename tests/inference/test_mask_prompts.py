"""Masks given instead of boxes: each object's tight box on the first mask that holds it."""

import json

import numpy as np
import pytest
from PIL import Image

from qmra.data.boxes import Box
from qmra.data.masks import write_palette_png
from qmra.data.rle import RleVideoWriter, encode_rle
from qmra.errors import QmraError
from qmra.inference.mask_prompts import prompts_from_masks
from qmra.inference.prompts import check_prompt_masks


def _labels(objects: dict[int, tuple[int, int, int, int]], height: int = 40, width: int = 60) -> np.ndarray:
    """H×W ids with a filled ellipse per object inside x0, y0, x1, y1 (x1, y1 excluded)."""
    labels = np.zeros((height, width), np.uint8)
    rows, cols = np.mgrid[:height, :width]
    for object_id, (x0, y0, x1, y1) in objects.items():
        cx, cy, rx, ry = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        labels[((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1] = object_id
    return labels


def _boxes(given) -> dict[int, tuple[int, tuple[float, ...]]]:
    return {p.object_id: (p.frame, p.box.as_tuple()) for p in given.prompts}


def test_a_palette_mask_gives_each_id_its_tight_box_on_the_first_frame(tmp_path):
    labels = _labels({3: (5, 4, 20, 30), 7: (30, 10, 57, 21)})
    write_palette_png(tmp_path / "first.png", labels)
    given = prompts_from_masks(tmp_path / "first.png")
    assert _boxes(given) == {3: (0, (5, 4, 20, 30)), 7: (0, (30, 10, 57, 21))}
    assert given.on_first_frame and given.prompts[0].mask.shape == (40, 60)


@pytest.mark.parametrize("values,ids", [((0, 255), {1}), ((0, 1, 2), {1, 2})])
def test_greyscale_masks_are_binary_or_ids(tmp_path, values, ids):
    labels = _labels({1: (2, 2, 20, 20), 2: (30, 5, 50, 35)})
    grey = np.choose(np.minimum(labels, len(values) - 1), values).astype(np.uint8)  # 0/255: both objects are one
    Image.fromarray(grey, "L").save(tmp_path / "00012.png")
    given = prompts_from_masks(tmp_path / "00012.png")
    assert set(_boxes(given)) == ids and {p.frame for p in given.prompts} == {12} and not given.on_first_frame
    if ids == {1}:
        assert given.prompts[0].box == Box(2, 2, 50, 35)


def test_a_folder_starts_each_object_on_the_first_mask_that_holds_it(tmp_path):
    write_palette_png(tmp_path / "00000.png", _labels({1: (5, 5, 15, 15)}))
    write_palette_png(tmp_path / "00003.png", _labels({1: (20, 5, 30, 15), 2: (40, 20, 55, 38)}))
    write_palette_png(tmp_path / "00010.png", _labels({}))
    write_palette_png(tmp_path / "notes.png", _labels({5: (0, 0, 10, 10)}))  # not named after a frame: not read
    given = prompts_from_masks(tmp_path)
    assert _boxes(given) == {1: (0, (5, 5, 15, 15)), 2: (3, (40, 20, 55, 38))}
    assert not given.on_first_frame


def test_bad_masks_say_what_is_wrong(tmp_path):
    write_palette_png(tmp_path / "empty.png", _labels({}))
    Image.new("RGB", (60, 40), (255, 0, 0)).save(tmp_path / "colour.png")
    (tmp_path / "mixed").mkdir()
    write_palette_png(tmp_path / "mixed" / "00000.png", _labels({1: (5, 5, 15, 15)}))
    write_palette_png(tmp_path / "mixed" / "00001.png", _labels({1: (5, 5, 15, 15)}, height=30))
    (tmp_path / "none").mkdir()
    (tmp_path / "mixed" / "notes.txt").write_text("frame 1: the cat")
    cases = [(tmp_path / "empty.png", "every mask is empty"),
             (tmp_path / "colour.png", "a mask must be a greyscale or palette PNG, not mode RGB"),
             (tmp_path / "mixed", "00001.png: 60x30 pixels, but 00000.png is 60x40"),
             (tmp_path / "none", "no PNG named after its frame"),
             (tmp_path / "missing.png", "masks not found"),
             (tmp_path / "mixed" / "notes.txt", "expected a PNG mask")]
    for path, message in cases:
        with pytest.raises(QmraError, match=message):
            prompts_from_masks(path)
    given = prompts_from_masks(tmp_path / "mixed" / "00000.png")
    with pytest.raises(QmraError, match="the masks are 60x40 pixels but the video's frames are 64x48"):
        check_prompt_masks(given.prompts, 64, 48)


def test_rle_json_from_qmra_segment_or_a_list_of_coco_masks_starts_each_object_where_it_first_appears(tmp_path):
    first, later = _labels({2: (10, 5, 30, 20)}), _labels({2: (12, 6, 31, 21), 7: (40, 25, 58, 35)})
    writer = RleVideoWriter(tmp_path / "run.json", "clip", 40, 60)
    writer.add(3, "00003", np.zeros_like(first), [2])  # object 2 not found on frame 3: it starts on frame 4
    writer.add(4, "00004", first, [2])
    writer.add(5, "00005", later, [2, 7])
    writer.save()
    given = prompts_from_masks(tmp_path / "run.json")
    assert [(p.object_id, p.frame, p.box) for p in given.prompts] == [(2, 4, Box(10, 5, 30, 20)), (7, 5, Box(40, 25, 58, 35))]
    assert np.array_equal(given.prompts[1].mask, later == 7) and not given.on_first_frame
    sam = [{"segmentation": encode_rle(later == 7), "area": 180}, {"id": 9, "segmentation": encode_rle(later == 2)}]
    (tmp_path / "sam.json").write_text(json.dumps(sam))
    listed = prompts_from_masks(tmp_path / "sam.json")
    assert [(p.object_id, p.frame, p.box) for p in listed.prompts] == [(1, 0, Box(40, 25, 58, 35)), (9, 0, Box(12, 6, 31, 21))]
    assert listed.on_first_frame
    (tmp_path / "plain.json").write_text(json.dumps([encode_rle(first == 2)]))
    assert [p.object_id for p in prompts_from_masks(tmp_path / "plain.json").prompts] == [1]
    bad = [("[{\"segmentation\": [[1, 2, 3, 4, 5, 6]]}]", "object 1's mask is not COCO RLE"),
           ("{\"video\": 1}", "expected qmra's RLE JSON"),
           ("[{\"size\": [40, 60], \"counts\": [5]}]", "object 1's RLE cannot be read: RLE counts cover 5 pixels"),
           (json.dumps([encode_rle(first == 2), encode_rle(np.ones((30, 60), bool))]),
            "bad.json: 60x30 pixels, but bad.json is 60x40"),
           ("{not json", "not a readable JSON file")]
    for text, message in bad:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(QmraError, match=message):
            prompts_from_masks(tmp_path / "bad.json")
