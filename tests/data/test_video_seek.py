"""Frames read in any order from a video file are the frames decoding it from the start gives."""

from __future__ import annotations

import numpy as np
import pytest

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.data.frames import VideoFile
from qmra.data.video_seek import SeekingVideoReader
from qmra.errors import DataError


def _video(path, frames: int = 23, gop: int = 5, b_frames: int = 2, codec: str = "libx264", container_format=None):
    """A file with a keyframe every ``gop`` frames and B-frames (decode order ≠ display order)."""
    import av

    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=frames, num_objects=2, seed=1))
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        if codec == "libx264":
            stream.options = {"keyint_min": str(gop), "sc_threshold": "0"}
        for index in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(video.image(index), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _indexed(path, cache_frames: int = 6):
    reader = SeekingVideoReader(path, cache_bytes=cache_frames * 48 * 64 * 3)
    truth = []
    for array, where in VideoFile(path).decoded():
        reader.add(where)
        truth.append(array)
    return reader, truth


@pytest.fixture
def indexed(tmp_path):
    reader, truth = _indexed(_video(tmp_path / "gop.mp4"))
    yield reader, truth
    reader.close()


def test_the_file_has_several_keyframes_to_seek_to(indexed):
    reader, truth = indexed
    assert len(reader) == len(truth) == 23 and len(reader._keyframes) >= 4


def test_any_order_gives_the_decoded_frames(indexed):
    reader, truth = indexed
    order = [17, 3, 22, 0, 11, 12, 13, 9, *range(22, -1, -1), 5, 6, 7, 4]
    for index in order:
        assert np.array_equal(reader.read(index), truth[index]), index


@pytest.mark.parametrize("name, codec, container_format", [
    ("gop.ts", "libx264", "mpegts"),  # its seeks land a keyframe after the one asked for
    ("gop.mpg", "mpeg2video", "mpeg"),  # an MPEG program stream: its seeks land anywhere
])
def test_files_whose_seeks_miss_give_the_decoded_frames_in_any_order(tmp_path, name, codec, container_format):
    reader, truth = _indexed(_video(tmp_path / name, codec=codec, container_format=container_format), cache_frames=2)
    try:
        assert len(truth) == 23 and len(reader._keyframes) >= 4
        for index in [17, 3, 22, 0, 11, 12, 13, 9, *range(22, -1, -1), 5, 6, 7, 4, 21, 16]:
            assert np.array_equal(reader.read(index), truth[index]), index
    finally:
        reader.close()


def test_the_cache_stays_within_its_bound(indexed):
    reader, truth = indexed
    for index in range(len(truth)):
        reader.read(index)
    assert reader._cached_bytes <= reader.cache_bytes and len(reader._cache) == 6


def test_a_frame_not_yet_counted_is_an_error(indexed):
    reader, _ = indexed
    with pytest.raises(DataError, match="no frame 23"):
        reader.read(23)


@pytest.mark.parametrize("name, codec, container_format, shortcut", [
    ("gop.mp4", "libx264", None, True),
    ("gop.ts", "libx264", "mpegts", True),
    ("gop.webm", "libvpx", "webm", True),
    ("gop.mpg", "mpeg2video", "mpeg", False),  # B-pictures shown before the keyframe they follow: from the start
])
def test_frames_from_a_later_frame_are_those_decoding_from_the_start_gives(tmp_path, monkeypatch, name, codec,
                                                                          container_format, shortcut):
    from qmra.data import frames as frames_module
    from qmra.data.video_skip import NoShortcut, PacketCount, frames_from_keyframe

    path = _video(tmp_path / name, codec=codec, container_format=container_format)
    video = VideoFile(path)
    truth = list(video)
    for first in (1, 4, 5, 6, 12, 21, 22):
        later = list(video.frames_from(first))
        assert len(later) == 23 - first and all(np.array_equal(a, b) for a, b in zip(later, truth[first:])), first
    assert list(video.frames_from(30)) == []
    converted = []  # one frame in 3 (--every 3): only those are turned into RGB arrays
    convert = frames_module.upright_rgb
    monkeypatch.setattr(frames_module, "upright_rgb", lambda frame, width=None: converted.append(1) or convert(frame, width))
    for first in (0, 5, 12):
        every_third = list(video.frames_from(first, 3))
        assert len(every_third) == len(truth[first::3]) == len(converted), first
        assert all(np.array_equal(a, b) for a, b in zip(every_third, truth[first::3])), first
        converted.clear()
    entered = frames_from_keyframe(path, 12, PacketCount())
    if shortcut:  # entered at the keyframe of frame 10, the frames before it only read as packets
        assert next(entered).pts == list(video.positions())[12].pts
    else:
        with pytest.raises(NoShortcut):
            next(entered)


def test_a_packet_the_shortcut_cannot_vouch_for_hands_the_rest_to_decoding_from_the_start(tmp_path, monkeypatch):
    from qmra.data import video_skip

    path = _video(tmp_path / "gop.mp4")
    truth = list(VideoFile(path))
    entered = video_skip.frames_from_keyframe

    def failing_later(path, first, seen):
        for count, frame in enumerate(entered(path, first, seen)):
            if count == 3:  # as a packet without a timestamp would, after three frames were given out
                raise video_skip.NoShortcut("a packet without a timestamp")
            yield frame

    monkeypatch.setattr(video_skip, "frames_from_keyframe", failing_later)
    later = list(VideoFile(path).frames_from(12))
    assert len(later) == 11 and all(np.array_equal(a, b) for a, b in zip(later, truth[12:]))
    every_fourth = list(VideoFile(path).frames_from(12, 4))  # handed over off the 4-frame grid: its phase kept
    assert len(every_fourth) == 3 and all(np.array_equal(a, b) for a, b in zip(every_fourth, truth[12::4]))


def test_reading_an_earlier_frame_starts_again_at_its_keyframe_not_at_the_files_start(tmp_path, monkeypatch):
    path = _video(tmp_path / "gop.mp4")
    truth = list(VideoFile(path))
    starts = []
    entered = VideoFile.frames_from

    def recorded(self, first):
        starts.append(first)
        return entered(self, first)

    monkeypatch.setattr(VideoFile, "frames_from", recorded)
    video = VideoFile(path)
    backwards = list(video.frames(range(22, 5, -1)))  # chunks of BACKWARD_CHUNK frames, read forwards
    assert all(np.array_equal(a, b) for a, b in zip(backwards, truth[22:5:-1])) and len(backwards) == 17
    assert starts and min(starts) == 6 and 0 not in starts
