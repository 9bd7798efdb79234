import numpy as np
import pytest
from PIL import Image

from qmra.data import write_palette_png
from qmra.inference import outputs
from qmra.inference.outputs import ResultWriter
from qmra.inference.results import FrameResult


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


def _fail_on_third_frame(monkeypatch) -> None:
    """Writing frame 00002's PNG fails as a full disk would."""
    real = outputs.write_palette_png

    def fail_on_third(path, labels):
        if path.name == "00002.png":
            raise OSError("no space left on device")
        real(path, labels)

    monkeypatch.setattr(outputs, "write_palette_png", fail_on_third)


def test_a_failed_background_write_is_raised_by_the_writer(tmp_path, monkeypatch):
    _fail_on_third_frame(monkeypatch)
    writer = ResultWriter(tmp_path, height=8, width=10, fps=None, video_name="v")
    with pytest.raises(OSError, match="no space left"):
        for index in range(5):
            writer.write(_result(index))
        writer.flush()
    writer.close()
    assert (tmp_path / "00000.png").is_file() and (tmp_path / "00001.png").is_file()


def test_no_frame_is_written_after_a_failed_one(tmp_path, monkeypatch):
    _fail_on_third_frame(monkeypatch)
    writer = ResultWriter(tmp_path, height=8, width=10, fps=None, video_name="v")
    with pytest.raises(OSError):
        for index in range(5):
            writer.write(_result(index))
        writer.flush()
    writer.close()
    # Consecutive from frame 0, as --resume expects: frames 3 and 4 would leave a gap.
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["00000.png", "00001.png"]


def test_finished_frames_counts_complete_pngs_from_frame_0(tmp_path):
    from qmra.data import ArrayFrames, FrameFolder
    from qmra.errors import QmraError
    from qmra.inference.outputs import finished_frames

    source = ArrayFrames(np.zeros((6, 8, 10, 3), np.uint8))
    writer = ResultWriter(tmp_path, height=8, width=10, fps=None, video_name="v", background=False)
    for index in (0, 1, 2, 4):
        writer.write(_result(index))
    writer.close()
    assert finished_frames(tmp_path, source) == 3  # 00004.png lies beyond the gap
    (tmp_path / "00002.png").write_bytes((tmp_path / "00002.png").read_bytes()[:40])  # cut short
    assert finished_frames(tmp_path, source) == 2
    assert finished_frames(tmp_path / "missing", source) == 0
    with pytest.raises(QmraError, match="00000.png is 10x8, the frames are 12x8: .* holds another video's results"):
        finished_frames(tmp_path, ArrayFrames(np.zeros((6, 8, 12, 3), np.uint8)))
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a1", "a2"):
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(frames / f"{name}.jpg")
        write_palette_png(tmp_path / f"{name}.png", np.zeros((8, 10), np.uint8))
    assert finished_frames(tmp_path, FrameFolder(frames)) == 2  # named after the frames; no third frame to look for
