"""HDR video (HLG, PQ) read as an SDR screen shows it."""

import av
import numpy as np
import pytest

from benchmarks.look_changes import hevc_video
from qmra.data import hdr
from qmra.data.frames import open_frames
from qmra.data.hdr import hdr_transfer, sdr_from_linear, sdr_rgb


def _scene(height: int = 96, width: int = 128) -> np.ndarray:
    """Flat patches of everyday colours (greys, skin, grass, sky, a red car) that a codec keeps."""
    colours = np.array([[20, 20, 20], [90, 90, 90], [170, 170, 170], [224, 172, 140],
                        [70, 130, 40], [110, 160, 220], [180, 30, 30], [240, 200, 60]], np.uint8)
    tiles = colours.reshape(2, 4, 3).repeat(height // 2, axis=0).repeat(width // 4, axis=1)
    return np.ascontiguousarray(tiles)


def _patch_means(frame: np.ndarray) -> np.ndarray:
    """The 8 patches' mean colours, away from their edges (chroma subsampling blurs those)."""
    height, width = frame.shape[0] // 2, frame.shape[1] // 4
    return np.array([frame[r * height + 8:(r + 1) * height - 8, c * width + 8:(c + 1) * width - 8].reshape(-1, 3).mean(0)
                     for r in range(2) for c in range(4)])


@pytest.mark.parametrize("transfer", ["HLG", "PQ"])
def test_an_hdr_video_is_read_as_the_sdr_scene_it_filmed(tmp_path, monkeypatch, transfer):
    scene = _scene()
    path = hevc_video(tmp_path / "hdr.mp4", [scene] * 3, transfer, quality=12)
    with av.open(str(path)) as container:
        stored = next(container.decode(video=0))
        assert hdr_transfer(stored) == transfer
        as_stored = stored.to_ndarray(format="rgb24")  # what reading without conversion gives
    read = next(iter(open_frames(path)))
    expected, got = _patch_means(scene), _patch_means(read)
    # Patches under the knee (linear 0.75: sRGB 0.88) come back within a few levels; brighter ones are
    # rolled off a little.
    dim = np.array([max(colour) / 255 < 0.87 for colour in expected])
    assert np.abs(got[dim] - expected[dim]).max() < 6
    assert np.abs(got - expected).max() < 20
    assert np.abs(_patch_means(as_stored) - expected).mean() > 15  # flat and pale as stored
    monkeypatch.setattr(hdr, "CHUNK_PIXELS", scene.shape[1] * 7)  # in bands of 7 rows: the same pixels
    np.testing.assert_array_equal(next(iter(open_frames(path))), read)
    # Seeking reads frames through the same conversion.
    np.testing.assert_array_equal(open_frames(path).read(2), list(open_frames(path))[2])


def test_sdr_video_is_converted_as_ffmpeg_converts_it(tmp_path):
    scene = _scene()
    with av.open(str(tmp_path / "sdr.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = scene.shape[1], scene.shape[0], "yuv420p"
        frame = av.VideoFrame.from_ndarray(scene, format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    with av.open(str(tmp_path / "sdr.mp4")) as container:
        decoded = next(container.decode(video=0))
        assert hdr_transfer(decoded) is None
        np.testing.assert_array_equal(sdr_rgb(decoded), decoded.to_ndarray(format="rgb24"))


def test_light_above_white_is_rolled_off_keeping_its_hue_and_order():
    # An orange at 0.5, 1, 2, 4 and 16 times SDR white, and a grey at half white.
    orange = np.array([1.0, 0.5, 0.1], np.float32)
    linear = np.stack([orange * s for s in (0.5, 1, 2, 4, 16)] + [np.full(3, 0.5, np.float32)])[None]
    srgb = sdr_from_linear(linear.copy())[0].astype(int)
    assert (np.diff(srgb[:5, 0]) >= 0).all() and srgb[1, 0] < srgb[3, 0]  # brighter stays brighter
    np.testing.assert_array_equal(srgb[0], [188, 137, 63])  # under the knee: the plain sRGB curve
    np.testing.assert_array_equal(srgb[5], [188, 188, 188])
    # Channels scaled alike: the red-to-green ratio in linear light stays 2 however bright.
    decoded = ((srgb[:5] / 255 + 0.055) / 1.055) ** 2.4
    np.testing.assert_allclose(decoded[:, 0] / decoded[:, 1], 2, rtol=0.05)
