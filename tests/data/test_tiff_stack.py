from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from qmra.cli import main
from qmra.data import open_frames, read_labels
from qmra.data.frames import FrameFolder
from qmra.data.tiff_stack import TiffStack, grey_range, imagej_fps, is_tiff_stack
from qmra.errors import DataError


def _pages(count=5, height=24, width=32):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 65536, (height, width), dtype=np.uint16) for _ in range(count)]


def _mapped(page, low, high):
    return np.rint(((page.astype(np.float64) - low) * (255 / (high - low))).clip(0, 255)).astype(np.uint8)


def test_a_16_bit_stack_is_a_video_of_its_pages_read_in_any_order(tmp_path):
    pages = _pages()
    path = tmp_path / "cells.tif"
    images = [Image.fromarray(page) for page in pages]
    images[0].save(path, save_all=True, append_images=images[1:],
                   tiffinfo={270: "ImageJ=1.54f\nimages=5\nframes=5\nfinterval=0.25\nmin=1000.0\nmax=50000.0\n"})
    stack = open_frames(path)
    assert isinstance(stack, TiffStack) and stack.seekable
    assert (stack.info.height, stack.info.width, stack.info.num_frames, stack.info.fps) == (24, 32, 5, 4.0)
    assert stack.grey_range == (1000.0, 50000.0)  # ImageJ's saved display range
    for index in (3, 0, 4, 1):  # backwards and forwards, as the UI and --backwards read
        frame = stack.read(index)
        assert frame.shape == (24, 32, 3) and np.array_equal(frame[..., 1], _mapped(pages[index], 1000, 50000))
    assert [np.array_equal(f[..., 0], _mapped(p, 1000, 50000)) for f, p in zip(stack, pages)] == [True] * 5
    assert stack.frame_name(3) == "00003"
    with pytest.raises(DataError, match="no frame 5 \\(it has 5\\)"):
        stack.read(5)


def test_a_12_bit_camera_stack_spans_the_8_bits_by_its_first_page(tmp_path):
    rng = np.random.default_rng(3)
    pages = [rng.integers(100, 4096, (40, 50)).astype(np.uint16) for _ in range(3)]
    pages[2] = pages[2] // 2  # a darker page keeps the stack's range: no flicker
    images = [Image.fromarray(page) for page in pages]
    images[0].save(tmp_path / "camera.tif", save_all=True, append_images=images[1:])
    stack = open_frames(tmp_path / "camera.tif")
    low, high = np.percentile(pages[0], (0.1, 99.9))
    assert stack.grey_range == pytest.approx((low, high))
    first, dark = stack.read(0)[..., 0], stack.read(2)[..., 0]
    assert first.min() <= 1 and first.max() == 255 and abs(float(first.mean()) - 127.5) < 5  # not 0..16
    assert np.array_equal(dark, _mapped(pages[2], low, high)) and dark.mean() < first.mean() / 1.8


def test_an_rgb_stack_and_a_folder_of_tiff_frames(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(tmp_path / "rgb.tiff", save_all=True, append_images=images[1:], compression="tiff_lzw")
    assert [np.array_equal(a, b) for a, b in zip(open_frames(tmp_path / "rgb.tiff"), frames)] == [True] * 3
    assert open_frames(tmp_path / "rgb.tiff").info.fps is None  # no ImageJ description: the rate is unknown
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, image in zip((10, 2, 1), images):  # numeric order: 1, 2, 10
        image.save(folder / f"f{index}.tif")
    assert is_tiff_stack(tmp_path / "rgb.tiff") and not is_tiff_stack(folder / "f1.tif")  # one page: a frame
    (folder / "notes.tif").write_text("not an image")
    assert not is_tiff_stack(folder / "notes.tif") and not is_tiff_stack(folder / "missing.tif")
    (folder / "notes.tif").unlink()
    source = open_frames(folder)
    assert isinstance(source, FrameFolder) and [source.frame_name(i) for i in range(3)] == ["f1", "f2", "f10"]
    assert np.array_equal(source.read(2), frames[0])


def test_what_cannot_be_a_frame_says_so(tmp_path):
    Image.fromarray(np.zeros((8, 8), dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DataError, match="float.tif holds 32-bit floating-point pixels: save it with 8- or 16-bit"):
        open_frames(tmp_path / "float.tif").read(0)
    Image.new("RGB", (8, 8)).save(tmp_path / "renamed.tif", format="PNG")
    with pytest.raises(DataError, match="is a PNG image, not a TIFF stack"):
        open_frames(tmp_path / "renamed.tif")
    images = [Image.new("L", (8, 8)), Image.new("L", (9, 8))]
    images[0].save(tmp_path / "sizes.tif", save_all=True, append_images=images[1:])
    with pytest.raises(DataError, match="frame 1 \\(page 2\\) is 9x8, the first frame is 8x8"):
        list(open_frames(tmp_path / "sizes.tif"))
    with pytest.raises(DataError, match="a TIFF stack \\(.tif, .tiff\\) or a folder of frames"):
        (tmp_path / "notes.txt").write_text("x")
        open_frames(tmp_path / "notes.txt")


def test_pages_read_from_several_threads_are_each_their_own_and_a_closed_stack_reopens(tmp_path):
    pages = _pages(count=6)
    images = [Image.fromarray(page) for page in pages]
    images[0].save(tmp_path / "stack.tif", save_all=True, append_images=images[1:])
    stack = open_frames(tmp_path / "stack.tif")
    expected = [stack.read(i) for i in range(6)]
    order = [i % 6 for i in range(120)]
    with ThreadPoolExecutor(4) as pool:  # the UI's page and its runs read one stack at once
        read = list(pool.map(stack.read, order))
    assert all(np.array_equal(frame, expected[i]) for frame, i in zip(read, order))
    stack.close()
    assert np.array_equal(stack.read(4), expected[4])
    stack.close()


def test_imagej_frame_interval():
    assert imagej_fps("ImageJ=1.54f\nfinterval=0.04\n") == pytest.approx(25.0)
    assert imagej_fps("ImageJ=1.54f\nimages=3\n") is None and imagej_fps(None) is None
    assert imagej_fps("finterval=0\n") is None and imagej_fps("finterval=x\n") is None
    assert grey_range(Image.fromarray(np.full((4, 4), 7, dtype=np.uint16)), "min=5\nmax=5\n") == (7.0, 8.0)  # no span


def test_segment_a_tiff_stack(tmp_path, weights):
    images = [Image.fromarray(page) for page in _pages(count=4, height=48, width=64)]
    images[0].save(tmp_path / "stack.tif", save_all=True, append_images=images[1:])
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "stack.tif"), "--box", "8,8,40,40", "--out", str(out), "--weights",
                 str(weights), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(4)]
    assert read_labels(out / "00003.png").shape == (48, 64)
