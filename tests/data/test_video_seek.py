"""Frames read in any order from a video file are the frames decoding it from the start gives."""

from __future__ import annotations

import numpy as np
import pytest

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.data.frames import VideoFile
from qmra.data.video_seek import SeekingVideoReader
from qmra.errors import DataError


def _mp4(path, frames: int = 23, gop: int = 5, b_frames: int = 2):
    """An H.264 file with a keyframe every ``gop`` frames and B-frames (decode order ≠ display order)."""
    import av

    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=frames, num_objects=2, seed=1))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        stream.options = {"keyint_min": str(gop), "sc_threshold": "0"}
        for index in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(video.image(index), format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def indexed(tmp_path):
    path = _mp4(tmp_path / "gop.mp4")
    reader = SeekingVideoReader(path, cache_bytes=6 * 48 * 64 * 3)  # six frames
    truth = []
    for array, where in VideoFile(path).decoded():
        reader.add(where)
        truth.append(array)
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


def test_the_cache_stays_within_its_bound(indexed):
    reader, truth = indexed
    for index in range(len(truth)):
        reader.read(index)
    assert reader._cached_bytes <= reader.cache_bytes and len(reader._cache) == 6


def test_a_frame_not_yet_counted_is_an_error(indexed):
    reader, _ = indexed
    with pytest.raises(DataError, match="no frame 23"):
        reader.read(23)
