"""The tracks CSV: a row per object and frame, the mask's tight box, and the file saved as it grows."""

import csv
import io

import numpy as np

from qmra.data.tracks import COLUMNS, TrackWriter


def test_rows_give_each_objects_box_area_confidence_and_state_and_the_file_grows_whole(tmp_path):
    labels = np.zeros((6, 8), np.uint8)
    labels[1:3, 2:5], labels[4, 7] = 1, 3
    now = [0.0]
    writer = TrackWriter(tmp_path / "tracks.csv", every=2, gap=0.0, clock=lambda: now[0])
    writer.add(0, "00000", labels, [1, 2, 3], {1: 0.91234, 3: 0.5}, {3: ("fading", "jump")})
    assert not writer.save_if_due() and not (tmp_path / "tracks.csv").exists()  # every 2 frames
    writer.add(1, "00001", np.zeros_like(labels), [1], {}, {})
    assert writer.save_if_due()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "tracks.csv").read_text())))
    assert list(rows[0]) == list(COLUMNS)
    assert [list(r.values()) for r in rows] == [
        ["0", "00000", "1", "2", "1", "5", "3", "6", "0.912", "0", ""],
        ["0", "00000", "2", "", "", "", "", "0", "", "1", ""],  # not on this frame: lost, no box
        ["0", "00000", "3", "7", "4", "8", "5", "1", "0.500", "0", "fading jump"],
        ["1", "00001", "1", "", "", "", "", "0", "", "1", ""]]
