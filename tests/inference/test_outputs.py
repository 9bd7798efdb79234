import numpy as np
import pytest

from qmra.inference import outputs
from qmra.inference.outputs import ResultWriter
from qmra.inference.session import FrameResult


def _result(index: int) -> FrameResult:
    labels = np.zeros((8, 10), np.uint8)
    labels[2:5, 3:6] = 1
    return FrameResult(index, f"{index:05d}", labels, {1: None}, np.zeros((8, 10, 3), np.uint8))


def test_background_writes_land_in_order_and_are_all_there_after_close(tmp_path):
    writer = ResultWriter(tmp_path, height=8, width=10, fps=None, video_name="v", rle=tmp_path / "r.json")
    for index in range(20):
        writer.write(_result(index))
    writer.close()
    assert writer.frames_written == 20
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{i:05d}.png" for i in range(20)]


def test_a_failed_background_write_is_raised_by_the_writer(tmp_path, monkeypatch):
    real = outputs.write_palette_png

    def fail_on_third(path, labels):
        if path.name == "00002.png":
            raise OSError("no space left on device")
        real(path, labels)

    monkeypatch.setattr(outputs, "write_palette_png", fail_on_third)
    writer = ResultWriter(tmp_path, height=8, width=10, fps=None, video_name="v")
    with pytest.raises(OSError, match="no space left"):
        for index in range(5):
            writer.write(_result(index))
        writer.flush()
    writer.close()
    assert (tmp_path / "00000.png").is_file() and (tmp_path / "00001.png").is_file()
