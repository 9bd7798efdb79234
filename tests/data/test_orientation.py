"""Phone videos and photos are read upright, as players and browsers show them."""

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from qmra.cli import main
from qmra.data import read_labels
from qmra.data.frames import FrameFolder, VideoFile, open_frames
from qmra.data.masks import read_rgb
from qmra.data.orientation import quarter_turns
from qmra.data.video_seek import SeekingVideoReader
from qmra.ui.frames import FrameStore


@pytest.mark.parametrize("degrees, turns", [(0, 0), (None, 0), (90, 1), (-90, 3), (180, 2), (-180, 2), (270, 3),
                                            (89.6, 1), (-90.4, 3), (45, 0), (100, 0)])
def test_quarter_turns(degrees, turns):
    assert quarter_turns(degrees) == turns


def _marked(height: int, width: int) -> np.ndarray:
    """A dark H×W×3 frame with a bright block at its top-left corner (where a turn moves it shows)."""
    frame = np.full((height, width, 3), 30, np.uint8)
    frame[: height // 3, : width // 3] = 230
    return frame


def _rotated_mp4(path: Path, stored: list[np.ndarray], degrees: int, pixel_shape: Fraction | None = None) -> Path:
    """An H.264 mp4 of ``stored`` frames (as the file holds them) with a display rotation of ``degrees``
    counter-clockwise, the way phones write portrait video, and pixels ``pixel_shape`` as wide as
    high (a sample aspect ratio: DV, HDV)."""
    import av

    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display rotation (PyAV 18 can)")
    height, width = stored[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if pixel_shape is not None:
            stream.codec_context.sample_aspect_ratio = pixel_shape
        stream.set_display_rotation(degrees)
        for frame in stored:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _quadrant_means(frame: np.ndarray) -> dict[str, float]:
    height, width = frame.shape[:2]
    top, left = slice(0, height // 3), slice(0, width // 3)
    bottom, right = slice(height - height // 3, height), slice(width - width // 3, width)
    return {name: float(frame[rows, cols].mean()) for name, rows, cols in
            (("top-left", top, left), ("top-right", top, right), ("bottom-left", bottom, left), ("bottom-right", bottom, right))}


# Where the stored top-left block is shown: turned 90° counter-clockwise it lies bottom-left (what
# Chromium shows for such a file, checked by hand), 90° clockwise top-right, upside down bottom-right.
@pytest.mark.parametrize("degrees, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right"), (0, "top-left")])
def test_a_video_with_a_display_rotation_is_read_upright(tmp_path, degrees, corner):
    stored = [_marked(48, 80) for _ in range(12)]
    path = _rotated_mp4(tmp_path / "phone.mp4", stored, degrees)
    video = VideoFile(path)
    sideways = degrees % 180 != 0
    assert (video.info.height, video.info.width) == ((80, 48) if sideways else (48, 80))
    frames = list(video)
    assert len(frames) == 12 and all(f.shape == (video.info.height, video.info.width, 3) for f in frames)
    means = _quadrant_means(frames[5])
    assert max(means, key=means.get) == corner
    assert np.array_equal(video.read(7), frames[7])
    assert np.array_equal(next(video.frames([9, 8, 7])), frames[9])  # backwards too
    seeking = SeekingVideoReader(path)  # what qmra ui reads frames with, indexed as qmra ui indexes it
    positions = list(video.positions())  # checked for size, upright, without converting a frame
    assert positions == [where for _, where in video.decoded()]
    for where in positions:
        seeking.add(where)
    assert np.array_equal(seeking.read(6), frames[6]) and np.array_equal(seeking.read(2), frames[2])
    seeking.close()


def _exif_jpeg(path: Path, frame: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(frame).save(path, exif=exif, quality=95)
    return path


@pytest.mark.parametrize("orientation, corner", [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right"),
                                                 (2, "top-right"), (1, "top-left")])
def test_photos_with_an_exif_orientation_are_read_as_shown(tmp_path, orientation, corner):
    for index in range(3):
        _exif_jpeg(tmp_path / f"{index}.jpg", _marked(48, 80), orientation)
    folder = FrameFolder(tmp_path)
    swapped = orientation in (5, 6, 7, 8)
    assert (folder.info.height, folder.info.width) == ((80, 48) if swapped else (48, 80))
    frame = folder.read(1)
    means = _quadrant_means(frame)
    assert max(means, key=means.get) == corner
    assert np.array_equal(frame, np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "1.jpg")).convert("RGB")))
    # Training images are read as stored, as their masks are: only frames are turned.
    assert read_rgb(tmp_path / "1.jpg").shape == (48, 80, 3)


def test_the_ui_shows_a_turned_photo_upright_and_other_frames_as_they_are(tmp_path):
    turned, plain = tmp_path / "turned", tmp_path / "plain"
    turned.mkdir(), plain.mkdir()
    for index in range(2):
        _exif_jpeg(turned / f"{index}.jpg", _marked(48, 80), 6)
        Image.fromarray(_marked(48, 80)).save(plain / f"{index}.png")
    store = FrameStore(turned)
    data, content_type = store.display_bytes(0)
    shown = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert content_type == "image/jpeg" and shown.shape == (80, 48, 3)
    assert np.abs(shown - store.read(0).astype(int)).mean() < 3  # the pixels the network reads
    store.close()
    store = FrameStore(plain)
    assert store.display_bytes(1) == ((plain / "1.png").read_bytes(), "image/png")
    store.close()


def test_segment_takes_boxes_and_writes_masks_in_the_upright_frame(tmp_path, weights):
    upright = []
    for t in range(4):  # a portrait clip: a red square moving down a grey frame, 48 wide, 80 high
        frame = np.full((80, 48, 3), 110, np.uint8)
        frame[20 + 4 * t: 36 + 4 * t, 14:30] = (220, 30, 30)
        upright.append(frame)
    stored = [np.ascontiguousarray(np.rot90(frame, -1)) for frame in upright]  # landscape in the file
    path = _rotated_mp4(tmp_path / "phone.mp4", stored, 90)
    out = tmp_path / "out"
    code = main(["segment", str(path), "--box", "14,20,30,36", "--out", str(out), "--weights", str(weights),
                 "--overlay", str(tmp_path / "overlay.mp4"), "--quiet"])
    assert code == 0
    assert read_labels(out / "00000.png").shape == (80, 48)
    assert read_labels(out / "00000.png")[20:36, 14:30].mean() > 0.5  # the boxed frame keeps to the box, upright
    overlay = open_frames(tmp_path / "overlay.mp4")
    assert (overlay.info.height, overlay.info.width) == (80, 48)


def _block_extent(frame: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bright block in a dark frame."""
    rows, cols = np.nonzero(frame.mean(-1) > 130)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("degrees", [0, 90])
def test_a_video_with_wide_pixels_is_read_stretched_as_players_show_it(tmp_path, weights, degrees):
    stored = []
    for t in range(6):  # HDV-like: pixels 4:3 as wide as high, so a 24x24 square is stored 24 high, 18 wide
        frame = np.full((48, 60, 3), 30, np.uint8)
        frame[12:36, 6 + 3 * t:24 + 3 * t] = 230
        stored.append(frame)
    path = _rotated_mp4(tmp_path / "hdv.mp4", stored, degrees, Fraction(4, 3))
    video = VideoFile(path)
    shown = (80, 48) if degrees else (48, 80)
    assert (video.info.height, video.info.width) == shown
    frames = list(video)
    assert all(frame.shape == shown + (3,) for frame in frames)
    height, width = _block_extent(frames[2])
    assert abs(height - width) <= 2 and height in range(22, 27)  # square again
    assert np.array_equal(video.read(4), frames[4]) and np.array_equal(next(video.frames([3, 2])), frames[3])
    seeking = SeekingVideoReader(path)  # what qmra ui reads frames with
    for where in video.positions():
        seeking.add(where)
    assert np.array_equal(seeking.read(5), frames[5])
    seeking.close()
    if degrees:
        return
    out = tmp_path / "out"  # a box read off a player: in the shown pixels
    assert main(["segment", str(path), "--box", "8,12,32,36", "--out", str(out), "--weights", str(weights), "--quiet"]) == 0
    assert read_labels(out / "00000.png").shape == (48, 80)
    assert read_labels(out / "00000.png")[12:36, 8:32].mean() > 0.5


def test_a_box_that_fits_only_the_stored_frame_is_warned_about_with_the_reason(tmp_path, weights, capsys):
    stored = [np.full((48, 80, 3), 110, np.uint8) for _ in range(2)]  # 80x48 in the file, shown 48x80
    path = _rotated_mp4(tmp_path / "phone.mp4", stored, 90)
    assert VideoFile(path).info.sideways and not VideoFile(_rotated_mp4(tmp_path / "flat.mp4", stored, 180)).info.sideways
    reason = "(the video is read upright, 48x80, as players show it; its file stores it turned, 80x48: give boxes in"

    def segment(box: str) -> tuple[int, str]:
        code = main(["segment", str(path), "--box", box, "--out", str(tmp_path / box), "--weights", str(weights), "--quiet"])
        return code, capsys.readouterr().err

    code, err = segment("30,10,70,30")  # reaches past the upright frame's right side, fits the stored one
    assert code == 0 and "reaches outside the 48x80 frame; clipped to (30, 10, 48, 30) " + reason in err
    code, err = segment("50,10,70,30")  # wholly right of the upright frame: an error, with the same reason
    assert code == 2 and err.startswith("qmra: error: object 1: box (50, 10, 70, 30) lies outside") and reason in err
    code, err = segment("30,50,70,70")  # fits neither frame: no reason given
    assert code == 0 and "clipped" in err and "read upright" not in err


def _comb(frame: np.ndarray) -> float:
    """How much each odd row departs from the mean of the rows above and below it (combing)."""
    rows = frame.astype(float)
    return float(np.abs(rows[1:-1:2] - (rows[0:-2:2] + rows[2::2]) / 2).mean())


def test_one_field_keeps_the_top_field_and_fills_the_bottom_one_between_its_rows():
    from qmra.data.orientation import one_field

    frame = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    kept = one_field(frame.copy())
    np.testing.assert_array_equal(kept[0::2], frame[0::2])
    np.testing.assert_array_equal(kept[1::2], ((frame[0:-1:2].astype(int) + frame[2::2] + 1) // 2).astype(np.uint8))
    even = one_field(frame[:6].copy())
    np.testing.assert_array_equal(even[5], even[4])  # no top-field row below the last one
    assert one_field(frame[:2]).shape == (2, 5, 3)


def test_an_interlaced_video_is_read_deinterlaced_and_a_progressive_one_as_stored(tmp_path):
    import av

    from benchmarks.look_changes import interlaced_video

    frames = []
    for t in range(6):  # a bright block moving right by 6 pixels a frame: its edges comb when woven
        frame = np.full((64, 96, 3), 40, np.uint8)
        frame[16:48, 10 + 6 * t:40 + 6 * t] = 220
        frames.append(frame)
    path = interlaced_video(tmp_path / "camcorder.mp4", frames, quality=10)
    with av.open(str(path)) as container:
        stored = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    read = list(open_frames(path))
    assert _comb(stored[2]) > 5 * _comb(read[2]) and _comb(read[2]) < 2
    np.testing.assert_array_equal(VideoFile(path).read(3), read[3])
    progressive = _rotated_mp4(tmp_path / "progressive.mp4", frames, 0)
    with av.open(str(progressive)) as container:
        as_stored = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    for mine, theirs in zip(open_frames(progressive), as_stored, strict=True):
        np.testing.assert_array_equal(mine, theirs)
