"""Manifests: the three forms give the same videos and prompts; a bad one names its line."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from qmra.batch.manifest import read_manifest
from qmra.data import Box
from qmra.data.masks import write_palette_png
from qmra.data.rle import encode_rle
from qmra.errors import BoxError, QmraError
from qmra.inference.prompts import check_prompt_masks


def _jsonl(path, *entries) -> str:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    return str(path)


def test_json_lines_take_both_box_schemas_ids_and_formats(tmp_path):
    manifest = _jsonl(tmp_path / "m.jsonl",
                      {"video": "clips/a.mp4", "boxes": [[1, 2, 30, 40], [5, 5, 9, 9]]},
                      "",  # blank lines are allowed
                      {"video": "/data/b", "id": "second", "box_format": "xywh",
                       "boxes": [{"id": 7, "frame": 3, "box": [10, 20, 5, 6]}]})
    first, second = read_manifest(manifest)
    assert first.id == "a" and first.video == tmp_path / "clips" / "a.mp4"  # relative to the manifest's folder
    assert [(p.object_id, p.frame, p.box) for p in first.prompts] == [(1, 0, Box(1, 2, 30, 40)), (2, 0, Box(5, 5, 9, 9))]
    assert second.id == "second" and str(second.video) == "/data/b"
    assert [(p.object_id, p.frame, p.box) for p in second.prompts] == [(7, 3, Box(10, 20, 15, 26))]
    assert first.where.endswith("m.jsonl line 1") and second.where.endswith("m.jsonl line 3")


def test_a_range_of_frames_puts_plain_boxes_on_its_first_frame(tmp_path):
    manifest = _jsonl(tmp_path / "m.jsonl", {"video": "a.mp4", "boxes": [[1, 2, 30, 40]], "frames": "5-9"},
                      {"video": "b.mp4", "boxes": [{"id": 3, "box": [1, 2, 30, 40]}], "frames": "5-"})
    first, second = read_manifest(manifest)
    assert (first.first, first.last, first.prompts[0].frame) == (5, 9, 5)
    assert (second.first, second.last, second.prompts[0].frame) == (5, None, 0)  # followed from frame 0, written from 5


def test_a_csv_a_json_list_and_a_folder_give_the_same_videos_as_json_lines(tmp_path):
    boxes = [{"id": 1, "box": [1, 2, 30, 40]}]
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "m.csv").write_text('video,boxes,id\na.mp4,"' + json.dumps(boxes).replace('"', '""') + '",x\n')
    (tmp_path / "folder").mkdir()
    for name in ("b.mp4", "a.mp4"):
        (tmp_path / "folder" / name).write_bytes(b"")
        (tmp_path / "folder" / name.replace(".mp4", ".boxes.json")).write_text(json.dumps(boxes))
    (tmp_path / "csv" / "m.json").write_text(json.dumps([{"video": "a.mp4", "id": "x", "boxes": boxes}]))
    (from_csv,) = read_manifest(tmp_path / "csv" / "m.csv")
    assert read_manifest(tmp_path / "csv" / "m.json") == [replace(from_csv, where=f"{tmp_path / 'csv' / 'm.json'} entry 1")]
    assert (from_csv.id, from_csv.video, from_csv.prompts[0].box) == ("x", tmp_path / "csv" / "a.mp4", Box(1, 2, 30, 40))
    assert [(i.id, i.video.name) for i in read_manifest(tmp_path / "folder")] == [("a", "a.mp4"), ("b", "b.mp4")]


def test_masks_stand_for_boxes_in_json_lines_and_csv(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[5:20, 10:30], labels[25:35, 40:58] = 2, 5
    (tmp_path / "masks").mkdir()
    write_palette_png(tmp_path / "masks" / "first.png", labels)
    write_palette_png(tmp_path / "masks" / "00004.png", labels)
    manifest = _jsonl(tmp_path / "m.jsonl", {"video": "a.mp4", "masks": "masks/first.png", "frames": "3-"},
                      {"video": "b.mp4", "masks": str(tmp_path / "masks" / "00004.png")})
    first, second = read_manifest(manifest)
    expected = [(2, Box(10, 5, 30, 20)), (5, Box(40, 25, 58, 35))]
    assert [(p.object_id, p.frame, p.box) for p in first.prompts] == [(i, 3, box) for i, box in expected]  # on FIRST
    assert [(p.object_id, p.frame, p.box) for p in second.prompts] == [(i, 4, box) for i, box in expected]
    with pytest.raises(BoxError, match="the masks are 60x40 pixels but the video's frames are 64x48"):
        check_prompt_masks(first.prompts, 64, 48)
    (tmp_path / "m.csv").write_text("video,masks\nb.mp4,masks/00004.png\n")
    assert read_manifest(tmp_path / "m.csv")[0].prompts == second.prompts


@pytest.mark.parametrize("lines, message", [
    ([{"video": "a.mp4", "boxes": [[1, 2, 3, 4]]}, {"boxes": [[1, 2, 3, 4]]}], "m.jsonl line 2: missing key 'video'"),
    ([{"video": "a.mp4", "boxes": [[1, 2, 3, 4]]}, '{"video": "b.mp4", "boxes": [[1,2,3,4]]'], "m.jsonl line 2: not valid JSON"),
    ([{"video": "a.mp4", "boxes": [[1, 2, 3, 4]]}, {"video": "x/a.mp4", "boxes": [[1, 2, 3, 4]]}],
     "m.jsonl line 2: id 'a' is already used by"),
    ([{"video": "a.mp4", "boxes": [[1, 2, 3]]}], "m.jsonl line 1: boxes entry 1: "),
    ([{"video": "a.mp4", "boxes": [[1, 2, "x", 4]]}], "m.jsonl line 1: boxes entry 1: "),
    ([{"video": "a.mp4", "boxes": []}], "m.jsonl line 1: boxes: expected a non-empty JSON list"),
    ([{"video": "a.mp4", "boxes": [[1, 2, 3, 4]], "frame": 3}], "m.jsonl line 1: unknown key 'frame'"),
    ([{"video": "a.mp4", "boxes": [[1, 2, 3, 4]], "frames": "9-3"}], "m.jsonl line 1: \"frames\": expected FIRST-LAST"),
    ([{"video": "a.mp4", "boxes": [{"id": 1, "frame": 6, "box": [1, 2, 3, 4]}], "frames": "2-5"}],
     "m.jsonl line 1: object 1 is boxed on frame 6, after \"frames\" 2-5"),
    ([{"video": "a.mp4", "id": "../up", "boxes": [[1, 2, 3, 4]]}], "m.jsonl line 1: \"id\" '../up' cannot name a folder"),
    ([["a.mp4"]], "m.jsonl line 1: expected a JSON object"),
    ([{"video": "a.mp4"}], "m.jsonl line 1: give either \"boxes\" or \"masks\""),
    ([{"video": "a.mp4", "boxes": [[1, 2, 3, 4]], "masks": "m.png"}], "give either \"boxes\" or \"masks\", not both"),
    ([{"video": "a.mp4", "masks": "none.png"}], "m.jsonl line 1: masks not found"),
])
def test_a_bad_manifest_line_is_one_error_naming_it(tmp_path, lines, message):
    with pytest.raises(QmraError, match=None) as raised:
        read_manifest(_jsonl(tmp_path / "m.jsonl", *lines))
    assert message in str(raised.value)


def test_a_folder_video_without_its_boxes_file_is_an_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(QmraError, match="a.mp4: nothing beside it says what to segment: give a.boxes.json .* a.masks.png .* a.masks.json .* or a.masks/"):
        read_manifest(tmp_path)


def test_a_folder_video_takes_a_mask_or_a_mask_folder_beside_it_and_only_one_prompt_file(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[5:20, 10:30] = 3
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    write_palette_png(tmp_path / "a.masks.png", labels)
    (tmp_path / "b.masks").mkdir()
    write_palette_png(tmp_path / "b.masks" / "00007.png", labels)
    first, second = read_manifest(tmp_path)
    assert [(p.object_id, p.frame, p.box) for p in first.prompts] == [(3, 0, Box(10, 5, 30, 20))]
    assert [(p.object_id, p.frame, p.box) for p in second.prompts] == [(3, 7, Box(10, 5, 30, 20))]
    assert (first.id, second.id, first.prompts[0].mask.shape) == ("a", "b", (40, 60))
    (tmp_path / "b.masks.json").write_text(json.dumps([encode_rle(labels == 3)]))
    with pytest.raises(QmraError, match="b.mp4: b.masks.json and b.masks are beside it: keep one of"):
        read_manifest(tmp_path)
    shutil.rmtree(tmp_path / "b.masks")
    assert [(p.object_id, p.frame, p.box) for p in read_manifest(tmp_path)[1].prompts] == [(1, 0, Box(10, 5, 30, 20))]
    (tmp_path / "a.boxes.json").write_text(json.dumps([[1, 2, 3, 4]]))
    with pytest.raises(QmraError, match="a.mp4: a.boxes.json and a.masks.png are beside it: keep one of"):
        read_manifest(tmp_path)


def test_a_folder_of_tiff_stacks_takes_the_stacks_and_leaves_single_pictures(tmp_path):
    pages = [Image.new("L", (16, 12), shade) for shade in (10, 90, 200)]
    pages[0].save(tmp_path / "cells.tif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "cover.tif")  # one page: a picture, not a video, and it has no boxes file
    (tmp_path / "cells.boxes.json").write_text(json.dumps([{"id": 1, "box": [1, 2, 9, 10]}]))
    [item] = read_manifest(tmp_path)
    assert (item.id, item.video, item.prompts[0].box) == ("cells", tmp_path / "cells.tif", Box(1, 2, 9, 10))
    (tmp_path / "cells.tif").unlink()
    with pytest.raises(QmraError, match="no video files .* or multi-page TIFF stacks in the folder"):
        read_manifest(tmp_path)


def test_a_csv_without_the_columns_is_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("path,box\na.mp4,1\n")
    with pytest.raises(QmraError, match="line 1: the header must name the columns video and boxes"):
        read_manifest(tmp_path / "m.csv")


def test_a_boxes_list_may_name_masks_relative_to_the_manifest(tmp_path):
    labels = np.zeros((40, 60), np.uint8)
    labels[5:20, 10:30] = 255  # a binary mask: the entry's object
    (tmp_path / "m").mkdir()
    Image.fromarray(labels).save(tmp_path / "m" / "x.png")
    manifest = _jsonl(tmp_path / "m.jsonl", {"video": "a.mp4", "boxes": [{"id": 4, "frame": 2, "mask": "m/x.png"}]})
    [prompt] = read_manifest(manifest)[0].prompts
    assert (prompt.object_id, prompt.frame, prompt.box) == (4, 2, Box(10, 5, 30, 20))
    assert np.array_equal(prompt.mask, labels > 0)
