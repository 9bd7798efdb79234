"""A video piped to standard input: read once as it comes, the same frames as the file, clear
errors for what a pipe cannot carry, and a wait for input that an interrupted run can end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from qmra.data import SyntheticConfig, SyntheticVideo, open_frames, read_labels
from qmra.data.video_pipe import PipedVideo, PipeReader
from qmra.errors import DataError


class OneWay(io.RawIOBase):
    """Bytes that can only be read front to back, as a pipe's (no seek)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def _video(path: Path, container: str, frames: int = 6) -> Path:
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=frames, num_objects=1, seed=2))
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(video.image(index), format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


@pytest.mark.parametrize("container, name", [("matroska", "clip.mkv"), ("mpegts", "clip.ts")])
def test_a_piped_stream_gives_the_file_s_frames_once(tmp_path, container, name):
    path = _video(tmp_path / name, container)
    piped = PipedVideo(OneWay(path.read_bytes()))
    assert (piped.info.height, piped.info.width, piped.info.num_frames, piped.seekable) == (48, 64, None, False)
    assert piped.info.fps == pytest.approx(10.0)
    frames, expected = list(piped), list(open_frames(path))
    assert len(frames) == len(expected) == 6 and all(np.array_equal(a, b) for a, b in zip(frames, expected))
    with pytest.raises(DataError, match="standard input was already read: a pipe is read once"):
        list(piped)
    with pytest.raises(DataError, match="read once, front to back"):
        piped.read(0)


def test_what_a_pipe_cannot_carry_says_what_to_pipe(tmp_path):
    # (An MP4 with its index at its end fails so too, unless it is small enough for FFmpeg's buffer.)
    with pytest.raises(DataError, match=r"cannot read a video from standard input \(.*\): pipe a stream container, e\.g\. "
                                        r"ffmpeg -i INPUT -c copy -f matroska -"):
        PipedVideo(OneWay(b"hello, not a video\n" * 10))
    with pytest.raises(DataError, match="standard input.*: pipe a stream container"):
        PipedVideo(OneWay(_video(tmp_path / "clip.mkv", "matroska").read_bytes()[:300]))  # cut off in its header


def test_a_read_waiting_on_a_quiet_pipe_ends_when_interrupted():
    read_end, write_end = os.pipe()
    try:
        reader = PipeReader(read_end)
        os.write(write_end, b"abc")
        assert reader.read(10) == b"abc"
        got: list[bytes] = []
        waiting = threading.Thread(target=lambda: got.append(reader.read(10)))
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive()  # nothing written: it waits
        started = time.perf_counter()
        reader.stop()
        waiting.join(timeout=2)
        assert got == [b""] and time.perf_counter() - started < 1
    finally:
        os.close(read_end)
        os.close(write_end)


def test_segment_reads_a_video_from_standard_input(tmp_path, weights):
    path = _video(tmp_path / "clip.mkv", "matroska")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "qmra", "segment", "-", "--box", "8,8,40,40", "--out", str(out), "--weights",
               str(weights), "--rle", str(tmp_path / "masks.json"), "--quiet"]
    with path.open("rb") as stdin:
        done = subprocess.run(command, stdin=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(6)]
    assert read_labels(out / "00005.png").shape == (48, 64)
    assert json.loads((tmp_path / "masks.json").read_text())["video"] == "stdin"
    late = tmp_path / "late.json"
    late.write_text(json.dumps([{"id": 1, "frame": 3, "box": [8, 8, 40, 40]}]))
    with path.open("rb") as stdin:
        done = subprocess.run([*command[:5], "--boxes", str(late), "--backwards", "--out", str(tmp_path / "back"),
                               "--weights", str(weights)], stdin=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip() == ("qmra: error: standard input is read once, front to back: "
                                                            "objects cannot be followed backwards in it (leave out --backwards)")


def test_nothing_piped_is_an_error_not_a_wait(monkeypatch):
    import pty

    terminal, replica = pty.openpty()
    try:
        with os.fdopen(replica, "rb", closefd=False) as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            with pytest.raises(DataError, match="- reads a video piped to standard input, and none is"):
                open_frames("-")
    finally:
        os.close(terminal)
        os.close(replica)
