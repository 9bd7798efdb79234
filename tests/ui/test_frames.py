import io

import numpy as np
from PIL import Image

from qmra.ui.frames import FrameStore


def _frames(count=3):
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(count)]


def _shown(store, index):
    data, content_type = store.display_bytes(index)
    return content_type, Image.open(io.BytesIO(data))


def test_a_tiff_stack_is_at_hand_like_a_folder_and_shown_as_jpeg(tmp_path):
    frames = _frames()
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(tmp_path / "stack.tif", save_all=True, append_images=images[1:])
    store = FrameStore(tmp_path / "stack.tif")
    assert store.finished and store.count == 3 and store.name == "stack" and store.frame_name(2) == "00002"
    assert np.array_equal(store.read(1), frames[1])
    content_type, shown = _shown(store, 2)
    assert content_type == "image/jpeg" and shown.size == (32, 24)
    assert [np.array_equal(a, b) for a, b in zip(store.source(), frames)] == [True] * 3
    store.close()


def test_tiff_frames_of_a_folder_go_to_the_page_as_jpeg_and_png_ones_as_they_are(tmp_path):
    frames = _frames(2)
    Image.fromarray(frames[0]).save(tmp_path / "0.tif")
    Image.fromarray(frames[1]).save(tmp_path / "1.png")
    store = FrameStore(tmp_path)
    assert store.count == 2 and [store.frame_name(i) for i in range(2)] == ["0", "1"]
    content_type, shown = _shown(store, 0)
    assert content_type == "image/jpeg" and shown.size == (32, 24)
    assert store.display_bytes(1) == ((tmp_path / "1.png").read_bytes(), "image/png")


def test_16_bit_frames_go_to_the_page_scaled_as_the_network_reads_them(tmp_path):
    levels = np.random.default_rng(5).integers(0, 4096, (24, 32)).astype(np.uint16)  # a 12-bit camera's
    Image.fromarray(levels).save(tmp_path / "0.png")
    store = FrameStore(tmp_path)
    content_type, shown = _shown(store, 0)
    assert content_type == "image/jpeg"
    assert np.abs(np.asarray(shown.convert("RGB")).astype(int) - store.read(0)).mean() < 4 and store.read(0).max() == 255
