import numpy as np
from PIL import Image

from qmra.data import open_frames
from qmra.data.boxes import Box
from qmra.ui.export import export_results
from qmra.ui.frames import FrameStore
from qmra.ui.plan import Plan


def test_the_export_names_the_frames_to_check_in_the_redacted_video(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(6):
        Image.fromarray(np.full((48, 64, 3), 40 * index, np.uint8)).save(frames / f"{index}.png")
    store = FrameStore(frames)
    plan = Plan(6)
    plan.set_box(1, 0, Box(10, 10, 30, 30))
    found = np.zeros((48, 64), np.uint8)
    found[10:30, 10:30] = 1

    def labels_of(frame):  # object 1 found on frames 0-1 only
        return found if frame < 2 else np.zeros_like(found)

    answer = export_results(tmp_path / "out", store, plan, labels_of, redact=True)
    # The frames play at 24 fps: hidden where last seen for 24 frames, so on 2-5 here.
    assert answer["check"] == ["redacted.mp4: object 1: hidden where last seen on frames 2-5"]
    assert "redacted.mp4" in answer["files"] and open_frames(tmp_path / "out" / "redacted.mp4").info.num_frames == 6
    answer = export_results(tmp_path / "again", store, plan, lambda frame: found)
    assert answer["check"] == [] and not (tmp_path / "again" / "redacted.mp4").exists()


def test_an_export_of_the_page_becomes_a_dataset_with_qmra_export(tmp_path):
    from qmra.cli import main
    from qmra.data import DavisDataset

    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        Image.fromarray(np.full((48, 64, 3), 60 * index, np.uint8)).save(frames / f"{index}.png")
    plan = Plan(3)
    plan.set_box(2, 0, Box(10, 10, 30, 30))
    labels = np.zeros((48, 64), np.uint8)
    labels[12:28, 12:28] = 2  # the masks as corrected on the page
    export_results(tmp_path / "out", FrameStore(frames), plan, lambda frame: labels, overlay=False)
    assert main(["export", str(tmp_path / "out"), "--video", str(frames), "--out", str(tmp_path / "ds"),
                 "--format", "davis", "--quiet"]) == 0
    (read,) = DavisDataset(tmp_path / "ds")
    assert read.num_frames == 3 and all(np.array_equal(read.labels(i), labels) for i in range(3))
