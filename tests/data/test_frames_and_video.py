import numpy as np
import pytest
from PIL import Image

from qmra.data import ArrayFrames, Box, FrameFolder, Mp4Writer, VideoFile, draw_overlay, natural_key, open_frames
from qmra.data.frames import FrameInfo, FrameSource
from qmra.data.masks import image_to_rgb
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
    (tmp_path / "clip.heic").write_bytes(b"\0\0\0\x18ftypheic")
    with pytest.raises(DataError, match=r"unsupported input clip.heic: give a video \(.mp4, .*\) or a folder of frames"):
        open_frames(tmp_path / "clip.heic")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")  # a header and nothing else
    with pytest.raises(DataError, match="cannot read video .*clip.gif: it is not a video file"):
        open_frames(tmp_path / "clip.gif")


def test_frames_of_every_bit_depth_are_read_at_their_brightness(tmp_path):
    """16-bit greyscale frames (scientific and depth cameras, some exporters) are scaled to 8 bits;
    Pillow's own conversion clips them, so that a frame of mid-grey came out white."""
    levels = np.array([[0, 257, 3000], [32896, 60000, 65535]], np.uint16)
    Image.fromarray(levels).save(tmp_path / "0.png")  # a 16-bit greyscale PNG
    Image.fromarray((levels // 257).astype(np.uint8)).convert("RGBA").save(tmp_path / "1.png")
    Image.fromarray((levels // 257).astype(np.uint8)).save(tmp_path / "2.jpg", quality=100)
    assert image_to_rgb(Image.open(tmp_path / "0.png"))[..., 0].tolist() == [[0, 1, 12], [128, 233, 255]]
    source = open_frames(tmp_path)
    frames = list(source)
    assert Image.open(tmp_path / "0.png").mode == "I;16"
    # The folder's 16-bit frames span the 8 bits by its first one's 0.1st to 99.9th percentile.
    assert source.grey_range == pytest.approx(tuple(np.percentile(levels, (0.1, 99.9))))
    assert frames[0][..., 0].tolist() == [[0, 1, 12], [128, 234, 255]] and (frames[0] == frames[0][..., :1]).all()
    assert frames[1][..., 0].tolist() == (levels // 257).tolist()
    assert np.abs(frames[2].astype(int) - frames[1]).max() <= 2
    older = Image.fromarray(levels.astype(np.int32))  # how Pillows before 10 open a 16-bit PNG
    assert older.mode == "I" and (image_to_rgb(older, source.grey_range) == frames[0]).all()


def test_a_12_bit_camera_folder_is_not_nearly_black(tmp_path):
    rng = np.random.default_rng(4)
    for index in range(2):
        Image.fromarray(rng.integers(0, 4096, (30, 40)).astype(np.uint16)).save(tmp_path / f"{index}.png")
    frames = list(open_frames(tmp_path))
    assert [int(f.max()) for f in frames] == [255, 255] and all(abs(float(f.mean()) - 127.5) < 6 for f in frames)

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


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov"])
def test_videos_written_say_their_colours_are_bt709_and_are_so(tmp_path, suffix):
    import av

    from qmra.data.video_writer import BT709, CutoutWriter

    green = np.zeros((32, 64, 3), np.uint8)
    green[:] = (40, 160, 60)  # untagged, a browser (BT.709) showed it (29, 141, 57)
    path = tmp_path / f"clip{suffix}"
    with (Mp4Writer(path, 64, 32) if suffix == ".mp4" else CutoutWriter(path, 64, 32)) as writer:
        for _ in range(2):
            writer.write(green) if suffix == ".mp4" else writer.write(green, np.ones((32, 64), np.uint8))
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (BT709, BT709, BT709)
        shown = frame.to_ndarray(format="rgb24", src_colorspace=BT709)  # as a player honouring the tags
    assert np.abs(shown[8:24, 16:48].astype(int) - green[8:24, 16:48]).max() <= 4


@pytest.mark.parametrize("suffix, codec, container_format, pixels", [
    (".gif", "gif", "gif", "rgb8"),
    (".mpg", "mpeg2video", "mpeg", "yuv420p"),  # its duration counts fewer frames than it holds
    (".ts", "libx264", "mpegts", "yuv420p"),
    (".flv", "flv", "flv", "yuv420p"),  # no frame count in its header
    (".wmv", "wmv2", "asf", "yuv420p"),
    (".3gp", "mpeg4", "3gp", "yuv420p"),
    (".ogv", "libvpx", "ogg", "yuv420p"),
])
def test_other_video_containers_are_read_whole(tmp_path, suffix, codec, container_format, pixels):
    import av

    frames = _frames(12)
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pixels
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    source = open_frames(path)
    assert isinstance(source, VideoFile) and (source.info.height, source.info.width) == (48, 64)
    decoded = list(source)
    assert len(decoded) == 12
    assert source.info.estimated or source.info.num_frames in (None, 12)  # a count not marked estimated is exact
    assert decoded[5][20, 30, 0] > 150 and decoded[5][20, 10, 0] < 100  # the red square moved with the frames
    assert np.array_equal(source.read(11), decoded[11])  # the last frame, wherever the header's estimate ends


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
    from qmra.data.video_writer import OVERLAY_COLOURS

    colour = OVERLAY_COLOURS[1]  # object 2
    frame = np.zeros((20, 30, 3), np.uint8)
    labels = np.zeros((20, 30), np.uint8)
    labels[5:10, 5:10] = 2
    out = draw_overlay(frame, labels, {2: Box(4, 4, 20, 15)}, alpha=0.5, thickness=1)
    assert out[7, 7].tolist() == (colour // 2 + colour % 2).tolist()
    assert out[4, 12].tolist() == colour.tolist()  # top edge of the box
    assert out[14, 19].tolist() == colour.tolist()  # bottom-right corner pixel
    assert out[12, 12].tolist() == [0, 0, 0]
    # On a white frame the box has dark edges on both sides, so it shows on light backgrounds too.
    white = draw_overlay(np.full((20, 30, 3), 255, np.uint8), np.zeros((20, 30), np.uint8), {1: Box(4, 4, 20, 15)},
                         thickness=2)
    assert white[3, 12].tolist() == [0, 0, 0] and white[6, 12].tolist() == [0, 0, 0]  # outside and inside edges
    assert white[4, 12].tolist() == white[5, 12].tolist() == OVERLAY_COLOURS[0].tolist()
    assert all(int(c.max()) >= 200 for c in OVERLAY_COLOURS)  # bright: none is as dark as DAVIS's red (128, 0, 0)


@pytest.mark.parametrize("ids, alpha", [(3, 0.5), (40, 0.3)])  # few ids, and more than are looked for one by one
def test_overlay_blends_every_level_as_the_float_blend_does(ids, alpha):
    from qmra.data.video_writer import object_colour

    rng = np.random.default_rng(ids)
    frame = np.rot90(rng.integers(0, 256, (64, 50, 3), dtype=np.uint8))  # not contiguous, as an upright phone video
    labels = rng.integers(0, ids + 1, frame.shape[:2]).astype(np.uint8)
    labels[labels == 2] = 0  # an id missing between present ones
    expected = frame.astype(np.float32)
    for object_id in range(1, ids + 1):
        region = labels == object_id
        expected[region] = (1 - alpha) * expected[region] + alpha * object_colour(object_id)
    assert np.array_equal(draw_overlay(frame, labels, alpha=alpha), expected.round().astype(np.uint8))

@pytest.mark.parametrize("suffix, colour_error", [(".webm", 12), (".mov", 2)])
def test_a_cutout_is_each_frame_opaque_on_the_objects_and_transparent_elsewhere(tmp_path, suffix, colour_error):
    from qmra.data.video_writer import CutoutWriter, cutout_frames

    frames = _frames(count=5, height=47, width=63)  # odd sides: kept, not padded
    labels = [np.zeros((47, 63), np.uint8) for _ in frames]
    for index, label in enumerate(labels):
        label[10:30, 5 + 3 * index:40] = 1
        label[35:45, 45:60] = 2
    with CutoutWriter(tmp_path / f"cut{suffix}", 63, 47, fps=10) as writer:
        for frame, label in zip(frames, labels):
            writer.write(frame, label)
    read = list(cutout_frames(tmp_path / f"cut{suffix}"))
    assert len(read) == 5 and read[0].shape == (47, 63, 4)
    for rgba, frame, label in zip(read, frames, labels):
        assert ((rgba[..., 3] > 127) == (label > 0)).mean() > 0.999
        assert np.abs(rgba[..., :3].astype(int) - frame)[label > 0].mean() < colour_error
    with pytest.raises(ValueError, match="a cut-out is a .webm or .mov file"):
        CutoutWriter(tmp_path / "cut.mp4", 63, 47)
    with pytest.raises(RuntimeError), CutoutWriter(tmp_path / f"gone{suffix}", 63, 47) as writer:
        writer.write(frames[0], labels[0])
        raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cut{suffix}"]  # no file, no temporary

def _mp4(path, count=20):
    """A small real H.264 mp4 (with B-frames: decode order differs from display order)."""
    with Mp4Writer(path, 64, 48, fps=10) as writer:
        for frame in _frames(count):
            writer.write(frame)
    return path


def _packet_ends(path):
    """Byte offset just past each video packet of ``path``, in file order."""
    import av

    with av.open(str(path)) as container:
        return sorted(p.pos + p.size for p in container.demux(container.streams.video[0]) if p.size)


def _decode_until_error(path):
    """(frames decoded, the DataError that ended decoding)."""
    frames = []
    with pytest.raises(DataError) as error:
        for frame in open_frames(path):
            frames.append(frame)
    return len(frames), str(error.value)


def test_a_truncated_mp4_is_an_error_naming_the_frame_where_decoding_stopped(tmp_path):
    data = _mp4(tmp_path / "clip.mp4").read_bytes()
    ends = _packet_ends(tmp_path / "clip.mp4")
    cuts = {
        "inside a frame": (ends[9] + ends[10]) // 2,  # the file ends in the middle of the 11th frame
        "between frames": ends[9],  # ... or exactly after the 10th: every packet read is whole
        "header only": ends[0] - 10,
    }
    for what, cut in cuts.items():
        path = tmp_path / f"cut-{cut}.mp4"
        path.write_bytes(data[:cut])
        assert open_frames(path).info.num_frames == 20, what  # the header still promises 20
        decoded, message = _decode_until_error(path)
        assert decoded < 20, what
        assert f"{path}: decoding stopped at frame {decoded} of 20 (the file is truncated or corrupt: " in message, what
    # Every frame before the cut comes out, those the decoder still held included.
    assert _decode_until_error(tmp_path / f"cut-{cuts['between frames']}.mp4") == (
        10, f"{tmp_path}/cut-{cuts['between frames']}.mp4: decoding stopped at frame 10 of 20 (the file is truncated or "
            "corrupt: it ends after 10 of its 20 frames)")


def test_a_decode_error_in_the_middle_is_an_error(tmp_path):
    data = bytearray(_mp4(tmp_path / "clip.mp4").read_bytes())
    ends = _packet_ends(tmp_path / "clip.mp4")
    data[ends[8] : ends[11]] = bytes(ends[11] - ends[8])  # zeros over frames 10 and 11
    (tmp_path / "broken.mp4").write_bytes(bytes(data))
    decoded, message = _decode_until_error(tmp_path / "broken.mp4")
    assert 0 < decoded < 20
    assert f"decoding stopped at frame {decoded} of 20 (the file is truncated or corrupt: " in message


def test_a_trimmed_mp4_decodes_fewer_frames_than_its_header_counts_without_error(tmp_path):
    """An edit list (a cut made without re-encoding) hides frames that the header still counts:
    every packet is in the file, so this is no truncation."""
    import av

    _mp4(tmp_path / "clip.mp4")
    with av.open(str(tmp_path / "clip.mp4")) as source, av.open(str(tmp_path / "trim.mp4"), "w", format="mp4") as trimmed:
        stream = source.streams.video[0]
        out = trimmed.add_stream_from_template(stream)
        shift = 5 * int(1 / (stream.average_rate * stream.time_base))  # frames 0..4 before the start
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = out
            trimmed.mux(packet)
    source = open_frames(tmp_path / "trim.mp4")
    assert source.header_frames == 20
    assert len(list(source)) == 15


def test_video_files_frame_folders_and_lists_read_any_frame_and_backwards(tmp_path, monkeypatch):
    from qmra.data import SyntheticConfig, SyntheticVideo

    video = SyntheticVideo(SyntheticConfig(48, 64, 20, num_objects=1, seed=0))
    path = video.write_mp4(tmp_path / "c.mp4")
    source = open_frames(path)
    forwards = list(source)
    monkeypatch.setattr(VideoFile, "BACKWARD_CHUNK", 6)  # several chunks
    backwards = list(source.frames(range(19, -1, -1)))
    assert len(backwards) == 20 and all(np.array_equal(a, b) for a, b in zip(forwards[::-1], backwards))
    assert np.array_equal(source.read(12), forwards[12]) and np.array_equal(source.read(3), forwards[3])
    assert all(np.array_equal(a, b) for a, b in zip(source.frames(range(7, 20)), forwards[7:]))
    listed = open_frames([video.image(i) for i in range(5)])
    assert listed.seekable and np.array_equal(listed.read(3), video.image(3)) and len(list(listed)) == len(list(listed)) == 5
    stream = open_frames(iter([video.image(i) for i in range(5)]))
    assert not stream.seekable
    with pytest.raises(DataError, match="read once, front to back"):
        stream.read(2)


def test_frames_from_a_later_frame_to_the_end_in_every_kind_of_source(tmp_path):
    frames = _frames(7)
    folder = tmp_path / "folder"
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index}.png")
    with Mp4Writer(tmp_path / "clip.mp4", 64, 48, fps=12) as writer:
        for frame in frames:
            writer.write(frame)
    decoded = list(open_frames(tmp_path / "clip.mp4"))
    sources = {"folder": (open_frames(folder), frames), "list": (open_frames(frames), frames),
               "stream": (open_frames(iter(frames)), frames), "video": (open_frames(tmp_path / "clip.mp4"), decoded)}
    for kind, (source, truth) in sources.items():
        later = list(source.frames_from(4))
        assert len(later) == 3 and all(np.array_equal(a, b) for a, b in zip(later, truth[4:])), kind
    assert list(open_frames(frames).frames_from(7)) == []


def test_frames_from_a_source_that_seeks_reads_no_frame_before_the_first():
    frames, asked = _frames(7), []

    class Seekable(FrameSource):  # as qmra ui's frames are: any frame read on its own, a known count
        seekable, description = True, "frames"
        info = FrameInfo(48, 64, 7, None)

        def read(self, index):
            asked.append(index)
            return frames[index]

        def __iter__(self):
            return (self.read(i) for i in range(7))

    assert len(list(Seekable().frames_from(4))) == 3 and asked == [4, 5, 6]
    asked.clear()
    assert len(list(Seekable().frames_from(1, 3))) == 2 and asked == [1, 4]  # the frames between never read
