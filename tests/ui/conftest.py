"""The web app's tests: a server on a free port (in a thread) with a tiny random-weights network, and
a small synthetic video. ``serve`` is also what tests/ui/screenshot.py uses."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.inference import Segmenter
from qmra.ui import UiConfig, UiServer, create_server


@contextmanager
def serve(segmenter: Segmenter, root: Path, **options) -> Iterator[UiServer]:
    """``qmra ui`` in a thread, on a free port of 127.0.0.1, until the block ends."""
    server = create_server(UiConfig(root=root, port=0, **options), segmenter)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.close()


@pytest.fixture(scope="session")
def tiny_segmenter(weights) -> Segmenter:
    return Segmenter.from_checkpoint(weights)


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """An 8-frame 128×96 mp4 with two objects."""
    video = SyntheticVideo(SyntheticConfig(height=96, width=128, num_frames=8, num_objects=2, seed=3))
    return video.write_mp4(tmp_path_factory.mktemp("video") / "clip.mp4", fps=8)
