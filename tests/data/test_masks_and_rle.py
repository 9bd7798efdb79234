import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from qmra.data import DAVIS_PALETTE, RleVideoWriter, decode_rle, encode_rle, read_labels, write_object_pngs, write_palette_png
from qmra.data.atomic import atomic_path
from qmra.data.rle import counts_to_string, run_lengths, string_to_counts
from qmra.errors import DataError


def test_davis_palette_starts_like_davis():
    assert DAVIS_PALETTE[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert DAVIS_PALETTE[255].tolist() == [224, 224, 192]


def test_palette_png_round_trip(tmp_path):
    labels = np.random.default_rng(0).integers(0, 5, (17, 23)).astype(np.uint8)
    write_palette_png(tmp_path / "a.png", labels)
    image = Image.open(tmp_path / "a.png")
    assert image.mode == "P" and image.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    assert np.array_equal(read_labels(tmp_path / "a.png"), labels)
    assert np.array_equal(read_labels(tmp_path / "a.png", "palette"), labels)


def test_per_object_pngs(tmp_path):
    labels = np.array([[0, 1, 2], [2, 2, 0]], np.uint8)
    write_object_pngs(tmp_path, "00007", labels, [1, 2, 3])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "2" / "00007.png")), (labels == 2) * 255)
    assert np.asarray(Image.open(tmp_path / "3" / "00007.png")).max() == 0
    assert np.array_equal(read_labels(tmp_path / "1" / "00007.png", "binary"), (labels == 1).astype(np.uint8))


def test_labels_the_layout_does_not_allow(tmp_path):
    grey = np.array([[0, 255], [128, 0]], np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    with pytest.raises(DataError, match="only 0 and 255, found 128"):
        read_labels(tmp_path / "grey.png", "binary")
    Image.fromarray(np.full((2, 2), 255, np.uint8), mode="L").save(tmp_path / "void.png")
    with pytest.raises(DataError, match="ids must lie in 0..254"):
        read_labels(tmp_path / "void.png", "palette")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="not mode RGB"):
        read_labels(tmp_path / "rgb.png")


def test_missing_and_corrupt_masks(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_labels(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="cannot read image"):
        read_labels(tmp_path / "bad.png")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "result.png"
    write_palette_png(target, np.ones((3, 3), np.uint8))
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_rle_string_by_hand():
    mask = np.array([[0, 1], [1, 0]])  # column-major: 0, 1, 1, 0
    assert run_lengths(mask) == [1, 2, 1]
    assert encode_rle(mask) == {"size": [2, 2], "counts": "121"}
    # counts 0, 5, 10, 2: the 4th is stored as 2 - 5 = -3, one character 29 + 48.
    assert counts_to_string([0, 5, 10, 2]) == "05:M"
    assert string_to_counts("05:M") == [0, 5, 10, 2]
    assert decode_rle({"size": [2, 2], "counts": [1, 2, 1]}).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="cover"):
        decode_rle({"size": [3, 3], "counts": "121"})


@settings(max_examples=80, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 1)))
def test_rle_round_trip(mask):
    assert np.array_equal(decode_rle(encode_rle(mask)), mask)
    assert np.array_equal(decode_rle({"size": list(mask.shape), "counts": run_lengths(mask)}), mask)


def test_large_runs_round_trip():
    mask = np.zeros((480, 854), np.uint8)
    mask[100:400, 10:800] = 1
    assert np.array_equal(decode_rle(encode_rle(mask)), mask)


def test_rle_video_writer(tmp_path):
    writer = RleVideoWriter(tmp_path / "out" / "masks.json", "clip", 4, 5)
    labels = np.zeros((4, 5), np.uint8)
    labels[1:3, 2:4] = 2
    writer.add(0, "00000", labels, [1, 2])
    writer.save()
    document = json.loads((tmp_path / "out" / "masks.json").read_text())
    objects = document["frames"][0]["objects"]
    assert objects["2"]["bbox"] == [2, 1, 2, 2] and objects["2"]["area"] == 4
    assert "bbox" not in objects["1"] and objects["1"]["area"] == 0
    assert np.array_equal(decode_rle(objects["2"]), labels == 2)


def test_the_rle_file_is_saved_during_a_run_without_taking_it_over(tmp_path, monkeypatch):
    now = [0.0]
    writer = RleVideoWriter(tmp_path / "masks.json", "clip", 4, 5, every=3, gap=20.0, clock=lambda: now[0])
    saves = []

    def slow_save():  # a save that takes 0.5 s of the clock: the next waits 10 s
        saves.append(len(writer.frames))
        now[0] += 0.5

    monkeypatch.setattr(writer, "save", slow_save)
    labels = np.zeros((4, 5), np.uint8)
    for index in range(40):
        writer.add(index, f"{index:05d}", labels, [1])
        writer.save_if_due()
        now[0] += 1.0  # a frame a second
    # Every 3 frames at first, then no sooner than 20 × 0.5 s after a save: at most 5 % of the time saving.
    assert saves[0] == 3 and all(b - a >= 10 for a, b in zip(saves, saves[1:])) and len(saves) == 4
