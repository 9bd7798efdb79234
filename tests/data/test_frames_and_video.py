import numpy as np
import pytest
from PIL import Image

from qmra.data import ArrayFrames, Box, FrameFolder, Mp4Writer, VideoFile, draw_overlay, natural_key, open_frames
from qmra.data.palette import DAVIS_PALETTE
from qmra.errors import DataError


def _frames(count=6, height=48, width=64):
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 200 // width, ys * 200 // height, (xs + ys) * 100 // (width + height)], -1).astype(np.uint8)
    frames = []
    for i in range(count):
        frame = base.copy()
        frame[10:30, 5 + 4 * i : 25 + 4 * i] = (250, 40, 40)
        frames.append(frame)
    return frames


def test_numeric_frame_order(tmp_path):
    assert sorted(["f10.jpg", "f2.jpg", "f1.jpg", "F3.jpg"], key=natural_key) == ["f1.jpg", "f2.jpg", "F3.jpg", "f10.jpg"]
    for i in (10, 2, 1, 33):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_frames(tmp_path)
    assert isinstance(source, FrameFolder)
    assert [source.frame_name(i) for i in range(4)] == ["1", "2", "10", "33"]
    assert [int(f[0, 0, 0]) for f in source] == [1, 2, 10, 33]
    assert (source.info.num_frames, source.info.height, source.info.width) == (4, 8, 8)


def test_frame_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        open_frames(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no frames"):
        open_frames(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(mixed / "1.png")
    with pytest.raises(DataError, match="frame 1.png is 9x8, the first frame is 8x8"):
        list(open_frames(mixed))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(corrupt / "0.jpg")
    (corrupt / "1.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match="cannot read image .*1.jpg"):
        list(open_frames(corrupt))
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match="unsupported input clip.gif"):
        open_frames(tmp_path / "clip.gif")


def test_array_frames():
    frames = np.stack(_frames(3))
    source = open_frames(frames)
    assert source.info.num_frames == 3 and len(list(source)) == 3 and len(list(source)) == 3
    generated = open_frames(f for f in _frames(4))
    assert generated.info.num_frames is None and len(list(generated)) == 4
    with pytest.raises(DataError, match="already read"):
        list(generated)
    with pytest.raises(DataError, match="uint8"):
        open_frames([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(DataError, match="no frames"):
        open_frames([])
    with pytest.raises(DataError, match="one size"):
        list(open_frames([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)]))
    assert isinstance(open_frames(ArrayFrames(frames)), ArrayFrames)


def test_mp4_round_trip(tmp_path):
    frames = _frames(12)
    path = tmp_path / "clip.mp4"
    with Mp4Writer(path, 64, 48, fps=12) as writer:
        for frame in frames:
            writer.write(frame)
    source = open_frames(path)
    assert isinstance(source, VideoFile)
    assert (source.info.num_frames, source.info.height, source.info.width, source.info.fps) == (12, 48, 64, 12.0)
    decoded = list(source)
    assert len(decoded) == 12 and decoded[0].shape == (48, 64, 3)
    # Lossy, but close: the red square must be where it was.
    assert np.abs(decoded[5].astype(int) - frames[5].astype(int)).mean() < 4
    assert decoded[5][20, 30, 0] > 180
    assert [source.frame_name(i) for i in range(2)] == ["00000", "00001"]


def test_odd_sized_mp4_and_abort(tmp_path):
    with Mp4Writer(tmp_path / "odd.mp4", 33, 21) as writer:
        writer.write(np.zeros((21, 33, 3), np.uint8))
    assert open_frames(tmp_path / "odd.mp4").info.height == 22  # padded to even for yuv420p
    with pytest.raises(RuntimeError):
        with Mp4Writer(tmp_path / "aborted.mp4", 32, 32) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("crash mid-video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_corrupt_and_empty_videos(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00 ftypisom this is not a video" * 10)
    with pytest.raises(DataError, match="cannot read video"):
        open_frames(tmp_path / "bad.mp4")
    (tmp_path / "empty.mov").write_bytes(b"")
    with pytest.raises(DataError, match="cannot read video"):
        open_frames(tmp_path / "empty.mov")


def test_overlay_colours_masks_and_draws_boxes():
    frame = np.zeros((20, 30, 3), np.uint8)
    labels = np.zeros((20, 30), np.uint8)
    labels[5:10, 5:10] = 2
    out = draw_overlay(frame, labels, {2: Box(4, 4, 20, 15)}, alpha=0.5, thickness=1)
    assert out[7, 7].tolist() == (DAVIS_PALETTE[2] // 2 + DAVIS_PALETTE[2] % 2).tolist()
    assert out[4, 12].tolist() == DAVIS_PALETTE[2].tolist()  # top edge of the box
    assert out[14, 19].tolist() == DAVIS_PALETTE[2].tolist()  # bottom-right corner pixel
    assert out[12, 12].tolist() == [0, 0, 0]
